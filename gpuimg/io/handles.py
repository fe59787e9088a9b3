"""Picklable, thread-safe file handles for lazy readers.

A :class:`FileHandle` stands for "the file this proxy reads": it opens it on
demand under a lock, optionally keeps it open, keeps a gzip file's seek index
across re-opens, and pickles as just the path and the keep-open choice.

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
from typing import IO, Any

from gpuimg.io.openers import GzipIndex, GzipReader, is_gzip_path

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
        self._kept: IO[bytes] | None = None
        self._gzip_index = GzipIndex() if is_gzip_path(path_or_fileobj) else None

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

    @contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        """Hold the lock and yield an open binary file object.

        Yields
        ------
        file object
            Seekable, with ``readinto``. Its position is whatever the last
            user left; seek before reading.
        """
        with self._lock:
            if not self._is_path:
                yield self._target
            elif self._keep:
                if self._kept is None:
                    self._kept = self._open_new()
                yield self._kept
            else:
                fileobj = self._open_new()
                try:
                    yield fileobj
                finally:
                    fileobj.close()

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
        self.__init__(state["target"], keep_file_open=state["keep_file_open"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} keep_file_open={self._keep}>"

    def _open_new(self) -> IO[bytes]:
        if self._gzip_index is not None:
            return GzipReader(self._target, index=self._gzip_index)
        return open(self._target, "rb")  # noqa: SIM115 - closed by open() or close()

    def _close_kept(self) -> None:
        kept, self._kept = getattr(self, "_kept", None), None
        if kept is not None:
            kept.close()
