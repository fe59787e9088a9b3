"""A strict CPU test double of the CuPy subset that ``gpuimg.device`` and ``gpuimg.gpuread`` use.

Install it with ``gpuimg.device.use_backend(cupy_double)``. It follows CuPy's documented behaviour for
that subset and nothing more; where CuPy (or nvcc) would be lenient, the double is strict, so code that
passes on it has spelled out what it means:

* :class:`ndarray` is its own type; ``np.asarray(array)`` raises TypeError as CuPy does. Data leave
  only through ``.get()`` / :func:`asnumpy`, which copy on a stream and synchronise it; a copy in an
  order the array does not have is made on the device first (device memory, as in CuPy).
* Devices: each has its own memory pool and, per thread, its own current stream
  (``get_current_stream()`` is the current device's). Entering a stream created on another device
  raises RuntimeError, and a kernel or ``astype`` on an array of another device raises ValueError
  (peer access unavailable), as CuPy does; ``ndarray.copy()`` copies from another device.
* Device memory is counted by :class:`MemoryPool` (``used_bytes``, ``total_bytes``,
  ``free_all_blocks``, ``set_limit``), per device, in 512-byte blocks. As in CuPy, a block is cached
  per stream (the current stream when it was allocated) once its array is garbage collected, and the
  next allocation of that size on that stream gets it back at once, old contents and all, even while
  work queued on that stream may still use it. Allocating past the limit raises
  ``cuda.memory.OutOfMemoryError``. Fresh memory is filled with 0xA5 bytes, never zeros.
* Streams are lazy: copies and kernels are queued on a stream and run only when something waits
  for them (``Stream.synchronize``, ``Event.synchronize``, another stream's ``wait_event`` once that
  stream runs, or ``.get()``). ``Event.done`` reports progress without forcing any. A copy from
  pinned memory reads the host buffer when it runs, so reusing that buffer before the event after
  the copy is done gives wrong data, as on a GPU; a copy from pageable memory is staged at once.
  Streams do not synchronise implicitly with the null stream (gpuimg uses non-blocking streams).
* Races are errors: every copy and kernel checks, when it is queued, that the work other streams
  queued on the same device memory (its last writers, the readers before a write, and the work queued
  on the allocating stream before a cached block was handed back) is ordered before it: by an event
  this stream waited on (directly or through other streams' waits), or by the host having waited for
  it. Otherwise it raises :class:`RaceError`.
* :class:`ElementwiseKernel` interprets the kernel's C source (``tests/cuda_c.py``) with CuPy's
  ``-ftz=true`` single-precision semantics; ``astype`` between float32 and other types flushes
  float32 subnormals too, as CuPy's cast kernels (compiled with ``-ftz=true``) do.
* Pinned memory: :class:`PinnedMemory` pins exactly the bytes asked for; the pinned memory pool
  behind ``alloc_pinned_memory`` rounds every request up to a power of two (at least 512 bytes), as
  CuPy 14's ``PinnedMemoryPool.malloc`` does.

Test-only controls, not CuPy API: :func:`set_device_count`, :func:`pinned_bytes`, :class:`RaceError`,
:func:`stream_from_ptr`.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from types import SimpleNamespace

import numpy as np
from cuda_c import Program, ftz_cast

__version__ = "double"

_tls = threading.local()
_device_count = 1
_lock = threading.RLock()


# --------------------------------------------------------------------------------------------------
# Runtime, devices
# --------------------------------------------------------------------------------------------------
class CUDARuntimeError(RuntimeError):
    """CuPy's ``cupy.cuda.runtime.CUDARuntimeError``."""


class OutOfMemoryError(MemoryError):
    """CuPy's ``cupy.cuda.memory.OutOfMemoryError``."""

    def __init__(self, size: int, total: int, limit: int = 0) -> None:
        super().__init__(
            f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes, "
            f"limit set to: {limit:,} bytes)."
        )


class RaceError(RuntimeError):
    """Test-only: device memory used by two streams with nothing ordering one after the other."""


def set_device_count(count: int) -> None:
    """Test control: how many devices ``runtime.getDeviceCount()`` reports."""
    global _device_count
    _device_count = count


def _get_device_count() -> int:
    return _device_count


def _device_stack() -> list[int]:
    if not hasattr(_tls, "devices"):
        _tls.devices = [0]
    return _tls.devices


def _current_device() -> int:
    return _device_stack()[-1]


class Device:
    """``cupy.cuda.Device``: a device id, usable as a context manager."""

    def __init__(self, device: int | Device | None = None) -> None:
        if device is None:
            self.id = _current_device()
        elif isinstance(device, Device):
            self.id = device.id
        else:
            self.id = int(device)

    def __enter__(self) -> Device:
        if not 0 <= self.id < _device_count:
            raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        _device_stack().append(self.id)
        return self

    def __exit__(self, *exc: object) -> None:
        _device_stack().pop()

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


# --------------------------------------------------------------------------------------------------
# Streams and events
# --------------------------------------------------------------------------------------------------
_stream_numbers = itertools.count()


def _stream_stacks() -> tuple[dict[int, list[Stream]], list[int]]:
    """This thread's current-stream stack per device, and the devices in the order streams were entered."""
    if not hasattr(_tls, "streams"):
        _tls.streams = ({}, [])
    return _tls.streams


class Stream:
    """``cupy.cuda.Stream``: an ordered queue of device work that runs only when waited for."""

    null: Stream

    def __init__(
        self, null: bool = False, non_blocking: bool = False, ptds: bool = False, priority: int = 0
    ) -> None:
        self._ops: deque[Callable[[], None]] = deque()
        self._queued = 0
        self._ran = 0
        # Other streams' positions this stream's later work is ordered after (waited-for events).
        self._after: dict[Stream, int] = {}
        self._number = next(_stream_numbers)
        self.device_id = -1 if null else _current_device()
        # CuPy's raw cudaStream_t handle (0 for the null stream); libraries such as nvCOMP take it.
        self.ptr = 0 if null else id(self)
        _streams_by_ptr[self.ptr] = self

    def __repr__(self) -> str:
        return f"<Stream {self._number} (device {self.device_id})>"

    def __enter__(self) -> Stream:
        device = _current_device()
        if self.device_id not in (-1, device):
            raise RuntimeError(
                f"The device that the stream is created on ({self.device_id}) does not match "
                f"with the current device ({device})"
            )
        stacks, entered = _stream_stacks()
        stacks.setdefault(device, []).append(self)
        entered.append(device)
        return self

    def __exit__(self, *exc: object) -> None:
        stacks, entered = _stream_stacks()
        stacks[entered.pop()].pop()

    def record(self, event: Event | None = None) -> Event:
        """Record ``event`` (a new one if None) after the work queued so far."""
        event = Event() if event is None else event
        event.record(self)
        return event

    def synchronize(self) -> None:
        """Run everything queued."""
        self._run_through(self._queued)

    def wait_event(self, event: Event) -> None:
        """Later work on this stream runs after the work ``event`` was recorded behind."""
        marker = event._marker
        if marker is not None:
            stream, position, after = marker
            self._enqueue(lambda: stream._run_through(position))
            for source, at in {**after, stream: position}.items():
                self._after[source] = max(self._after.get(source, 0), at)

    def _enqueue(self, op: Callable[[], None]) -> None:
        self._ops.append(op)
        self._queued += 1

    def _run_through(self, position: int) -> None:
        while self._ran < position:
            op = self._ops.popleft()
            self._ran += 1
            op()

    def _ordered_after(self, stream: Stream, position: int) -> bool:
        """True if work queued here now runs after ``stream``'s first ``position`` operations."""
        return stream is self or stream._ran >= position or self._after.get(stream, 0) >= position


_streams_by_ptr: weakref.WeakValueDictionary[int, Stream] = weakref.WeakValueDictionary()
Stream.null = Stream(null=True)


def stream_from_ptr(ptr: int) -> Stream:
    """Test control, not CuPy API: the stream whose ``ptr`` is ``ptr`` (for other libraries' doubles)."""
    return _streams_by_ptr[ptr]


def get_current_stream(device_id: int = -1) -> Stream:
    """``cupy.cuda.get_current_stream``: the current stream of ``device_id`` (the current device)."""
    stack = _stream_stacks()[0].get(_current_device() if device_id == -1 else device_id)
    return stack[-1] if stack else Stream.null


class Event:
    """``cupy.cuda.Event``."""

    def __init__(
        self, block: bool = False, disable_timing: bool = False, interprocess: bool = False
    ) -> None:
        self._marker: tuple[Stream, int, dict[Stream, int]] | None = None

    def record(self, stream: Stream | None = None) -> None:
        """Record on ``stream`` (the null stream by default, as CuPy documents)."""
        stream = Stream.null if stream is None else stream
        self._marker = (stream, stream._queued, dict(stream._after))

    def synchronize(self) -> None:
        """Wait for (here: run) the work recorded before this event."""
        if self._marker is not None:
            stream, position, _ = self._marker
            stream._run_through(position)

    @property
    def done(self) -> bool:
        """True once the recorded work has run; querying never makes it run."""
        if self._marker is None:
            return True
        stream, position, _ = self._marker
        return stream._ran >= position


# --------------------------------------------------------------------------------------------------
# Device memory: per-device pools, per-stream caches, and who may still be using a block
# --------------------------------------------------------------------------------------------------
class _Users:
    """Streams whose queued work may still use a block: position after its last writes and reads."""

    def __init__(self, writers: dict[Stream, int] | None = None) -> None:
        self.writers: dict[Stream, int] = dict(writers or {})
        self.readers: dict[Stream, int] = {}

    def pending(self) -> dict[Stream, int]:
        """Every stream position a new owner of the block must be ordered after."""
        pending = dict(self.writers)
        for stream, position in self.readers.items():
            pending[stream] = max(pending.get(stream, 0), position)
        return pending


def _launch(
    stream: Stream,
    op: Callable[[], None],
    what: str,
    reads: Iterable[_Memory] = (),
    writes: Iterable[_Memory] = (),
) -> None:
    """Queue ``op`` on ``stream`` after checking it is ordered after every other user of its memory."""
    reads, writes = list(reads), list(writes)
    for memory, hazards in [(m, m.users.writers) for m in reads] + [
        (m, m.users.pending()) for m in writes
    ]:
        for other, position in hazards.items():
            if not stream._ordered_after(other, position):
                raise RaceError(
                    f"{what} on {stream!r} uses device memory (device {memory.device_id}) that work "
                    f"queued on {other!r} may still be using: nothing orders that work before this "
                    f"stream (record an event on {other!r} and wait_event it)"
                )
    stream._enqueue(op)
    for memory in reads:
        memory.users.readers[stream] = stream._queued
    for memory in writes:
        memory.users.writers = {stream: stream._queued}
        memory.users.readers = {}


class _DevicePool:
    """One device's pool: bytes in use, blocks cached per stream, the limit."""

    def __init__(self) -> None:
        self._used = 0
        self._cached = 0
        self._limit = 0
        self._arenas: dict[Stream, dict[int, list[tuple[np.ndarray, dict[Stream, int]]]]] = {}

    def used_bytes(self) -> int:
        return self._used

    def total_bytes(self) -> int:
        return self._used + self._cached

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        with _lock:
            streams = list(self._arenas) if stream is None else [stream]
            for arena in (self._arenas.pop(s, {}) for s in streams):
                self._cached -= sum(len(b) * size for size, b in arena.items())

    def set_limit(self, size: int | None = None) -> None:
        self._limit = size or 0

    def get_limit(self) -> int:
        return self._limit

    def malloc(self, nbytes: int, stream: Stream) -> tuple[np.ndarray, _Users]:
        """A block of at least ``nbytes`` for work on ``stream``: a cached one first, else a new one."""
        size = -(-nbytes // 512) * 512
        if size == 0:
            return np.empty(0, dtype=np.uint8), _Users()
        with _lock:
            cached = self._arenas.get(stream, {}).get(size)
            if cached:
                block, pending = cached.pop()
                self._cached -= size
                self._used += size
                return block, _Users(pending)
            if self._limit and self.total_bytes() + size > self._limit:
                self.free_all_blocks()
                if self._used + size > self._limit:
                    raise OutOfMemoryError(size, self._used, self._limit)
            self._used += size
        return np.full(size, 0xA5, dtype=np.uint8), _Users()

    def free(self, block: np.ndarray, stream: Stream, users: _Users) -> None:
        """Cache ``block`` for ``stream``; whoever gets it next is ordered after its last users only
        through ``stream``'s order, which is what CuPy promises."""
        if not block.size:
            return
        pending = users.pending()
        pending[stream] = max(pending.get(stream, 0), stream._queued)
        with _lock:
            self._used -= block.size
            self._cached += block.size
            arena = self._arenas.setdefault(stream, {})
            arena.setdefault(block.size, []).append((block, pending))


class MemoryPool:
    """``cupy.cuda.MemoryPool``: one pool per device; every method acts on the current device's."""

    def __init__(self) -> None:
        self._pools: dict[int, _DevicePool] = defaultdict(_DevicePool)

    def _device_pool(self, device_id: int | None = None) -> _DevicePool:
        return self._pools[_current_device() if device_id is None else device_id]

    def used_bytes(self) -> int:
        return self._device_pool().used_bytes()

    def total_bytes(self) -> int:
        return self._device_pool().total_bytes()

    def free_all_blocks(self, stream: Stream | None = None) -> None:
        self._device_pool().free_all_blocks(stream)

    def set_limit(self, size: int | None = None) -> None:
        self._device_pool().set_limit(size)

    def get_limit(self) -> int:
        return self._device_pool().get_limit()


_memory_pool = MemoryPool()


def get_default_memory_pool() -> MemoryPool:
    return _memory_pool


class _Memory:
    """One device allocation, made on the current device and stream; its block goes back to that
    stream's cache when the allocation is garbage collected."""

    def __init__(self, nbytes: int) -> None:
        self.device_id = _current_device()
        stream = get_current_stream()
        pool = _memory_pool._device_pool(self.device_id)
        block, self.users = pool.malloc(nbytes, stream)
        self.bytes = block[:nbytes]
        weakref.finalize(self, pool.free, block, stream, self.users)


# --------------------------------------------------------------------------------------------------
# Pinned host memory
# --------------------------------------------------------------------------------------------------
_pinned = {"live": 0}
_pinned_ranges: dict[int, tuple[int, int]] = {}


def pinned_bytes() -> int:
    """Test control: bytes of pinned host memory allocated now (the real footprint)."""
    return _pinned["live"]


def _on_pinned_freed(key: int, size: int) -> None:
    del _pinned_ranges[key]
    _pinned["live"] -= size


class PinnedMemory(bytearray):
    """``cupy.cuda.PinnedMemory``: exactly ``size`` bytes of page-locked host memory."""

    def __init__(self, size: int, flags: int = 0) -> None:
        super().__init__(size)
        self.size = size
        self.ptr = np.frombuffer(self, dtype=np.uint8).ctypes.data if size else 0
        _pinned_ranges[id(self)] = (self.ptr, self.ptr + size)
        _pinned["live"] += size
        weakref.finalize(self, _on_pinned_freed, id(self), size)


def PinnedMemoryPointer(mem: PinnedMemory, offset: int) -> ctypes.Array:  # noqa: N802 - CuPy's name
    """``cupy.cuda.PinnedMemoryPointer``: the buffer from ``offset`` to the end of ``mem``."""
    return (ctypes.c_uint8 * (mem.size - offset)).from_buffer(mem, offset)


class PinnedMemoryPool:
    """``cupy.cuda.PinnedMemoryPool`` (CuPy 14): requests round up to a power of two, at least 512
    bytes; freed blocks stay pinned, cached for the same size, until ``free_all_blocks``."""

    def __init__(self) -> None:
        self._free: dict[int, list[PinnedMemory]] = defaultdict(list)

    def malloc(self, size: int) -> ctypes.Array:
        rounded = 1 << (max(-(-size // 512) * 512, 1) - 1).bit_length()
        with _lock:
            cached = self._free[rounded]
            mem = cached.pop() if cached else PinnedMemory(rounded)
        pointer = PinnedMemoryPointer(mem, 0)
        weakref.finalize(pointer, self._give_back, mem)
        return pointer

    def _give_back(self, mem: PinnedMemory) -> None:
        with _lock:
            self._free[mem.size].append(mem)

    def n_free_blocks(self) -> int:
        return sum(len(blocks) for blocks in self._free.values())

    def free_all_blocks(self) -> None:
        with _lock:
            self._free.clear()


_pinned_pool = PinnedMemoryPool()


def get_default_pinned_memory_pool() -> PinnedMemoryPool:
    return _pinned_pool


def alloc_pinned_memory(size: int) -> ctypes.Array:
    """``cupy.cuda.alloc_pinned_memory``: from the default pinned memory pool."""
    return _pinned_pool.malloc(size)


def _is_pinned(array: np.ndarray) -> bool:
    address = array.__array_interface__["data"][0]
    return any(start <= address < stop for start, stop in _pinned_ranges.values())


# --------------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------------
_DEVICE_KINDS = "biufc"


class _Flags(SimpleNamespace):
    c_contiguous: bool
    f_contiguous: bool
    owndata: bool


def _check_device(arrays: Iterable[object]) -> None:
    """CuPy's kernels refuse arrays of another device (peer access is unavailable in the double)."""
    device = _current_device()
    for array in arrays:
        if isinstance(array, ndarray) and array._memory.device_id != device:
            raise ValueError(
                f"The device where the array resides ({array._memory.device_id}) is different "
                f"from the current device ({device}). Peer access is unavailable between these "
                "devices."
            )


def _in_order(array: ndarray, order: str) -> bool:
    """True when ``array`` already has the memory ``order`` asks for."""
    flags = array.flags
    return (
        order in "AK"
        or (order == "C" and flags.c_contiguous)
        or (order == "F" and flags.f_contiguous)
    )


class ndarray:  # noqa: N801 - CuPy's name
    """``cupy.ndarray``: a numpy view into double-owned device memory."""

    def __init__(
        self, shape: int | tuple[int, ...], dtype: object = float, order: str = "C"
    ) -> None:
        dtype = np.dtype(dtype)
        if dtype.kind not in _DEVICE_KINDS or not dtype.isnative or dtype.itemsize > 16:
            raise ValueError(f"Unsupported dtype {dtype}")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        count = int(np.prod(shape, dtype=np.int64))
        self._memory = _Memory(count * dtype.itemsize)
        self._view = self._memory.bytes.view(dtype).reshape(shape, order=order)
        self._base: ndarray | None = None

    @classmethod
    def _view_of(cls, base: ndarray, view: np.ndarray) -> ndarray:
        array = cls.__new__(cls)
        array._memory, array._view, array._base = base._memory, view, base
        return array

    shape = property(lambda self: self._view.shape)
    dtype = property(lambda self: self._view.dtype)
    size = property(lambda self: self._view.size)
    ndim = property(lambda self: self._view.ndim)
    nbytes = property(lambda self: self._view.nbytes)
    itemsize = property(lambda self: self._view.itemsize)
    strides = property(lambda self: self._view.strides)

    @property
    def device(self) -> Device:
        """The device the array's memory is on."""
        return Device(self._memory.device_id)

    @property
    def flags(self) -> _Flags:
        return _Flags(
            c_contiguous=self._view.flags.c_contiguous,
            f_contiguous=self._view.flags.f_contiguous,
            owndata=self._base is None,
        )

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __repr__(self) -> str:
        return f"<cupy_double.ndarray shape={self.shape} dtype={self.dtype}>"

    def __getitem__(self, key: object) -> ndarray:
        key = key if isinstance(key, tuple) else (key,)
        for item in key:
            if not isinstance(item, (int, np.integer, slice, type(None), type(Ellipsis))):
                raise NotImplementedError(f"the double supports basic indexing only, got {item!r}")
        if not any(item is Ellipsis for item in key):
            key = (*key, Ellipsis)
        return ndarray._view_of(self, self._view[key])

    def reshape(self, *shape: object, order: str = "C") -> ndarray:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        view = self._view.reshape(shape, order=order)
        if view.size and not np.may_share_memory(view, self._view):
            raise NotImplementedError("the double only reshapes without a copy")
        return ndarray._view_of(self, view)

    def view(self, dtype: object = None) -> ndarray:
        """The same memory as ``dtype`` (its itemsize may differ when the last axis is contiguous)."""
        if dtype is None:
            return ndarray._view_of(self, self._view.view())
        return ndarray._view_of(self, self._view.view(np.dtype(dtype)))

    def transpose(self, *axes: object) -> ndarray:
        """A view with the axes permuted, as ``cupy.ndarray.transpose``."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ndarray._view_of(self, self._view.transpose(*axes))

    def copy(self, order: str = "C") -> ndarray:
        """A new array on the current device (copied from another device if need be)."""
        if self._memory.device_id == _current_device() or not self.size:
            return self.astype(self.dtype, order=order)
        with Device(self._memory.device_id):
            source = self.astype(self.dtype, order=order, copy=False)
        if not (source.flags.c_contiguous or source.flags.f_contiguous):
            raise NotImplementedError("CuPy cannot copy non-contiguous array between devices.")
        fortran = source.flags.f_contiguous and not source.flags.c_contiguous
        out = ndarray(source.shape, source.dtype, order="F" if fortran else "C")
        target, view = out._view, source._view
        _launch(
            get_current_stream(),
            lambda: np.copyto(target, view),
            "a copy between devices",
            reads=[source._memory],
            writes=[out._memory],
        )
        return out

    def astype(self, dtype: object, order: str = "K", copy: bool = True) -> ndarray:
        """A converted copy on the current stream (``self`` when ``copy`` is False and nothing changes)."""
        dtype = np.dtype(dtype)
        if not copy and self.dtype == dtype and _in_order(self, order):
            return self
        _check_device([self])
        fortran = order == "F" or (order in "AK" and self.flags.f_contiguous)
        out = ndarray(self.shape, dtype, order="F" if fortran else "C")
        source, target = self._view, out._view

        def convert() -> None:
            target[...] = ftz_cast(source, target.dtype)

        _launch(get_current_stream(), convert, "astype", reads=[self._memory], writes=[out._memory])
        return out

    def get(
        self,
        stream: Stream | None = None,
        order: str = "C",
        out: object = None,
        blocking: bool = True,
    ) -> np.ndarray:
        """Copy to the host on ``stream`` (the current stream), after the work queued there.

        With ``out``, into that numpy array, which must have this array's shape and dtype and be C-
        or F-contiguous; as in CuPy, ``order`` is then ``out``'s and an array not laid out that way is
        first copied on the device.
        """
        if not blocking:
            raise NotImplementedError("the double supports blocking get() only")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError(f"out must be a numpy.ndarray, found {type(out).__name__}")
            if out.shape != self.shape or out.dtype != self.dtype:
                raise ValueError(
                    f"out is {out.dtype} {out.shape}, expected {self.dtype} {self.shape}"
                )
            if not (out.flags.c_contiguous or out.flags.f_contiguous):
                raise RuntimeError("Non-contiguous array is not supported")
            order = "C" if out.flags.c_contiguous else "F"
        if order == "A":
            order = "F" if self.flags.f_contiguous else "C"
        with Device(self._memory.device_id):
            queue = get_current_stream() if stream is None else stream
            source = self
            if not _in_order(self, order):
                with queue:  # CuPy first makes a contiguous copy on the device
                    source = self.astype(self.dtype, order=order)
            host = np.empty(self.shape, self.dtype, order=order) if out is None else out
            view = source._view
            _launch(queue, lambda: np.copyto(host, view), "get()", reads=[source._memory])
            queue.synchronize()
        return host

    def set(self, arr: np.ndarray, stream: Stream | None = None) -> None:
        """Copy ``arr`` from the host; pinned sources are read when the copy runs."""
        if not isinstance(arr, np.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if self.dtype != arr.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if self.shape != arr.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        if self.flags.c_contiguous:
            source = np.ascontiguousarray(arr)
        elif self.flags.f_contiguous:
            source = np.asfortranarray(arr)
        else:
            raise RuntimeError("Cannot set to non-contiguous array")
        if not (_is_pinned(source) and source is arr):
            source = source.copy(order="A")  # pageable memory is staged before the call returns
        target = self._view
        queue = get_current_stream() if stream is None else stream
        _launch(queue, lambda: np.copyto(target, source), "set()", writes=[self._memory])
        if stream is None and queue is Stream.null:
            queue.synchronize()


def empty(shape: int | tuple[int, ...], dtype: object = float, order: str = "C") -> ndarray:
    """``cupy.empty``: uninitialised device memory (0xA5 bytes, or a cached block's old contents)."""
    return ndarray(shape, dtype, order)


def asnumpy(a: object, stream: Stream | None = None, order: str = "C") -> np.ndarray:
    """``cupy.asnumpy``."""
    if isinstance(a, ndarray):
        return a.get(stream=stream, order=order)
    return np.asarray(a, order=order)


# --------------------------------------------------------------------------------------------------
# ElementwiseKernel
# --------------------------------------------------------------------------------------------------
def _parse_params(params: str) -> list[tuple[np.dtype, str]]:
    parsed = []
    for param in params.split(","):
        type_name, name = param.split()
        parsed.append((np.dtype(type_name), name))
        if parsed[-1][0].name != type_name:
            raise ValueError(f"Wrong type {type_name}")
    return parsed


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` for concrete-typed parameters and explicit outputs."""

    def __init__(
        self,
        in_params: str,
        out_params: str,
        operation: str,
        name: str = "kernel",
        **kwargs: object,
    ) -> None:
        if kwargs.get("preamble"):
            raise NotImplementedError("the double does not interpret a preamble")
        self.in_params = _parse_params(in_params)
        self.out_params = _parse_params(out_params)
        self.operation = operation
        self.name = name
        self._program: Program | None = None

    def __call__(self, *args: object) -> ndarray:
        if len(args) != len(self.in_params) + len(self.out_params):
            raise NotImplementedError("the double needs every input and output array passed")
        if self._program is None:
            self._program = Program(self.operation)
        params = self.in_params + self.out_params
        outputs = args[len(self.in_params) :]
        if not all(isinstance(out, ndarray) for out in outputs):
            raise TypeError("the double needs cupy_double.ndarray outputs")
        for (dtype, name), arg in zip(params, args, strict=True):
            if isinstance(arg, ndarray) and arg.dtype != dtype:
                raise TypeError(f"Type is mismatched. {name} {arg.dtype.type} {dtype.type}")
            if isinstance(arg, np.ndarray):
                raise TypeError(f"Unsupported type {type(arg)}")
        _check_device(args)
        shape = np.broadcast_shapes(*(arg.shape for arg in args if isinstance(arg, ndarray)))
        if any(out.shape != shape for out in outputs):
            raise ValueError(f"output shape {[out.shape for out in outputs]} is not {shape}")
        program = self._program

        def run() -> None:
            names = {
                name: (arg._view if isinstance(arg, ndarray) else np.asarray(arg, dtype=dtype))
                for (dtype, name), arg in zip(params, args, strict=True)
            }
            results = program.evaluate(names, {name for _, name in self.out_params})
            for (_, name), out in zip(self.out_params, outputs, strict=True):
                out._view[...] = results[name]

        memory = [arg._memory for arg in args[: len(self.in_params)] if isinstance(arg, ndarray)]
        _launch(
            get_current_stream(),
            run,
            f"kernel {self.name}",
            reads=memory,
            writes=[out._memory for out in outputs],
        )
        return outputs[0]


cuda = SimpleNamespace(
    Device=Device,
    Event=Event,
    MemoryPool=MemoryPool,
    PinnedMemoryPool=PinnedMemoryPool,
    Stream=Stream,
    PinnedMemory=PinnedMemory,
    PinnedMemoryPointer=PinnedMemoryPointer,
    alloc_pinned_memory=alloc_pinned_memory,
    get_current_stream=get_current_stream,
    memory=SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
    runtime=SimpleNamespace(CUDARuntimeError=CUDARuntimeError, getDeviceCount=_get_device_count),
)
