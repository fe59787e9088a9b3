"""Atomic, durable replacement of files: what every save writes through.

A file is written where no reader can see it and put in place with one rename, only once every byte
of it was written, flushed and (by default) ``fsync``-ed; the folder is ``fsync``-ed after the
rename. Whatever fails, and wherever (opening, writing, the final flush, closing, syncing, renaming),
the old file stays byte-identical and nothing is left behind; a crash or a power cut leaves either the
old file or the new one, never a mix (the promise SQLite and git make).

* On Linux the data go to an unnamed file (``O_TMPFILE``), which the kernel frees if the process is
  killed; it gets a name (``.<target name>.<random>.tmp`` beside the target) only for the instant
  between ``linkat`` and the rename. Elsewhere, or on file systems without ``O_TMPFILE``, the file has
  that hidden name from the start, and a process killed with ``kill -9`` mid-save leaves it behind.
* A new file gets ``0o666 & ~umask``, as ``open()`` gives; a replaced file keeps its permission bits
  and, where the process may set them, its owner and group.
* While a durable save writes, the writeback of its bytes is started every few MiB
  (:mod:`gpuimg.io.writeback`), so the ``fsync`` finds most of them on the device already.
* ``gpuimg.config.settings.fsync = False`` skips both ``fsync`` calls and the early writeback for
  scratch output (see ``docs/performance.md`` for what they cost).

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     with AtomicFiles() as files:
...         files.create(os.path.join(folder, "a.txt")).write(b"new")
...     os.listdir(folder)
3
['a.txt']
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import threading
from typing import TypeVar

from gpuimg.config import settings
from gpuimg.io.openers import open_image_file
from gpuimg.io.positioned import WritableFile
from gpuimg.io.writeback import EarlyWriteback

__all__ = ["AtomicFiles"]

_WRITE_BUFFER = 1 << 20
#: Replaced files at least this large are freed off the saving thread (see ``_open_replaced``).
_HOLD_BYTES = 1 << 20
#: Where an unnamed file can be given a name: the link to its descriptor.
_FD_LINKS = "/proc/self/fd"


class _TemporaryFile(io.FileIO):
    """The raw file a save writes to; its write errors name the target, not the temporary file.

    A file that will be ``fsync``-ed (``durable``) has its writeback started as it is written
    (:class:`~gpuimg.io.writeback.EarlyWriteback`), so the ``fsync`` finds most of it on its way.
    """

    def __init__(self, fd: int, target: str, *, durable: bool) -> None:
        super().__init__(fd, "wb", closefd=True)
        self.target = target
        self.early = EarlyWriteback(fd) if durable else None

    def write(self, data) -> int:
        try:
            written = super().write(data)
        except OSError as error:
            raise save_error(self.target, error) from error
        if self.early is not None and written:
            self.early.wrote(written)
        return written


def save_error(target: str, error: OSError) -> OSError:
    """``error`` again (same errno, so the same ``OSError`` subclass), naming ``target``."""
    if error.filename == target or error.errno is None:
        return error
    return OSError(error.errno, f"cannot save: {error.strerror or error}", target)


class _Pending:
    """One file being written: its descriptor, its writer, and where it goes."""

    def __init__(
        self, target: str, fd: int, temporary: str | None, compresslevel: int, bgzf: bool
    ) -> None:
        self.target = target
        self.path = os.path.abspath(target)
        self.folder = os.path.dirname(self.path)
        self.temporary = temporary  # None: an unnamed (O_TMPFILE) file
        self.raw = _TemporaryFile(fd, target, durable=settings.fsync)  # owns the descriptor now
        try:
            self.buffered = io.BufferedWriter(self.raw, _WRITE_BUFFER)
            self.writer = open_image_file(
                target, "wb", compresslevel=compresslevel, bgzf=bgzf, fileobj=self.buffered
            )
        except BaseException:  # no writer for this target (a zstd file without its module...)
            self.raw.close()
            raise

    def finish(self, sync: bool) -> None:
        """Close the writers, flushing every byte; ``fsync`` when ``sync``. Raises on any failure."""
        if self.writer is not self.buffered:
            self.writer.close()  # a gzip writer: writes its trailer into the buffer
        self.buffered.flush()
        if sync:
            os.fsync(self.raw.fileno())

    def place(self) -> None:
        """Put the finished file at its target with one rename."""
        if self.temporary is None:
            self.temporary = _hidden_name(self.path)
            folder_fd = os.open(self.folder, os.O_RDONLY)
            try:
                # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names the unnamed file itself.
                os.link(
                    f"{_FD_LINKS}/{self.raw.fileno()}",
                    os.path.basename(self.temporary),
                    dst_dir_fd=folder_fd,
                    follow_symlinks=True,
                )
            finally:
                os.close(folder_fd)
        replaced = _open_replaced(self.path)
        try:
            os.replace(self.temporary, self.path)
        finally:
            if replaced is not None:
                _close_later(replaced)
        self.temporary = None

    def discard(self) -> None:
        """Close everything quietly and remove the temporary name, if it has one."""
        for closable in (self.writer, self.buffered, self.raw):
            try:
                closable.close()
            except (OSError, ValueError):
                pass  # the file is being thrown away; the error that matters is already raised
        _remove(self.temporary)


def _remove(temporary: str | None) -> None:
    """Remove a temporary file by name (None: an unnamed file, gone with its descriptor)."""
    if temporary is not None:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass


_A = TypeVar("_A", bound="AtomicFiles")


class AtomicFiles:
    """Write files that replace their targets only when every one of them was written.

    Use as a context manager; :meth:`create` opens each file. On leaving the block without an error,
    every file is finished (flushed, ``fsync``-ed) and only then renamed over its target; on an error
    nothing is renamed and no temporary is left. Errors name the target, as the caller gave it.

    Notes
    -----
    Each file is replaced atomically. Several files (a ``.hdr``/``.img`` pair) are put in place one
    after the other once all were written, so only a failure between the renames can pair a new
    header with an old image.
    """

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def __enter__(self: _A) -> _A:
        return self

    def create(
        self, target: str | os.PathLike[str], *, compresslevel: int = 1, bgzf: bool = False
    ) -> WritableFile:
        """Open a file that will replace ``target``; ``.gz`` targets get a gzip (or BGZF) writer.

        Returns
        -------
        file object
            Write the contents to it; leave closing to the ``with`` block.
        """
        target = os.fspath(target)
        path = os.path.abspath(target)
        try:
            existing = os.stat(path)
        except FileNotFoundError:
            existing = None
        except OSError as error:
            raise save_error(target, error) from error
        try:
            fd, temporary = _create_temporary(path)
        except OSError as error:
            raise save_error(target, error) from error
        try:
            if existing is not None:
                _copy_mode(fd, existing)
        except BaseException:
            os.close(fd)
            _remove(temporary)
            raise
        try:
            pending = _Pending(target, fd, temporary, compresslevel, bgzf)  # closes fd if it fails
        except BaseException:
            _remove(temporary)
            raise
        self._pending.append(pending)
        return pending.writer

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            if isinstance(exc, OSError) and exc.errno is not None and len(self._pending) == 1:
                raise save_error(self._pending[0].target, exc) from exc
            return
        sync = settings.fsync
        try:
            for current in self._pending:
                current.finish(sync)
            for current in self._pending:
                current.place()
        except OSError as error:
            self._discard()
            raise save_error(current.target, error) from error
        except BaseException:
            self._discard()
            raise
        for pending in self._pending:
            pending.discard()  # only closes now: every file is in place
        if sync:
            for pending in {p.folder: p for p in self._pending}.values():
                try:
                    _fsync_folder(pending.folder)
                except OSError as error:
                    raise save_error(pending.target, error) from error

    def _discard(self) -> None:
        for pending in self._pending:
            pending.discard()


def _hidden_name(path: str) -> str:
    """A fresh hidden name beside ``path``: ``.<name>.<random>.tmp``."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")


def _create_temporary(path: str) -> tuple[int, str | None]:
    """A new file for writing in ``path``'s folder: unnamed where possible, else hidden-named.

    Created with mode 0o666, which the kernel narrows by the umask, as ``open()`` does.
    """
    folder = os.path.dirname(path)
    if hasattr(os, "O_TMPFILE") and os.path.isdir(_FD_LINKS):
        try:
            return os.open(folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666), None
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    while True:
        temporary = _hidden_name(path)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _copy_mode(fd: int, existing: os.stat_result) -> None:
    """Give the new file the replaced file's owner (where permitted) and permission bits."""
    if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, existing.st_uid, existing.st_gid)
        except PermissionError:
            pass  # only root (or the owner, for the group) may; the file is then the saver's
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))


def _open_replaced(path: str) -> int | None:
    """A descriptor of the large regular file ``path`` is about to stop naming, or None.

    Renaming over a file's last name frees its blocks inside the rename, synchronously: 25-80 ms
    for a 33-67 MB file on the development machine's ext4. Held open, the file is freed only when
    the descriptor is closed, which :func:`_close_later` does off the saving thread. Only on POSIX
    (elsewhere an open file cannot be replaced), for regular files with one name, of 1 MiB or more.
    """
    if os.name != "posix":
        return None
    try:
        found = os.lstat(path)
        if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1 or found.st_size < _HOLD_BYTES:
            return None
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # gone, unreadable: the rename frees it, as without this


def _close_later(fd: int) -> None:
    """Close ``fd`` on a short-lived thread, where freeing a replaced file's blocks happens."""
    threading.Thread(target=os.close, args=(fd,), name="gpuimg-free-replaced", daemon=True).start()


def _fsync_folder(folder: str) -> None:
    """Make the renames in ``folder`` durable (where the file system can sync a folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
