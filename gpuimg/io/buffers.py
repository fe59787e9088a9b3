"""A bounded pool of reusable host byte buffers.

Reading into a buffer whose pages are already mapped is 2-4x faster than into
a fresh allocation (no page faults), so whole-volume reads borrow their
staging memory from a pool and hand it back when done.

>>> pool = HostBufferPool(1 << 20)
>>> with pool.borrow(1000) as buf:
...     address = buf.ctypes.data
...     buf.shape
(1000,)
>>> with pool.borrow(900) as buf:  # same size class: the same memory again
...     buf.ctypes.data == address
True
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from gpuimg.config import reset_after_fork

__all__ = ["DEFAULT_POOL_BYTES", "HostBufferPool", "default_pool", "size_class"]

#: Idle bytes the module's :data:`default_pool` keeps for reuse.
DEFAULT_POOL_BYTES = 256 * 1024 * 1024

_MIN_CLASS = 4096
_STEPS_PER_OCTAVE = 4  # size classes at most 25% above the request


def size_class(nbytes: int) -> int:
    """Capacity of the pooled buffer that serves a request of ``nbytes``.

    Classes are ``_STEPS_PER_OCTAVE`` evenly spaced sizes per power of two, so
    a buffer is at most 25% larger than asked and nearby sizes share buffers.

    >>> size_class(1), size_class(5000), size_class(8192), size_class(8193)
    (4096, 5120, 8192, 10240)
    """
    if nbytes <= _MIN_CLASS:
        return _MIN_CLASS
    step = (1 << ((nbytes - 1).bit_length() - 1)) // _STEPS_PER_OCTAVE
    return -(-nbytes // step) * step


class HostBufferPool:
    """Reusable, bounded, thread-safe pool of uint8 numpy buffers.

    Parameters
    ----------
    max_bytes : int
        Most bytes kept idle for reuse. A returned buffer that would exceed it
        evicts the least recently returned ones; a buffer larger than
        ``max_bytes`` is never kept.

    Notes
    -----
    A borrowed array is a view of pooled memory: do not keep it, or any view
    of it, after the ``with`` block.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes is {max_bytes}, expected a non-negative number of bytes")
        self._max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._idle: list[np.ndarray] = []  # least recently returned first
        self._retained = 0
        self._borrowed = 0
        reset_after_fork(self)

    @property
    def max_bytes(self) -> int:
        """Most idle bytes kept; lowering it releases buffers at once."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"max_bytes is {value}, expected a non-negative number of bytes")
        with self._lock:
            self._max_bytes = int(value)
            self._trim()

    @property
    def retained_bytes(self) -> int:
        """Bytes held idle, ready for reuse."""
        return self._retained

    @property
    def borrowed_bytes(self) -> int:
        """Capacity, in bytes, of the buffers currently lent out."""
        return self._borrowed

    @contextmanager
    def borrow(self, nbytes: int) -> Iterator[np.ndarray]:
        """Lend a writable uint8 array of exactly ``nbytes`` for the ``with`` block.

        Parameters
        ----------
        nbytes : int
            Length of the array. Its contents are undefined (not zeroed).

        Yields
        ------
        numpy.ndarray
            A 1-D, C-contiguous uint8 view of a pooled buffer.
        """
        nbytes = int(nbytes)
        if nbytes < 0:
            raise ValueError(f"cannot borrow {nbytes} bytes, expected a non-negative size")
        buffer = self._take(size_class(nbytes))
        try:
            yield buffer[:nbytes]
        finally:
            self._give_back(buffer)

    def clear(self) -> None:
        """Release every idle buffer."""
        with self._lock:
            self._idle.clear()
            self._retained = 0

    def _after_fork(self) -> None:
        """Rebuild the lock in a forked child (see :func:`gpuimg.config.reset_after_fork`)."""
        if self._lock.locked():  # held by a thread that is gone: the idle list may be half-updated
            self._idle, self._retained = [], 0
        self._lock = threading.Lock()
        self._borrowed = 0  # buffers lent to the parent's other threads never come back here

    def _take(self, capacity: int) -> np.ndarray:
        with self._lock:
            self._borrowed += capacity
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index].nbytes == capacity:
                    self._retained -= capacity
                    return self._idle.pop(index)
        return np.empty(capacity, np.uint8)

    def _give_back(self, buffer: np.ndarray) -> None:
        with self._lock:
            self._borrowed -= buffer.nbytes
            if buffer.nbytes <= self._max_bytes:
                self._idle.append(buffer)
                self._retained += buffer.nbytes
                self._trim()

    def _trim(self) -> None:
        """Evict least recently returned buffers until within ``max_bytes`` (lock held)."""
        while self._retained > self._max_bytes:
            self._retained -= self._idle.pop(0).nbytes

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} retained={self._retained} borrowed={self._borrowed} "
            f"max_bytes={self._max_bytes}>"
        )


#: The pool gpuimg's own reads borrow from.
default_pool = HostBufferPool(DEFAULT_POOL_BYTES)
