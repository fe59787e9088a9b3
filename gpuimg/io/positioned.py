"""What gpuimg's decompressing readers share: the file protocol with lazy seeks, file identities."""

from __future__ import annotations

import io
import os
from typing import Any, Protocol

__all__ = ["PositionedReader", "ReadableFile", "WritableFile", "file_identity"]


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
