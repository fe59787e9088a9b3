"""Picklable, thread-safe file handles for lazy readers.

A :class:`FileHandle` stands for "the file this proxy reads": it opens it on
demand under a lock, keeps it open as ``keep_file_open`` says, keeps a gzip file's seek index
(or a BGZF file's block table) across re-opens, and pickles as just the path and the keep-open choice.
Files kept open by gpuimg's own choice (``keep_file_open=None``) are bounded process-wide by
``gpuimg.config.settings.open_files`` (least recently used closed first); files the caller asked to
keep (``True``) are never closed behind its back. :class:`OpenedFile` is one open file's first bytes
and the rest of it, so a load sniffs, reads the header and hands the file on with one open.

>>> import io
>>> handle = FileHandle(io.BytesIO(b"abc"), keep_file_open=False)
>>> with handle.open() as f:
...     f.read()
b'abc'
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gpuimg.config import reset_after_fork, settings, watch
from gpuimg.errors import FileChangedError
from gpuimg.io.bgzf import BgzfIndex, BgzfReader, is_bgzf_file
from gpuimg.io.containers import container_for
from gpuimg.io.gzipseek import GzipIndex, GzipReader
from gpuimg.io.openers import is_gzip_path
from gpuimg.io.positioned import ReadableFile, file_identity

__all__ = ["FileHandle", "OpenedFile", "open_files_count"]


class FileHandle:
    """Open-on-demand access to one file, safe to share between threads.

    Parameters
    ----------
    path_or_fileobj : str, os.PathLike or binary file object
        A path (``.gz`` read through a seekable :class:`GzipReader`, ``.bz2`` and ``.zst``
        through a :class:`~gpuimg.io.containers.StreamReader`), or an open file object used as
        is and never closed here.
    keep_file_open : bool or None, keyword only
        True keeps one open file (and its gzip state) from the first
        :meth:`open` until :meth:`close`; False opens a new one each time.
        None keeps the file too, among at most ``settings.open_files`` such
        files in the process: past that, the least recently used are closed
        and open anew on their next use (0: none kept, as False). Either way
        a gzip file's checkpoint index persists on the handle.

    Notes
    -----
    ``with handle.open() as f`` holds a re-entrant lock, so reads of a shared
    file object (seek, then read) are not interleaved between threads.
    Pickling keeps the path (or the file object) and ``keep_file_open`` and
    drops the lock, any open file and the index.
    """

    def __init__(self, path_or_fileobj: Any, *, keep_file_open: bool | None = None) -> None:
        self._target = path_or_fileobj
        self._keep_file_open = None if keep_file_open is None else bool(keep_file_open)
        self._is_path = isinstance(path_or_fileobj, (str, os.PathLike))
        self._lock = threading.RLock()
        self._kept: ReadableFile | None = None
        self._kept_pid = 0
        self._kept_identity: tuple[int, ...] | None = None
        self._users = 0  # blocks using the kept file now (lock held): it is not closed under them
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
    def target(self) -> Any:
        """The path or file object given."""
        return self._target

    @property
    def keep_file_open(self) -> bool | None:
        """The choice given: True (kept until closed), False (never kept) or None (kept while few)."""
        return self._keep_file_open

    @property
    def is_path(self) -> bool:
        """True when the file was given by its path (False for a caller's file object)."""
        return self._is_path

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
            elif self._keeps():
                with self._using_kept() as kept, self._unchanged(_raw_fileno(kept)):
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
        after the block. Otherwise, or when another thread is using a file kept by gpuimg's choice
        (``keep_file_open=None``, so that whole reads in several threads run side by side), it is a
        new descriptor of the path, closed after the block.

        Raises
        ------
        FileChangedError
            The file changed (size, modification time) while the block ran.
        """
        if not self._is_path:
            raise ValueError(f"{self.name}: a file object given by the caller has no descriptor")
        if not self._keeps() or not self._lock.acquire(blocking=self._keep_file_open is True):
            fd = os.open(self._target, os.O_RDONLY)
            try:
                with self._unchanged(fd):
                    yield fd
            finally:
                os.close(fd)
            return
        try:
            with self._using_kept() as kept:
                kept_fd = _raw_fileno(kept)
                position = os.lseek(kept_fd, 0, os.SEEK_CUR)
                fd = os.dup(kept_fd)
                try:
                    with self._unchanged(fd):
                        yield fd
                finally:
                    os.close(fd)
                    os.lseek(kept_fd, position, os.SEEK_SET)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the kept file, if any (a caller's file object is left open)."""
        with self._lock:
            self._close_kept()
        _open_files.forget(self)

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
        return f"<{type(self).__name__} {self.name!r} keep_file_open={self._keep_file_open}>"

    def _keeps(self) -> bool:
        """Whether a path's file stays open between uses (for None: while any may)."""
        return self._keep_file_open is True or (
            self._keep_file_open is None and settings.open_files > 0
        )

    def _open_new(self, path: str | os.PathLike[str] | None = None) -> ReadableFile:
        """Open ``path`` (default: the target) once, named as the target in messages."""
        path = self._target if path is None else path
        if (container := container_for(self._target)) is not None:
            return container.open_read(path, name=self.name)
        if self._gzip_index is None:
            return open(path, "rb")  # noqa: SIM115 - closed by open() or close()
        fd = os.open(path, os.O_RDONLY)
        try:
            if self._bgzf_index is not None and is_bgzf_file(fd):
                return BgzfReader(fd, name=self.name, index=self._bgzf_index, closefd=True)
            raw = open(fd, "rb")  # noqa: SIM115 - owned by the reader
        except BaseException:
            os.close(fd)
            raise
        return GzipReader(raw, name=self.name, index=self._gzip_index, closefd=True)

    @contextmanager
    def _using_kept(self) -> Iterator[ReadableFile]:
        """The kept file (lock held), counted as in use for the block."""
        kept = self._kept_file()
        self._users += 1
        try:
            yield kept
        finally:
            self._users -= 1

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
        if self._keep_file_open is None:
            _open_files.used(self)
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
        self._users = 0

    def _close_kept(self) -> None:
        kept, self._kept = getattr(self, "_kept", None), None
        if kept is not None:
            kept.close()

    def _close_if_idle(self) -> bool:
        """Close the kept file unless it is in use (by any thread); whether it was closed."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._users:
                return False
            self._close_kept()
        finally:
            self._lock.release()
        return True


class OpenedFile:
    """A file open through a :class:`FileHandle`, read from ``start``: its first bytes, then the rest.

    A load sniffs ``head`` to choose the image class, reads the header through :meth:`read` (which
    serves ``head`` before reading on, so nothing is read or decompressed twice) and hands ``handle``
    on to the data's proxy, whose reads use the file the handle keeps. Use :meth:`open`.
    """

    def __init__(self, handle: FileHandle, fileobj: ReadableFile, head: bytes) -> None:
        self.handle = handle
        self.head = head
        self._fileobj = fileobj
        self._consumed = 0

    @classmethod
    @contextmanager
    def open(
        cls, handle: FileHandle, *, start: int = 0, head_bytes: int = 1024
    ) -> Iterator[OpenedFile]:
        """Open ``handle`` for the block (its lock held) and read up to ``head_bytes`` from ``start``."""
        with handle.open() as fileobj:
            fileobj.seek(start)
            yield cls(handle, fileobj, fileobj.read(head_bytes))

    def read(self, size: int | None = -1) -> bytes:
        """Read on from ``start``: ``head`` first, then the file (all that is left for -1 or None)."""
        cached = self.head[self._consumed :]
        if size is None or size < 0:
            self._consumed = len(self.head)
            return cached + self._fileobj.read()
        taken = cached[:size]
        self._consumed += len(taken)
        if len(taken) == size:
            return taken
        return taken + self._fileobj.read(size - len(taken))


class _OpenFiles:
    """The handles keeping a file open by gpuimg's choice (``keep_file_open=None``), oldest use first.

    At most ``settings.open_files`` of them keep their file: each use of one moves it to the end and
    closes the least recently used others past the cap. A handle in use by another thread is skipped
    (and counted as just used), so no read loses its file; lowering the setting closes files at once.
    Only this lock, then (without waiting) a handle's, is ever taken, so two handles cannot deadlock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: OrderedDict[int, weakref.ref[FileHandle]] = OrderedDict()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for ref in self._handles.values() if ref() is not None)

    def used(self, handle: FileHandle | None = None) -> None:
        """``handle`` (if any) was just used; close the least recently used files past the cap."""
        with self._lock:
            if handle is not None:
                self._handles[id(handle)] = weakref.ref(handle)
                self._handles.move_to_end(id(handle))
            for key, ref in list(self._handles.items()):
                if ref() is None:
                    del self._handles[key]
            over = len(self._handles) - settings.open_files
            victims = []
            for key, ref in list(self._handles.items()):
                if over <= 0:
                    break
                if ref() is not handle:
                    victims.append(ref)
                    del self._handles[key]
                    over -= 1
        busy = []
        for ref in victims:
            victim = ref()
            if victim is not None and not victim._close_if_idle():
                busy.append(victim)
        with self._lock:
            for victim in busy:
                self._handles[id(victim)] = weakref.ref(victim)

    def forget(self, handle: FileHandle) -> None:
        """``handle`` closed its file."""
        with self._lock:
            self._handles.pop(id(handle), None)


_open_files = _OpenFiles()
watch(_open_files.used, "open_files")


def open_files_count() -> int:
    """How many files gpuimg keeps open by its own choice (``keep_file_open=None``) now."""
    return len(_open_files)


def _raw_fileno(fileobj: ReadableFile) -> int:
    """The descriptor of the file under ``fileobj`` (the compressed file of a gzip or BGZF reader)."""
    if isinstance(fileobj, (GzipReader, BgzfReader)):
        return fileobj.raw.fileno()
    return fileobj.fileno()
