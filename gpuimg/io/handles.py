"""Picklable, thread-safe file handles for lazy readers.

A :class:`FileHandle` stands for "the file this proxy reads": it opens it on
demand under a lock, optionally keeps it open, keeps a gzip file's seek index
(or a BGZF file's block table) across re-opens, and pickles as just the path and the keep-open choice.

>>> import io
>>> handle = FileHandle(io.BytesIO(b"abc"), keep_file_open=False)
>>> with handle.open() as f:
...     f.read()
b'abc'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gpuimg.config import reset_after_fork
from gpuimg.errors import FileChangedError
from gpuimg.io.bgzf import BgzfIndex, BgzfReader, is_bgzf_file
from gpuimg.io.gzipseek import GzipIndex, GzipReader
from gpuimg.io.openers import is_gzip_path
from gpuimg.io.positioned import ReadableFile, file_identity

__all__ = ["KEEP_FILE_OPEN_DEFAULT", "FileHandle"]

#: What ``keep_file_open=None`` means (nibabel's default too).
KEEP_FILE_OPEN_DEFAULT = False


class FileHandle:
    """Open-on-demand access to one file, safe to share between threads.

    Parameters
    ----------
    path_or_fileobj : str, os.PathLike or binary file object
        A path (``.gz`` read through a seekable :class:`GzipReader`), or an
        open file object used as is and never closed here.
    keep_file_open : bool or None, keyword only
        True keeps one open file (and its gzip state) from the first
        :meth:`open` until :meth:`close`; False opens a new one each time.
        None means :data:`KEEP_FILE_OPEN_DEFAULT`. Either way a gzip file's
        checkpoint index persists on the handle.

    Notes
    -----
    ``with handle.open() as f`` holds a re-entrant lock, so reads of a shared
    file object (seek, then read) are not interleaved between threads.
    Pickling keeps the path (or the file object) and ``keep_file_open`` and
    drops the lock, any open file and the index.
    """

    def __init__(self, path_or_fileobj: Any, *, keep_file_open: bool | None = None) -> None:
        self._target = path_or_fileobj
        self._keep = KEEP_FILE_OPEN_DEFAULT if keep_file_open is None else bool(keep_file_open)
        self._keep_file_open = keep_file_open
        self._is_path = isinstance(path_or_fileobj, (str, os.PathLike))
        self._lock = threading.RLock()
        self._kept: ReadableFile | None = None
        self._kept_pid = 0
        self._kept_identity: tuple[int, ...] | None = None
        gzip = is_gzip_path(path_or_fileobj)
        self._gzip_index = GzipIndex() if gzip else None
        self._bgzf_index = BgzfIndex() if gzip else None
        reset_after_fork(self)

    @property
    def name(self) -> str:
        """The path, or the file object's name, for messages."""
        if self._is_path:
            return os.fspath(self._target)
        return getattr(self._target, "name", None) or repr(self._target)

    @property
    def keep_file_open(self) -> bool:
        """Whether one file stays open between reads."""
        return self._keep

    @property
    def gzip_index(self) -> GzipIndex | None:
        """Checkpoint index of a gzip path (None otherwise)."""
        return self._gzip_index

    @property
    def bgzf_index(self) -> BgzfIndex | None:
        """Block table of a gzip path, used when the file is BGZF (None otherwise)."""
        return self._bgzf_index

    @contextmanager
    def open(self) -> Iterator[ReadableFile]:
        """Hold the lock and yield an open binary file object.

        Yields
        ------
        file object
            Seekable, with ``readinto``. Its position is whatever the last
            user left; seek before reading.

        Raises
        ------
        FileChangedError
            The file changed (size, modification time) while the block ran.
        """
        with self._lock:
            if not self._is_path:
                yield self._target
            elif self._keep:
                kept = self._kept_file()
                with self._unchanged(_raw_fileno(kept)):
                    yield kept
            else:
                fileobj = self._open_new()
                try:
                    with self._unchanged(_raw_fileno(fileobj)):
                        yield fileobj
                finally:
                    fileobj.close()

    @contextmanager
    def open_descriptor(self) -> Iterator[int]:
        """Hold the lock and yield an OS file descriptor of the file (compressed bytes for gzip).

        For reads that bring their own position (``preadv``, ``mmap``) or stream the whole file. With a
        kept file it is a duplicate of the kept descriptor, so a whole read sees the very file that
        slices read, even after it was deleted or replaced; the kept file's position is restored
        after the block. Otherwise it is a new descriptor of the path, closed after the block.

        Raises
        ------
        FileChangedError
            The file changed (size, modification time) while the block ran.
        """
        if not self._is_path:
            raise ValueError(f"{self.name}: a file object given by the caller has no descriptor")
        if not self._keep:
            fd = os.open(self._target, os.O_RDONLY)
            try:
                with self._unchanged(fd):
                    yield fd
            finally:
                os.close(fd)
            return
        with self._lock:
            kept_fd = _raw_fileno(self._kept_file())
            position = os.lseek(kept_fd, 0, os.SEEK_CUR)
            fd = os.dup(kept_fd)
            try:
                with self._unchanged(fd):
                    yield fd
            finally:
                os.close(fd)
                os.lseek(kept_fd, position, os.SEEK_SET)

    def close(self) -> None:
        """Close the kept file, if any (a caller's file object is left open)."""
        with self._lock:
            self._close_kept()

    def __enter__(self) -> FileHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Unreachable objects need no lock; closing avoids an unclosed-file warning.
        self._close_kept()

    def __getstate__(self) -> dict[str, Any]:
        return {"target": self._target, "keep_file_open": self._keep_file_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        FileHandle.__init__(self, state["target"], keep_file_open=state["keep_file_open"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} keep_file_open={self._keep}>"

    def _open_new(self, path: str | os.PathLike[str] | None = None) -> ReadableFile:
        """Open ``path`` (default: the target), named as the target in messages."""
        path = self._target if path is None else path
        if self._bgzf_index is not None and is_bgzf_file(path):
            return BgzfReader(path, name=self.name, index=self._bgzf_index)
        if self._gzip_index is not None:
            return GzipReader(path, name=self.name, index=self._gzip_index)
        return open(path, "rb")  # noqa: SIM115 - closed by open() or close()

    def _kept_file(self) -> ReadableFile:
        """The kept file (lock held): opened on first use, reopened where it is no longer valid.

        In a process forked since it was opened, its position is shared with the parent's, so the same
        file (deleted or not, through ``/proc/self/fd`` where there is one) is opened anew. When it was
        changed in place since (another size or modification time), it is reopened, which drops
        buffered bytes and the gzip index, so no read mixes the old and new contents.
        """
        kept = self._kept
        if kept is not None and self._kept_pid != os.getpid():
            fd = _raw_fileno(kept)
            try:
                self._kept = self._open_new(f"/proc/self/fd/{fd}")
            except OSError:
                self._kept = self._open_new()
            self._kept_pid, self._kept_identity = os.getpid(), file_identity(fd)
            kept.close()  # this process's copy of the descriptor only
        elif kept is not None and file_identity(_raw_fileno(kept)) != self._kept_identity:
            kept.close()
            self._kept = None
        if self._kept is None:
            self._kept = self._open_new()
            self._kept_pid = os.getpid()
            self._kept_identity = file_identity(_raw_fileno(self._kept))
        return self._kept

    @contextmanager
    def _unchanged(self, fd: int) -> Iterator[None]:
        """Raise :class:`FileChangedError` if the file behind ``fd`` changes during the block."""
        before = file_identity(fd)
        try:
            yield
        except Exception as error:
            if file_identity(fd) != before:
                raise self._changed_error(before, file_identity(fd)) from error
            raise
        after = file_identity(fd)
        if after != before:
            raise self._changed_error(before, after)

    def _changed_error(self, before, after) -> FileChangedError:
        return FileChangedError(
            f"{self.name}: the file changed while it was being read (size, modification time "
            f"{before[2:]} became {after[2:]}), so the data read may mix two versions; read it again"
        )

    def _after_fork(self) -> None:
        """Rebuild the lock in a forked child (the kept file is reopened on next use)."""
        self._lock = threading.RLock()

    def _close_kept(self) -> None:
        kept, self._kept = getattr(self, "_kept", None), None
        if kept is not None:
            kept.close()


def _raw_fileno(fileobj: ReadableFile) -> int:
    """The descriptor of the file under ``fileobj`` (the compressed file of a gzip or BGZF reader)."""
    if isinstance(fileobj, (GzipReader, BgzfReader)):
        return fileobj.raw.fileno()
    return fileobj.fileno()
