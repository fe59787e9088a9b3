"""What gpuimg's decompressing readers share: the file protocol with lazy seeks, file identities."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from gpuimg.errors import CompressedStreamError

__all__ = ["ForwardStream", "PositionedReader", "ReadableFile", "WritableFile", "file_identity"]


class ReadableFile(Protocol):
    """What gpuimg reads image bytes through: a plain binary file or one of its gzip/BGZF readers."""

    def read(self, size: int | None = ..., /) -> bytes: ...
    def readinto(self, buffer: Any, /) -> int: ...
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def tell(self) -> int: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> ReadableFile: ...
    def __exit__(self, kind: Any, error: Any, traceback: Any, /) -> Any: ...


class WritableFile(Protocol):
    """What gpuimg writes image bytes through: a plain binary file or one of its gzip/BGZF writers."""

    def write(self, data: Any, /) -> int: ...
    def flush(self) -> None: ...
    def tell(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> WritableFile: ...
    def __exit__(self, kind: Any, error: Any, traceback: Any, /) -> Any: ...


def file_identity(fd: int) -> tuple[int, int, int, int]:
    """``(device, inode, size, modification time in ns)`` of an open file: what says it changed.

    The status change time is left out on purpose: deleting or renaming a file changes it, and a
    file kept open still reads the same bytes then.
    """
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class PositionedReader(io.RawIOBase):
    """A read-only, seekable file of decompressed bytes whose reads start at ``_position``.

    ``seek`` only records the position; subclasses decompress what a read needs, update
    ``_position``, and say how large the decompressed file is (:meth:`_size`). Open readers do not
    pickle (they hold decompressor state or a memory map).
    """

    name: str
    _position: int = 0
    #: What the reader is, for messages.
    kind = "reader"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        """Set the logical position; the decompression happens on the next read."""
        self._check_open()
        if whence == os.SEEK_SET:
            target = pos
        elif whence == os.SEEK_CUR:
            target = self._position + pos
        elif whence == os.SEEK_END:
            target = self._size() + pos
        else:
            raise ValueError(f"whence is {whence}, expected 0, 1 or 2")
        if target < 0:
            raise ValueError(f"{self.name}: seek to negative position {target}")
        self._position = target
        return target

    def readall(self) -> bytes:
        return self.read(-1)

    def __getstate__(self) -> None:
        raise TypeError(f"cannot pickle an open {type(self).__name__} ({self.name})")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} pos={self._position}>"

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.name}: I/O operation on a closed {self.kind}")

    def _size(self) -> int:
        """Total decompressed size."""
        raise NotImplementedError


class ForwardStream(io.RawIOBase):
    """A compression library's reader over a raw file, read forwards: what stream readers share.

    A subclass opens the file with :meth:`_open_raw`, then sets ``_reader`` (the library's file
    object over ``_raw``), ``_errors`` (the exceptions that mean a corrupt stream) and
    ``format_name``. Seeks work (forwards by decompressing, backwards by starting again),
    :meth:`fileno` is the compressed file's, and a corrupt or truncated stream raises
    :class:`~gpuimg.errors.CompressedStreamError` naming the file; the file system's own errors
    (an ``OSError`` with an errno) pass through as they are.
    """

    name: str
    format_name = "compressed"
    _raw: io.BufferedReader
    _reader: io.BufferedIOBase
    _errors: tuple[type[BaseException], ...] = ()

    def _open_raw(self, source: str | os.PathLike[str] | int, name: str | None) -> None:
        """Open ``source`` (a path, or a descriptor read from its start and left open) as ``_raw``."""
        self.name = name or (f"<fd {source}>" if isinstance(source, int) else os.fspath(source))
        self._raw = open(source, "rb", closefd=not isinstance(source, int))  # noqa: SIM115
        self._raw.seek(0)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int:
        with self._translated_errors():
            return self._reader.readinto(buffer)

    def read(self, size: int | None = -1) -> bytes:
        with self._translated_errors():
            return self._reader.read(-1 if size is None else size)

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        """Seek (cheap forwards; backwards restarts the stream)."""
        with self._translated_errors():
            return self._reader.seek(pos, whence)

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        if not self.closed:
            for part in (getattr(self, "_reader", None), getattr(self, "_raw", None)):
                if part is not None:
                    part.close()
        super().close()

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except self._errors as error:
            if isinstance(error, OSError) and (
                error.errno is not None or isinstance(error, CompressedStreamError)
            ):
                raise  # the file system's error, not the stream's
            raise CompressedStreamError(
                f"{self.name}: corrupt or truncated {self.format_name} stream ({error})"
            ) from error
