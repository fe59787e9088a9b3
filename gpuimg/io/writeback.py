"""Early writeback: ask the kernel to start writing a file's bytes while the rest are still written.

A durable save ends in an ``fsync`` that waits until every byte reached the device. Left alone, the
kernel starts writing the new file's pages only then (or when its dirty-page timers fire), so the
copy into the page cache and the device's write follow one another. :class:`EarlyWriteback` counts
the bytes written to a descriptor and, each time a whole window of them is written, starts their
writeback with Linux's ``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which queues the
writes and returns without waiting for them, so the device works while the next bytes are copied.

It never replaces the ``fsync``: it only starts writes early and promises nothing. Where the call
does not exist (not Linux, no C library) or fails (a file system or descriptor that does not take
it), nothing happens, and the file is not asked again.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable

__all__ = ["WINDOW", "EarlyWriteback"]

#: Bytes whose writeback is started at once. 1, 2 and 4 MiB timed alike; 16 MiB, or starting only
#: the bytes before the last block written, less well (``docs/performance.md``, "Saves, fourth pass").
WINDOW = 2 << 20
#: ``SYNC_FILE_RANGE_WRITE`` from ``<fcntl.h>``: start writeback of dirty pages, do not wait.
_SYNC_FILE_RANGE_WRITE = 2

_SyncFileRange = Callable[[int, int, int, int], int]


@functools.cache
def _sync_file_range() -> _SyncFileRange | None:
    """The C library's ``sync_file_range``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


class EarlyWriteback:
    """Start writeback of a descriptor's bytes as they are written, ``window`` bytes at a time.

    Parameters
    ----------
    fd : int
        The descriptor written to, from offset 0 on, sequentially.
    window : int
        Writeback is started for whole runs of ``window`` bytes, as soon as they are written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryFile() as f:
    ...     early = EarlyWriteback(f.fileno(), window=4096)
    ...     early.wrote(f.write(bytes(10_000)))
    ...     early.started
    8192
    """

    def __init__(self, fd: int, *, window: int = WINDOW) -> None:
        self.fd = fd
        self.window = window
        self.written = 0
        #: Bytes from offset 0 whose writeback was asked for.
        self.started = 0
        self._call = _sync_file_range()

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` more written; start writeback of the whole windows not yet started."""
        self.written += nbytes
        ready = self.written - self.started
        if self._call is None or ready < self.window:
            return
        length = ready - ready % self.window
        if self._call(self.fd, self.started, length, _SYNC_FILE_RANGE_WRITE) != 0:
            self._call = None  # not on this file: the fsync alone does the work, as without this
            return
        self.started += length
