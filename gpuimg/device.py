"""The GPU seam: the only module in gpuimg that touches CuPy, and only when a GPU is asked for.

Everything device-specific lives here so the rest of the package stays importable and testable on
machines without a GPU:

* :func:`get_cupy` imports CuPy lazily and checks a CUDA device exists; :func:`use_backend` swaps in
  another module with CuPy's interface (the strict CPU test double in ``tests/cupy_double.py``).
* :func:`resolve_device` turns ``'cuda'``, ``'cuda:1'``, ``1`` or a ``cupy.cuda.Device`` into a device id.
* :class:`PinnedPool` recycles page-locked host buffers; a buffer comes back into use only after the
  CUDA event recorded behind its host-to-device copy has completed.
* :func:`scale_kernel` builds one fused ``ElementwiseKernel`` per dtype combination: it reads the raw
  on-disk values (byte-swapping big-endian data on the device), scales them with explicitly rounded
  operations so the result is bit-identical to :func:`gpuimg.scaling.apply_scaling`, and casts.
* :func:`empty_cache` and :func:`device_memory_used` manage and report device memory;
  :func:`device_memory_guard` turns CuPy's out-of-memory error into :class:`DeviceMemoryError`.

Device arrays are always native-endian (CuPy has no byte order), so a big-endian dtype asked for on the
GPU comes back as the same dtype in native order.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

import numpy as np

from gpuimg.config import configure, reset_after_fork, settings, watch
from gpuimg.errors import CompressedStreamError, DeviceMemoryError, DeviceUnavailableError
from gpuimg.scaling import ScalePlan, plan_scaling

INSTALL_HINT = "pip install 'gpuimg[cuda12]' (CUDA 12) or 'gpuimg[cuda13]' (CUDA 13)"

_lock = threading.RLock()
_override: ModuleType | None = None
_checked: set[str] = set()
_streams: dict[tuple[str, int], Any] = {}
_devices_asked: set[int] = set()
_kernels: dict[tuple, Any] = {}
_forked_after_cuda = False  # set in a child forked after this process initialised CUDA


# --------------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------------
def get_cupy() -> ModuleType:
    """Return the CuPy module (or the backend installed by :func:`use_backend`).

    Returns
    -------
    module
        ``cupy``, imported on first use.

    Raises
    ------
    DeviceUnavailableError
        CuPy is not installed, or it is installed but no CUDA device or driver can be used.
    """
    if _override is not None:
        return _override
    if _forked_after_cuda:
        raise DeviceUnavailableError(
            "this process was forked from one that had already initialised CUDA, and CUDA cannot "
            "be used in such a child; start workers with the 'spawn' method instead "
            "(multiprocessing.get_context('spawn'), DataLoader(multiprocessing_context='spawn'))"
        )
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"a GPU read needs CuPy, which is not installed ({exc}); {INSTALL_HINT}"
        ) from exc
    if "cupy" not in _checked:
        _check_devices(cupy)
        _checked.add("cupy")
    return cupy


def _check_devices(cupy: ModuleType) -> None:
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise DeviceUnavailableError(
            f"CuPy {cupy.__version__} is installed but no CUDA device is usable: {exc}"
        ) from exc
    if count == 0:
        raise DeviceUnavailableError(
            f"CuPy {cupy.__version__} is installed but found 0 CUDA devices, expected at least 1"
        )


def _loaded_backend() -> ModuleType | None:
    """The backend in use, without importing CuPy when nothing has imported it yet."""
    if _override is not None:
        return _override
    module = sys.modules.get("cupy")
    return module if isinstance(module, ModuleType) else None


@contextmanager
def use_backend(module: ModuleType) -> Iterator[ModuleType]:
    """Use ``module`` in place of CuPy inside the ``with`` block (a test hook).

    Parameters
    ----------
    module : module
        Anything with the CuPy subset this module and :mod:`gpuimg.gpuread` use.

    Yields
    ------
    module
        ``module``.
    """
    global _override
    with _lock:
        previous = _override
        _forget_backend_state()
        _override = module
    try:
        yield module
    finally:
        with _lock:
            _forget_backend_state()
            _override = previous


def _forget_backend_state() -> None:
    """Drop pooled buffers and streams that belong to the backend being swapped out."""
    _default_pool.clear()
    _streams.clear()
    _devices_asked.clear()


def is_device_array(obj: object) -> bool:
    """True if ``obj`` is a CuPy (or test-backend) array; never imports CuPy."""
    backend = _loaded_backend()
    return backend is not None and isinstance(obj, backend.ndarray)


def resolve_device(device: object) -> int | None:
    """Normalise a device specification.

    Parameters
    ----------
    device : None, str, int or cupy.cuda.Device
        None or ``'cpu'`` for the host; ``'cuda'`` (the current device), ``'cuda:N'``, ``N`` or a
        ``cupy.cuda.Device`` for a GPU.

    Returns
    -------
    int or None
        The CUDA device id, or None for the host.

    Raises
    ------
    ValueError
        ``device`` is not a device specification.
    DeviceUnavailableError
        A GPU is asked for but CuPy or that device is missing.
    """
    if device is None or device == "cpu":
        return None
    backend = _loaded_backend()
    if backend is not None and isinstance(device, backend.cuda.Device):
        index = device.id
    elif device == "cuda":
        index = get_cupy().cuda.Device().id
    elif isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        index = int(device[5:])
    elif isinstance(device, (int, np.integer)) and not isinstance(device, bool) and device >= 0:
        index = int(device)
    else:
        raise ValueError(
            f"device is {device!r}, expected None, 'cpu', 'cuda', 'cuda:N', an int N >= 0 "
            "or a cupy.cuda.Device"
        )
    count = get_cupy().cuda.runtime.getDeviceCount()
    if index >= count:
        raise DeviceUnavailableError(f"device is {device!r}, but only {count} CUDA device(s) exist")
    with _lock:
        _devices_asked.add(index)
    return index


def gpuimg_stream(device_id: int) -> Any:
    """gpuimg's own non-blocking stream on ``device_id`` (created once per device)."""
    cupy = get_cupy()
    key = (cupy.__name__, device_id)
    with _lock:
        if key not in _streams:
            with cupy.cuda.Device(device_id):
                _streams[key] = cupy.cuda.Stream(non_blocking=True)
        return _streams[key]


def current_stream_event(device_id: int) -> Any:
    """An event recorded now on ``device_id``'s current stream: where the caller's work has got to."""
    cupy = get_cupy()
    with cupy.cuda.Device(device_id):
        return cupy.cuda.get_current_stream().record()


def wait_on_current_stream(event: Any, device_id: int) -> None:
    """Order later work on ``device_id``'s current stream after ``event`` (no host synchronisation)."""
    cupy = get_cupy()
    with cupy.cuda.Device(device_id):
        cupy.cuda.get_current_stream().wait_event(event)


def check_stream_device(stream: Any, device_id: int, what: str) -> None:
    """Refuse a ``stream=`` created on another device than the one being read to.

    CuPy keeps a current stream per device and raises a bare RuntimeError on entering a stream of
    another device; this says which argument is wrong before any work starts.
    """
    if stream.device_id not in (-1, device_id):  # -1: the null stream, which every device has
        raise ValueError(
            f"{what}: stream= was created on CUDA device {stream.device_id}, but the data go to "
            f"device {device_id}; pass a stream created on device {device_id} (or no stream)"
        )


def _order(array: Any) -> str:
    """``'F'`` for an array that is Fortran- but not C-contiguous, else ``'C'``."""
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


def to_host(array: Any) -> np.ndarray:
    """Copy a device array to a new numpy array in its own memory order (after the current stream's
    queued work); a Fortran-ordered array is not first copied to C order on the device."""
    return get_cupy().asnumpy(array, order=_order(array))


def host_blocks(array: Any, boxes: Iterable[tuple[slice, ...]]) -> Iterator[np.ndarray]:
    """Copy the ``boxes`` of a device array to the host one at a time, each in Fortran order.

    Each box is copied, on the current stream after the work queued there, into one pinned buffer
    of :func:`default_pinned_pool` (a box not Fortran-contiguous on the device is first copied into
    Fortran order there, one box at a time). The host never holds more than one box.

    Parameters
    ----------
    array : cupy.ndarray
        The device array.
    boxes : iterable of tuple of slice
        Boxes of ``array`` of at most ``default_pinned_pool().buffer_size`` bytes each.

    Yields
    ------
    numpy.ndarray
        A Fortran-contiguous view of the pinned buffer holding one box, valid until the next one is
        asked for.
    """
    cupy = get_cupy()
    pool = default_pinned_pool()
    buffer = pool.acquire()
    try:
        with cupy.cuda.Device(array.device.id):
            stream = cupy.cuda.get_current_stream()
            for box in boxes:
                part = array[box]
                if part.nbytes > buffer.size:
                    raise ValueError(
                        f"box {box} holds {part.nbytes} bytes, more than a pinned buffer "
                        f"({buffer.size} bytes)"
                    )
                host = buffer[: part.nbytes].view(part.dtype).reshape(part.shape, order="F")
                # CuPy first copies a box not laid out like ``host`` into Fortran order on the device.
                part.get(stream=stream, out=host)
                yield host
    finally:
        pool.release(buffer)


def to_device(array: Any, *, dtype: Any = None, device: object = "cuda") -> Any:
    """Put an in-memory array on the GPU as ``dtype`` (its own dtype, native-endian, if None).

    Parameters
    ----------
    array : array_like or cupy.ndarray
        Host data, or a device array: returned as is when it is already on ``device`` with ``dtype``,
        otherwise copied there (from another GPU if need be) and converted bit-exactly by gpuimg's
        kernel (CuPy's own casts flush float32 subnormals to zero).
    dtype : dtype, optional
        Result dtype; the conversion happens on the host for host data.
    device : str, int or cupy.cuda.Device
        Target device (see :func:`resolve_device`).

    Returns
    -------
    cupy.ndarray
        On ``device``, ready on its current stream; keeps the memory order of a Fortran-ordered input.
    """
    device_id = resolve_device(device)
    if device_id is None:
        raise ValueError(f"device is {device!r}; to_device needs a GPU, e.g. 'cuda' or 'cuda:0'")
    cupy = get_cupy()
    if is_device_array(array):
        return _device_to_device(cupy, array, dtype, device_id)
    with cupy.cuda.Device(device_id):
        host = np.asanyarray(array, dtype=dtype)
        host = host.astype(device_dtype(host.dtype), copy=False)
        out = cupy.empty(host.shape, dtype=host.dtype, order=_order(host))
        out.set(host)
        return out


def _device_to_device(cupy: Any, array: Any, dtype: Any, device_id: int) -> Any:
    """``array`` on ``device_id`` as ``dtype``, copied from its own device first if that differs."""
    target = array.dtype if dtype is None else device_dtype(dtype)
    source_id = array.device.id
    if source_id != device_id:
        with cupy.cuda.Device(source_id):
            if not (array.flags.c_contiguous or array.flags.f_contiguous):
                array = array.copy(order="C")  # CuPy copies between devices only contiguous arrays
            ready = cupy.cuda.get_current_stream().record()
        with cupy.cuda.Device(device_id):
            # The copy runs on this device's current stream: order it after the source's work.
            cupy.cuda.get_current_stream().wait_event(ready)
            array = array.copy(order=_order(array))
    if array.dtype == target:
        return array
    with cupy.cuda.Device(device_id):
        out = cupy.empty(array.shape, dtype=target, order=_order(array))
        cast_into(array, out)
        return out


# --------------------------------------------------------------------------------------------------
# Pinned host buffers
# --------------------------------------------------------------------------------------------------
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


def _after_fork_in_child() -> None:
    """Forget the parent's CUDA state in a forked child; remember whether it had any."""
    global _lock, _forked_after_cuda
    _lock = threading.RLock()
    _forked_after_cuda = _forked_after_cuda or "cupy" in _checked
    _streams.clear()
    _kernels.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


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


# --------------------------------------------------------------------------------------------------
# The fused read-scale-cast kernel
# --------------------------------------------------------------------------------------------------
_CTYPES = {
    np.dtype(np.int8): "signed char",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.int16): "short",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int32): "int",
    np.dtype(np.uint32): "unsigned int",
    np.dtype(np.int64): "long long",
    np.dtype(np.uint64): "unsigned long long",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}
_UNSIGNED = {size: np.dtype(f"u{size}") for size in (1, 2, 4, 8)}
_F4, _F8 = np.dtype(np.float32), np.dtype(np.float64)
# Explicitly rounded intrinsics: nvcc never contracts them into an FMA, so every product and sum is
# rounded exactly as numpy's separate multiply and add passes round them. Scaling runs in double
# precision only: CuPy compiles with -ftz=true, which flushes float32 subnormals in single-precision
# arithmetic (double precision is not affected).
_MUL, _ADD = "__dmul_rn", "__dadd_rn"
# Under -ftz=true a C cast from or to float ((double)x, (float)w) flushes float32 subnormals to zero;
# PTX's cvt without .ftz converts them exactly, as numpy does.
_PTX_CVT = {(_F4, _F8): "cvt.f64.f32", (_F8, _F4): "cvt.rn.f32.f64"}
_PTX_REGISTER = {_F4: "f", _F8: "d"}
_AS_FLOAT = {
    np.dtype(np.float32): "__uint_as_float((unsigned int)u)",
    np.dtype(np.float64): "__longlong_as_double((long long)u)",
}


def device_dtype(dtype: np.dtype) -> np.dtype:
    """The native-endian dtype a device array of ``dtype`` values has."""
    dtype = np.dtype(dtype)
    return dtype if dtype.fields is not None else dtype.newbyteorder("=")


def _kernel_dtype(dtype: np.dtype, role: str) -> np.dtype:
    native = device_dtype(dtype)
    if native not in _CTYPES:
        raise TypeError(
            f"the GPU kernel cannot handle {role} dtype {dtype}; expected one of "
            f"{', '.join(sorted(str(t) for t in _CTYPES))}"
        )
    return native


@dataclass(frozen=True)
class KernelSpec:
    """One fused kernel: CuPy ``ElementwiseKernel`` arguments plus its scalar arguments.

    ``operation`` is empty when the raw values need no work at all (native byte order, no scaling, no
    cast): the data is then copied straight into the result.
    """

    name: str
    in_params: str
    out_params: str
    operation: str
    input_dtype: np.dtype
    out_dtype: np.dtype
    scalars: tuple[np.generic, ...]

    @property
    def is_copy(self) -> bool:
        """True when no kernel is needed."""
        return not self.operation


def kernel_spec(plan: ScalePlan) -> KernelSpec:
    """Describe the kernel that turns raw on-disk values into ``plan``'s result on the device.

    Parameters
    ----------
    plan : ScalePlan
        From :func:`gpuimg.scaling.plan_scaling`.

    Returns
    -------
    KernelSpec
        The kernel reads ``input_dtype`` values (the raw bytes as unsigned integers when they must be
        byte-swapped) and writes ``out_dtype``.

    Raises
    ------
    TypeError
        Structured (RGB) data, a dtype CUDA has no arithmetic for (complex, long double, half), or a
        work dtype other than float64 (nibabel's, the only one :func:`plan_scaling` gives).

    Examples
    --------
    >>> from gpuimg.scaling import plan_scaling
    >>> spec = kernel_spec(plan_scaling(np.dtype('>i2'), 2.0, None, np.dtype('float32')))
    >>> for line in spec.operation.splitlines()[-5:]:
    ...     print(line)
    double w = (double)r;
    w = __dmul_rn(w, s);
    float c0;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(c0) : "d"(w));
    y = c0;
    """
    raw = plan.raw_dtype
    if raw.fields is not None:
        raise TypeError(
            f"structured (RGB) data of dtype {raw} cannot be read to the GPU; read it on the host "
            "(np.asarray) and upload the fields you need"
        )
    native = _kernel_dtype(raw, "raw")
    input_dtype = native if raw.isnative else _UNSIGNED[raw.itemsize]
    lines = [] if raw.isnative else _swap_lines(native)
    value, current = ("x" if raw.isnative else "r"), native
    scalars: list[np.generic] = []
    params = ""
    if plan.work_dtype is not None:
        work = _kernel_dtype(plan.work_dtype, "work")
        if work != _F8:
            raise TypeError(f"the GPU kernel scales in float64, the plan's work dtype is {work}")
        lines += _convert_lines(value, current, work, "w")
        for name, factor, op in (("s", plan.slope, _MUL), ("b", plan.inter, _ADD)):
            if factor is not None:
                lines.append(f"w = {op}(w, {name});")
                params += f", {work.name} {name}"
                scalars.append(work.type(factor))
        value, current = "w", work
    for step, cast in enumerate(plan.casts):
        target = _kernel_dtype(cast, "result")
        if target != current:
            lines += _convert_lines(value, current, target, f"c{step}")
            value, current = f"c{step}", target
    if not lines and current == native:
        operation = ""
    else:
        lines.append(f"y = {value};")
        operation = "\n".join(lines)
    parts = [input_dtype.name] + (["swap"] if not raw.isnative else [])
    parts += [plan.work_dtype.name] if plan.work_dtype is not None else []
    parts += ["s"] * (plan.slope is not None) + ["b"] * (plan.inter is not None) + [current.name]
    return KernelSpec(
        name="gpuimg_scale_" + "_".join(parts),
        in_params=f"{input_dtype.name} x{params}",
        out_params=f"{current.name} y",
        operation=operation,
        input_dtype=input_dtype,
        out_dtype=current,
        scalars=tuple(scalars),
    )


def _convert_lines(value: str, source: np.dtype, target: np.dtype, name: str) -> list[str]:
    """C lines declaring ``name``, the ``source`` value ``value`` converted exactly to ``target``."""
    ctype = _CTYPES[target]
    if (source, target) not in _PTX_CVT:
        return [f"{ctype} {name} = ({ctype}){value};"]
    constraints = f'"={_PTX_REGISTER[target]}"({name}) : "{_PTX_REGISTER[source]}"({value})'
    return [f"{ctype} {name};", f'asm("{_PTX_CVT[source, target]} %0, %1;" : {constraints});']


def _swap_lines(native: np.dtype) -> list[str]:
    """C lines that byte-swap the unsigned input ``x`` into ``u`` and reinterpret it as ``r``."""
    size = native.itemsize
    wide, suffix = ("unsigned int", "u") if size <= 4 else ("unsigned long long", "ull")
    terms = [
        f"(((({wide})x >> {8 * k}) & 0xFF{suffix}) << {8 * (size - 1 - k)})" for k in range(size)
    ]
    lines = [f"{wide} u = {' | '.join(terms)};"]
    if native.kind == "f":
        value = _AS_FLOAT[native]
    elif native.kind == "u":
        value = f"({_CTYPES[native]})u"
    else:
        value = f"({_CTYPES[native]})({_CTYPES[_UNSIGNED[size]]})u"
    lines.append(f"{_CTYPES[native]} r = {value};")
    return lines


def run_kernel(spec: KernelSpec, src: Any, dst: Any) -> None:
    """Launch ``spec`` on the current stream: read ``src`` (``spec.input_dtype``), write ``dst``."""
    cupy = get_cupy()
    key = (cupy.__name__, spec.name, spec.in_params, spec.operation)
    with _lock:
        kernel = _kernels.get(key)
        if kernel is None:
            kernel = cupy.ElementwiseKernel(
                spec.in_params, spec.out_params, spec.operation, spec.name
            )
            _kernels[key] = kernel
    kernel(src, *spec.scalars, dst)


def cast_spec(source: np.dtype, target: np.dtype) -> KernelSpec:
    """The kernel that copies ``source`` values into a ``target`` array, converting them exactly."""
    spec = kernel_spec(plan_scaling(source, None, None, target))
    return replace(spec, operation="y = x;") if spec.is_copy else spec


def cast_into(src: Any, dst: Any) -> None:
    """Copy (and cast, bit-exactly) ``src`` into ``dst`` on the current stream, whatever their strides."""
    run_kernel(cast_spec(src.dtype, dst.dtype), src, dst)


# --------------------------------------------------------------------------------------------------
# Device memory
# --------------------------------------------------------------------------------------------------
def empty_cache() -> None:
    """Free cached device and pinned memory (gpuimg's ``torch.cuda.empty_cache``).

    Drops gpuimg's idle pinned buffers, then frees CuPy's unused memory-pool blocks on the current
    device and on every device gpuimg has been asked to use (CuPy keeps one pool per device and its
    methods act on the current device's). Memory held by live arrays stays; CuPy frees a split block
    only once every part of it is free.
    """
    _default_pool.clear()
    backend = _loaded_backend()
    if backend is None:
        return
    pool = backend.get_default_memory_pool()
    for device_id in _pool_devices(backend):
        with backend.cuda.Device(device_id):
            pool.free_all_blocks()
    backend.get_default_pinned_memory_pool().free_all_blocks()


def device_memory_used(*, include_cached: bool = False) -> int:
    """Bytes of device memory held by live arrays in CuPy's default pool (plus its cache if asked),
    summed over the current device and every device gpuimg has been asked to use."""
    backend = _loaded_backend()
    if backend is None:
        return 0
    pool = backend.get_default_memory_pool()
    total = 0
    for device_id in _pool_devices(backend):
        with backend.cuda.Device(device_id):
            total += pool.total_bytes() if include_cached else pool.used_bytes()
    return total


def _pool_devices(backend: ModuleType) -> list[int]:
    """The devices whose pools to visit: the current one and those gpuimg was asked for.

    Devices never asked for are left alone: switching to one would create a CUDA context there.
    """
    try:
        current = backend.cuda.Device().id
    except backend.cuda.runtime.CUDARuntimeError:  # CuPy without a usable device: nothing pooled
        return []
    with _lock:
        return sorted(_devices_asked | {current})


@contextmanager
def device_memory_guard(what: str, nbytes: int) -> Iterator[None]:
    """Turn CuPy's out-of-memory error inside the block into :class:`DeviceMemoryError`.

    Parameters
    ----------
    what : str
        What is being read (a file name), for the message.
    nbytes : int
        Bytes of the result being read.
    """
    cupy = get_cupy()
    try:
        yield
    except cupy.cuda.memory.OutOfMemoryError as exc:
        raise DeviceMemoryError(
            f"{what}: out of GPU memory reading {nbytes} bytes to the device "
            f"({device_memory_used()} bytes already in use): {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------------
# nvCOMP: batches of Deflate blocks (BGZF) decoded on the device
# --------------------------------------------------------------------------------------------------
_NVCOMP_MODULE = "nvidia.nvcomp"
_nvcomp_override: list[ModuleType | None] = []  # innermost use_nvcomp_backend last
_codecs: dict[tuple, Any] = {}


def get_nvcomp() -> ModuleType | None:
    """nvCOMP's Python module (``nvidia.nvcomp``, or the backend of :func:`use_nvcomp_backend`).

    Returns
    -------
    module or None
        None when nvCOMP is not installed (``pip install 'gpuimg[cuda12]'`` brings it), or when
        another CuPy backend is in use (:func:`use_backend`: nvCOMP works on real device memory
        only); GPU reads of BGZF files then decode on the host.
    """
    if _nvcomp_override:
        return _nvcomp_override[-1]
    if _override is not None:
        return None
    try:
        return importlib.import_module(_NVCOMP_MODULE)
    except ImportError:
        return None


@contextmanager
def use_nvcomp_backend(module: ModuleType | None) -> Iterator[ModuleType | None]:
    """Use ``module`` in place of nvCOMP inside the ``with`` block; None acts as not installed.

    A test hook, like :func:`use_backend` (the strict test double is ``tests/nvcomp_double.py``).
    """
    with _lock:
        _nvcomp_override.append(module)
        _codecs.clear()
    try:
        yield module
    finally:
        with _lock:
            _nvcomp_override.pop()
            _codecs.clear()


def _deflate_codec(nvcomp: ModuleType, device_id: int, stream: Any) -> Any:
    """nvCOMP's raw-Deflate codec on ``stream``, one per thread (a Codec is not thread-safe)."""
    key = (id(nvcomp), device_id, stream.ptr, threading.get_ident())
    with _lock:
        codec = _codecs.get(key)
        if codec is None:
            codec = nvcomp.Codec(
                algorithm="Deflate",
                bitstream_kind=nvcomp.BitstreamKind.RAW,
                device_id=device_id,
                cuda_stream=stream.ptr,
            )
            _codecs[key] = codec
        return codec


def deflate_alignment(device_id: int, stream: Any) -> int:
    """Bytes every compressed and decoded Deflate buffer must be aligned to for nvCOMP's decode."""
    nvcomp = get_nvcomp()
    if nvcomp is None:
        raise DeviceUnavailableError(f"nvCOMP is not installed; {INSTALL_HINT}")
    return int(_deflate_codec(nvcomp, device_id, stream).get_required_decompression_alignment())


def decode_deflate_batch(
    compressed: Any,
    blocks: list[tuple[int, int]],
    out: Any,
    outputs: list[tuple[int, int]],
    *,
    device_id: int,
    stream: Any,
    name: str,
) -> None:
    """Decode raw-Deflate blocks of ``compressed`` into ``out``, all at once, on ``stream``.

    Parameters
    ----------
    compressed, out : cupy.ndarray
        uint8 device buffers holding the blocks, and receiving the decoded bytes.
    blocks, outputs : list of (int, int)
        ``(offset, size)`` of each block in ``compressed`` and of its decoded bytes in ``out`` (the
        sizes the blocks must decode to), aligned to :func:`deflate_alignment`.
    device_id : int
        The device the buffers live on.
    stream : cupy.cuda.Stream
        The stream the decode is queued on (it waits for the uploads queued there before).
    name : str
        The file, for messages.

    Raises
    ------
    CompressedStreamError
        A block is corrupt, or decoded to another size than expected.
    """
    nvcomp = get_nvcomp()
    if nvcomp is None:
        raise DeviceUnavailableError(f"nvCOMP is not installed; {INSTALL_HINT}")
    codec = _deflate_codec(nvcomp, device_id, stream)
    sources = nvcomp.as_arrays(
        compressed, [o for o, _ in blocks], [n for _, n in blocks], cuda_stream=stream.ptr
    )
    targets = nvcomp.as_arrays(
        out, [o for o, _ in outputs], [n for _, n in outputs], cuda_stream=stream.ptr
    )
    failure = None
    try:
        decoded = codec.decode(sources, out=targets)
    except (ValueError, RuntimeError) as error:  # an output too small, a corrupt block
        failure = str(error)
    if failure is not None:
        # Raised outside the except block: nvCOMP's error (and its traceback, which may hold the
        # device buffers) is not kept as this error's context.
        raise CompressedStreamError(f"{name}: nvCOMP could not decode a block: {failure}")
    sizes = list(decoded.buffer_sizes)
    expected = [n for _, n in outputs]
    if sizes != expected:
        wrong = next(k for k, (a, b) in enumerate(zip(sizes, expected, strict=True)) if a != b)
        raise CompressedStreamError(
            f"{name}: block {wrong} of this read decoded on the GPU to {sizes[wrong]} bytes, "
            f"expected {expected[wrong]} (its ISIZE)"
        )
