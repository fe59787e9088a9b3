"""Page-locked (pinned) host buffers, pooled: what makes a host-to-device copy asynchronous and fast.

Allocating pinned memory is slow, so :class:`PinnedPool` recycles buffers across reads and images; a
buffer comes back into use only after the CUDA event recorded behind its host-to-device copy has
completed. :func:`default_pinned_pool` is the pool every GPU read uses, sized by the settings
``pinned_buffer_size`` and ``pinned_max_buffers``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuimg.config import configure, reset_after_fork, settings, watch
from gpuimg.device.backend import get_cupy, on_backend_swap


@dataclass(frozen=True)
class PinnedPoolStats:
    """What a :class:`PinnedPool` holds: buffers allocated, their bytes, and how many are busy.

    ``in_use`` counts buffers handed out and not yet released; ``pending`` counts released buffers
    whose copy may still be running (their event has not been seen complete).
    """

    buffers: int
    bytes: int
    in_use: int
    pending: int
    buffer_size: int
    max_buffers: int


class PinnedPool:
    """A bounded pool of page-locked host buffers, reused across reads and images.

    Parameters
    ----------
    buffer_size : int
        Bytes per buffer (the streaming chunk size); at least 16.
    max_buffers : int
        Most buffers allocated at once; at least 1 (2 lets reading overlap copying).

    Notes
    -----
    :meth:`acquire` prefers a free buffer, then a pending one whose event is done, then a new
    allocation while under ``max_buffers``, then waits for the oldest pending copy to finish. A
    released buffer is never handed out before the event recorded after its copy has completed.
    Each buffer pins exactly ``buffer_size`` bytes, so ``stats().bytes`` is the real pinned footprint.
    """

    def __init__(self, buffer_size: int = 8 << 20, max_buffers: int = 4) -> None:
        self._cond = threading.Condition()
        self._free: list[np.ndarray] = []
        self._pending: deque[tuple[np.ndarray, Any]] = deque()
        self._count = 0
        self._bytes = 0
        self._in_use = 0
        self._buffer_size = 0
        self._max_buffers = 0
        self.configure(buffer_size=buffer_size, max_buffers=max_buffers)
        reset_after_fork(self)

    @property
    def buffer_size(self) -> int:
        """Bytes per buffer."""
        return self._buffer_size

    def configure(self, *, buffer_size: int | None = None, max_buffers: int | None = None) -> None:
        """Change the limits; idle buffers are dropped, busy ones when they come back."""
        if buffer_size is not None and buffer_size < 16:
            raise ValueError(f"pinned buffer_size is {buffer_size}, expected at least 16 bytes")
        if max_buffers is not None and max_buffers < 1:
            raise ValueError(f"pinned max_buffers is {max_buffers}, expected at least 1")
        with self._cond:
            self._buffer_size = buffer_size or self._buffer_size
            self._max_buffers = max_buffers or self._max_buffers
        self.clear()

    def stats(self) -> PinnedPoolStats:
        """Counts of buffers, bytes and buffers in use."""
        with self._cond:
            return PinnedPoolStats(
                buffers=self._count,
                bytes=self._bytes,
                in_use=self._in_use,
                pending=len(self._pending),
                buffer_size=self._buffer_size,
                max_buffers=self._max_buffers,
            )

    def acquire(self) -> np.ndarray:
        """Take a buffer (a uint8 numpy view of pinned memory, ``buffer_size`` long)."""
        with self._cond:
            buffer, event = self._claim()
        if buffer is None:
            return self._allocate()
        if event is not None:
            try:
                event.synchronize()
            except BaseException:
                self.release(buffer)
                raise
        return buffer

    def _after_fork(self) -> None:
        """In a forked child: a new lock and no buffers (the parent's pinned memory is not ours)."""
        self._cond = threading.Condition()
        self._free.clear()
        self._pending.clear()
        self._count = self._bytes = self._in_use = 0

    def _claim(self) -> tuple[np.ndarray | None, Any]:
        """Under the lock: a free buffer, the oldest pending one and its event, or None to allocate."""
        while not (self._free or self._pending or self._count < self._max_buffers):
            self._cond.wait()
        self._reclaim_done()
        self._in_use += 1
        if self._free:
            return self._free.pop(), None
        if self._count < self._max_buffers:
            self._count += 1
            return None, None
        return self._pending.popleft()

    def _allocate(self) -> np.ndarray:
        size = self._buffer_size
        try:
            # Pinned straight from CUDA, exactly ``size`` bytes: CuPy's pinned memory pool (behind
            # alloc_pinned_memory) rounds each request up to a power of two, and this pool recycles
            # its buffers itself.
            cuda = get_cupy().cuda
            memory = cuda.PinnedMemoryPointer(cuda.PinnedMemory(size), 0)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._in_use -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._bytes += size
        return np.frombuffer(memory, dtype=np.uint8, count=size)

    def release(self, buffer: np.ndarray, event: Any = None) -> None:
        """Give ``buffer`` back; with ``event``, it is reused only once the event is done."""
        resized = buffer.size != self._buffer_size
        if resized and event is not None:
            event.synchronize()
        with self._cond:
            self._in_use -= 1
            if resized:
                self._forget(buffer)
            elif event is not None:
                self._pending.append((buffer, event))
            else:
                self._free.append(buffer)
            self._cond.notify_all()

    def _reclaim_done(self) -> None:
        while self._pending and self._pending[0][1].done:
            self._free.append(self._pending.popleft()[0])

    def _forget(self, buffer: np.ndarray) -> None:
        self._count -= 1
        self._bytes -= buffer.size

    def clear(self) -> None:
        """Drop every buffer not in use, waiting for pending copies first."""
        with self._cond:
            idle = self._free + [buffer for buffer, _ in self._pending]
            events = [event for _, event in self._pending]
            self._free.clear()
            self._pending.clear()
            for buffer in idle:
                self._forget(buffer)
            self._cond.notify_all()
        for event in events:
            event.synchronize()
        # Only now may the pinned memory go: a copy may have been reading it until its event.
        del idle


_default_pool = PinnedPool(settings.pinned_buffer_size, settings.pinned_max_buffers)


def _follow_settings() -> None:
    _default_pool.configure(
        buffer_size=settings.pinned_buffer_size, max_buffers=settings.pinned_max_buffers
    )


watch(_follow_settings, "pinned_buffer_size", "pinned_max_buffers")

on_backend_swap(_default_pool.clear)


def default_pinned_pool() -> PinnedPool:
    """The pinned pool every GPU read uses."""
    return _default_pool


def set_pinned_pool_limits(
    *, buffer_size: int | None = None, max_buffers: int | None = None
) -> PinnedPoolStats:
    """Set the default pinned pool's buffer size (the chunk size) and buffer count.

    The same as setting ``gpuimg.config.settings.pinned_buffer_size`` and ``pinned_max_buffers``;
    None leaves a limit as it is.

    Returns
    -------
    PinnedPoolStats
        The pool's state after the change.
    """
    configure(
        **{
            name: value
            for name, value in (
                ("pinned_buffer_size", buffer_size),
                ("pinned_max_buffers", max_buffers),
            )
            if value is not None
        }
    )
    return _default_pool.stats()
