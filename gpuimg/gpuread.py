"""Stream a raw data block from disk to the GPU and scale it there.

Only the raw on-disk bytes cross PCIe. The block is read in chunks into pinned host buffers; each
chunk's asynchronous host-to-device copy and its fused scale kernel run on gpuimg's own stream while
the host reads the next chunk into the other buffer. Events order the two streams both ways, so
nothing here blocks the host on the GPU: gpuimg's stream waits for the caller's stream to reach the
result's allocation (CuPy's pool may hand back a block the caller's queued work still uses), and the
caller's stream waits for the read at the end; the result is ready on the caller's stream.

What a device read decides (the GPU, nibabel's scaling and the fused kernel that applies it) is
decided once, by :func:`plan_device_read`, into a :class:`DevicePlan` that :func:`stream_to_device`
and the nvCOMP path (:mod:`gpuimg.gpudecode`) take as it is; :func:`read_to_device` is the same read
from a device specification and a :class:`~gpuimg.scaling.ScalePlan`.

A *source* is anything with this small protocol (the sources of :mod:`gpuimg.io.pipeline` implement
it):

``dtype``
    On-disk dtype, byte order included.
``raw_shape``
    Fortran-order shape of the raw block that is read.
``post_slicer``
    numpy index applied to the raw block to give the result (steps, dropped axes, new axes).
``out_shape``
    Shape of the result.
``nbytes``
    Bytes in the raw block.
``readinto(start, out)``
    Fill ``out`` (a writable memoryview) with bytes ``[start, start + len(out))`` of the raw block.
"""

from __future__ import annotations

import math
import os
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import DTypeLike

from gpuimg import device
from gpuimg.device import (
    cast_into,
    check_stream_device,
    current_stream,
    default_pinned_pool,
    device_dtype,
    device_memory_guard,
    gpuimg_stream,
    resolve_device,
    run_kernel,
    using_device,
)
from gpuimg.io import pipeline
from gpuimg.io.boxes import box_ranges, box_view
from gpuimg.io.pipeline import RawSink, run
from gpuimg.io.slicing import is_direct
from gpuimg.scaling import ScalePlan, apply_scaling
from gpuimg.scaling_kernel import KernelSpec, kernel_spec

# Frames of these files (the read loop's among them), and of the device seam's, may hold device
# arrays after an error; they are cleared so the memory goes.
_OWN_FILES = {__file__, pipeline.__file__}
_SEAM_FOLDER = os.path.dirname(device.__file__) + os.sep


def own_device_frames(path: str) -> None:
    """Have :func:`drop_device_references` clear the frames of the module at ``path`` too."""
    _OWN_FILES.add(path)


class RawSource(pipeline.Source, Protocol):
    """What :func:`stream_to_device` reads from (see the module docstring)."""

    dtype: np.dtype

    @property
    def raw_shape(self) -> tuple[int, ...]: ...

    @property
    def post_slicer(self) -> Any: ...

    @property
    def out_shape(self) -> tuple[int, ...]: ...


class _Stats:
    """Counters for benchmarks: reads, bytes copied host to device, reads that took the host path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("reads", "bytes_to_device", "host_fallbacks"), 0)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                self._counts[key] += value

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._counts, 0)


_stats = _Stats()


def stats() -> dict[str, int]:
    """Counters since the last :func:`reset_stats`: ``reads``, ``bytes_to_device``, ``host_fallbacks``."""
    return _stats.snapshot()


def reset_stats() -> None:
    """Zero the counters of :func:`stats`."""
    _stats.reset()


def add_stats(**counts: int) -> None:
    """Add to the counters of :func:`stats` (for other device read paths, such as nvCOMP's)."""
    _stats.add(**counts)


@dataclass(frozen=True)
class DevicePlan:
    """What a device read decides once, before any work: the GPU, the scaling and the kernel.

    Made by :func:`plan_device_read`; every device path (:func:`stream_to_device`,
    :func:`gpuimg.gpudecode.read_bgzf_to_device`) takes it as it is.
    """

    device_id: int
    scale: ScalePlan
    #: The fused kernel; None for complex data, scaled on the host and uploaded.
    spec: KernelSpec | None
    #: dtype of the result on the device (native byte order).
    out_dtype: np.dtype


def plan_device_read(plan: ScalePlan, device_id: int) -> DevicePlan:
    """The :class:`DevicePlan` of a read scaled by ``plan`` onto the GPU ``device_id`` (an int).

    Raises
    ------
    TypeError
        The data cannot be handled on the GPU (structured RGB data, long double, complex256); raised
        before any work.
    """
    if plan.raw_dtype.kind == "c" and plan.raw_dtype.itemsize <= 16:
        return DevicePlan(device_id, plan, None, device_dtype(plan.out_dtype))
    spec = kernel_spec(plan)
    return DevicePlan(device_id, plan, spec, spec.out_dtype)


def read_to_device(
    source: RawSource,
    plan: ScalePlan,
    *,
    device: object,
    stream: Any = None,
    name: str = "",
    out: Any = None,
) -> Any:
    """Read ``source``'s raw block to the GPU, scaled by ``plan``.

    Parameters
    ----------
    plan : ScalePlan
        From :func:`gpuimg.scaling.plan_scaling` for ``source.dtype``.
    device : str, int or cupy.cuda.Device
        Where the result lives (anything :func:`gpuimg.device.resolve_device` accepts but the host).
    source, stream, name, out
        As for :func:`stream_to_device`.

    Returns
    -------
    cupy.ndarray
        As :func:`stream_to_device` returns it.

    Raises
    ------
    ValueError
        ``device`` is the host; and as :func:`stream_to_device` raises.
    TypeError
        As :func:`plan_device_read` raises.
    """
    device_id = resolve_device(device)
    if device_id is None:
        raise ValueError(
            f"device is {device!r}; read_to_device needs a GPU, e.g. 'cuda' or 'cuda:0'"
        )
    return stream_to_device(
        source, plan_device_read(plan, device_id), stream=stream, name=name, out=out
    )


def stream_to_device(
    source: RawSource, plan: DevicePlan, *, stream: Any = None, name: str = "", out: Any = None
) -> Any:
    """Read ``source``'s raw block to the GPU as ``plan`` (from :func:`plan_device_read`) says.

    Parameters
    ----------
    source : RawSource
        The raw block (see the module docstring).
    plan : DevicePlan
        The GPU, the scaling (for ``source.dtype``) and the kernel, decided once for the read.
    stream : cupy.cuda.Stream, optional
        The stream that will use the result (created on the plan's device); the device's current
        stream by default. The result is ready on it: it waits, on the device, for the read to finish.
    name : str
        What is being read (a file name), for error messages.
    out : cupy.ndarray, optional
        Where to write the result, on the plan's device: shape ``source.out_shape``, dtype
        ``plan.out_dtype``, any strides (complex data: C- or Fortran-contiguous). gpuimg's stream
        writes it after the work queued on ``stream`` so far. When the slicer keeps the raw block as
        it is (whole reads, one volume of a series), chunks are scaled straight into it.

    Returns
    -------
    cupy.ndarray
        ``out``; or a new Fortran-contiguous array of shape ``source.out_shape`` and dtype
        ``plan.out_dtype``.

    Raises
    ------
    DeviceMemoryError
        The GPU ran out of memory. Whatever the error, pinned buffers go back to the pool and the
        device memory of the partial result is freed.
    ValueError
        ``stream`` was created on another device, or ``out`` has the wrong shape or dtype.
    """
    _check_source(source, plan.scale, name)
    if stream is not None:
        check_stream_device(stream, plan.device_id, name or "data block")
    if out is not None:
        check_out(out, source, plan.out_dtype, name, contiguous=plan.spec is None)
    with using_device(plan.device_id):
        consumer = current_stream() if stream is None else stream
        work = gpuimg_stream(plan.device_id)
        try:
            with device_memory_guard(name or "data block", source.nbytes):
                if plan.spec is None:
                    result = _read_via_host(source, plan.scale, work, consumer, out)
                else:
                    result = _read_streamed(source, plan.spec, work, consumer, out)
        except BaseException as exc:
            work.synchronize()
            drop_device_references(exc)
            raise
    _stats.add(reads=1)
    return result


def _check_source(source: RawSource, plan: ScalePlan, name: str) -> None:
    where = name or "data block"
    if np.dtype(source.dtype) != plan.raw_dtype:
        raise ValueError(
            f"{where}: source dtype is {source.dtype}, the plan expects {plan.raw_dtype}"
        )
    expected = math.prod(source.raw_shape) * plan.raw_dtype.itemsize
    if source.nbytes != expected:
        raise ValueError(
            f"{where}: source nbytes is {source.nbytes}, expected {expected} for raw shape "
            f"{tuple(source.raw_shape)} of {plan.raw_dtype}"
        )


def check_out(out: Any, source: Any, dtype: np.dtype, name: str, *, contiguous: bool) -> None:
    """Raise ValueError unless ``out`` can take the result: ``source.out_shape``, ``dtype``."""
    where = name or "data block"
    if tuple(out.shape) != tuple(source.out_shape) or out.dtype != dtype:
        raise ValueError(
            f"{where}: out is {out.dtype} {tuple(out.shape)}, expected {dtype} "
            f"{tuple(source.out_shape)}"
        )
    if contiguous and not (out.flags.c_contiguous or out.flags.f_contiguous):
        raise ValueError(f"{where}: out for complex data must be C- or Fortran-contiguous")


def _read_streamed(source: RawSource, spec: KernelSpec, work: Any, consumer: Any, out: Any) -> Any:
    """Chunks through pinned buffers, one fused kernel per chunk, into ``out`` or a flat result."""
    count = math.prod(source.raw_shape)
    flat = None
    if out is not None and is_direct(source.post_slicer, tuple(source.raw_shape)):
        # The raw block is the result: chunks go straight into ``out`` once its users are done.
        raw_out = out.reshape(tuple(source.raw_shape))
        work.wait_event(consumer.record())
    else:
        flat = allocate_for(consumer, work, count, spec.out_dtype, "C")
        raw_out = flat.reshape(tuple(source.raw_shape), order="F")
    if count:
        with work:
            run(source, DeviceSink(spec, raw_out, work))
            finished = work.record()
        consumer.wait_event(finished)
    if flat is None:
        return out
    return finish_result(flat, source, consumer, out=out)


def finish_result(flat: Any, source: Any, consumer: Any, *, out: Any = None) -> Any:
    """Turn the flat, scaled raw block of ``source`` on the device into the result, on ``consumer``.

    ``source`` needs ``raw_shape``, ``post_slicer`` and ``out_shape`` (a :class:`RawSource` or a
    :class:`~gpuimg.io.slicing.ReadPlan`). The result is ``out``, filled; or Fortran-contiguous: a view
    of ``flat`` when the slicer keeps every value, else a copy.
    """
    with consumer:
        raw = flat.reshape(tuple(source.raw_shape), order="F")
        result = raw[source.post_slicer]
        if out is not None:
            cast_into(result, out)
            result = out
        elif result.size != raw.size or not result.flags.f_contiguous:
            result = result.copy(order="F")
    _check_shape(result, source)
    return result


def allocate_for(consumer: Any, work: Any, shape: Any, dtype: DTypeLike, order: str) -> Any:
    """A result array for ``consumer`` that gpuimg's ``work`` stream may write.

    It is allocated on the consumer's stream, which touches it last. CuPy's pool hands a block
    freed on that stream straight back to it, even while the consumer's queued kernels may still
    use the old array, so the writing stream first waits for the consumer to get this far.
    """
    with consumer:
        array = device.empty(shape, dtype, order=order)
    work.wait_event(consumer.record())
    return array


class DeviceSink:
    """The read pipeline's device sink: upload each chunk through the pinned pool, scale it on the GPU.

    Chunks are uploaded in order on gpuimg's (current) stream, and the fused kernel scales each into
    its place in ``raw_out`` (the raw block's shape on the device, any strides): a flat range when
    ``raw_out`` is Fortran-contiguous, else a box of whole rows (see :func:`gpuimg.io.boxes.box_ranges`). The host
    reads the next chunk into another pinned buffer while the device copies and scales this one.
    """

    parallel = False
    overlap = False

    def __init__(self, spec: Any, raw_out: Any, work: Any) -> None:
        self._spec, self._raw_out, self._work = spec, raw_out, work
        self.itemsize = spec.input_dtype.itemsize
        self._limit = max(1, default_pinned_pool().buffer_size // self.itemsize)
        self._flat = raw_out.reshape(-1, order="F") if raw_out.flags.f_contiguous else None
        # One device staging buffer is enough: on one stream, chunk k+1's copy into it is ordered
        # after chunk k's kernel.
        self._staging = None
        if not (spec.is_copy and self._flat is not None):
            self._staging = device.empty(min(self._limit, raw_out.size), spec.input_dtype)
        self._pinned: _Pinned | None = None

    def chunk_bounds(self, nbytes: int) -> list[tuple[int, int]]:
        if self._flat is not None:
            size = self._flat.size
            ranges = [(a, min(a + self._limit, size)) for a in range(0, size, self._limit)]
        else:
            ranges = box_ranges(tuple(self._raw_out.shape), self._limit)
        return [(first * self.itemsize, stop * self.itemsize) for first, stop in ranges]

    @contextmanager
    def staging(self, start: int, nbytes: int) -> Iterator[np.ndarray]:
        with pinned_staging(self._work) as pinned:
            self._pinned = pinned
            yield pinned.buffer[:nbytes]

    def put(self, start: int, raw: np.ndarray) -> None:
        assert self._pinned is not None, "put follows staging"
        spec = self._spec
        host = raw.view(spec.input_dtype)
        first = start // self.itemsize
        stop = first + host.size
        if self._flat is not None:
            dst = self._flat[first:stop]
            target = dst if self._staging is None else self._staging[: stop - first]
            self._pinned.copy(host, target, self._work)
            if self._staging is not None:
                run_kernel(spec, target, dst)
        else:
            assert self._staging is not None, "a strided destination is always staged"
            target = self._staging[: stop - first]
            self._pinned.copy(host, target, self._work)
            dst = box_view(self._raw_out, first, stop, self._limit)
            src = target.reshape(tuple(dst.shape), order="F")
            if spec.is_copy:
                cast_into(src, dst)
            else:
                run_kernel(spec, src, dst)
        _stats.add(bytes_to_device=host.nbytes)


class _Pinned:
    """A pinned buffer lent for one chunk, and the event after which it may be reused."""

    def __init__(self, buffer: np.ndarray) -> None:
        self.buffer = buffer
        self.queued = False
        self.event: Any = None

    def copy(self, host: np.ndarray, target: Any, work: Any) -> None:
        """Queue the copy of ``host`` (a view of the buffer) into the device array ``target``."""
        target.set(host, stream=work)
        self.queued = True
        self.event = work.record()


@contextmanager
def pinned_staging(work: Any) -> Iterator[_Pinned]:
    """Lend a pooled pinned buffer; it goes back behind the event recorded after its copy on ``work``."""
    pool = default_pinned_pool()
    pinned = _Pinned(pool.acquire())
    try:
        yield pinned
    finally:
        if pinned.queued and pinned.event is None:
            work.synchronize()
        pool.release(pinned.buffer, pinned.event)


def upload_pinned(fill: Any, target: Any, work: Any) -> None:
    """Fill a pooled pinned buffer and queue its copy into the device array ``target`` on ``work``.

    ``fill(buffer)`` writes the bytes into ``buffer`` (a uint8 array of the pool's buffer size) and
    returns the host array to copy, of ``target``'s shape and dtype. The buffer goes back to the pool
    behind an event recorded after the copy, so it is reused only once the copy has read it.
    """
    with pinned_staging(work) as pinned:
        pinned.copy(fill(pinned.buffer), target, work)


def _read_via_host(source: RawSource, plan: ScalePlan, work: Any, consumer: Any, out: Any) -> Any:
    """Complex data: scale on the host (CUDA has no complex intrinsics we rely on), then upload."""
    raw = np.empty(source.nbytes, dtype=np.uint8)
    run(source, RawSink(raw, plan.raw_dtype.itemsize))
    values = raw.view(plan.raw_dtype).reshape(tuple(source.raw_shape), order="F")
    scaled = apply_scaling(values, plan)[source.post_slicer]
    order: Literal["C", "F"] = "C" if out is not None and not out.flags.f_contiguous else "F"
    # np.asfortranarray would turn a 0-d result (an integer index on a 1-D image) into shape (1,).
    host = np.asarray(scaled, dtype=device_dtype(scaled.dtype), order=order)
    if out is None:
        result = allocate_for(consumer, work, host.shape, host.dtype, "F")
    else:
        result = out
        work.wait_event(consumer.record())
    result.set(host, stream=work)
    consumer.wait_event(work.record())
    _stats.add(bytes_to_device=host.nbytes, host_fallbacks=1)
    _check_shape(result, source)
    return result


def _check_shape(result: Any, source: RawSource) -> None:
    if result.shape != tuple(source.out_shape):
        raise ValueError(
            f"post_slicer {source.post_slicer!r} gives shape {result.shape}, "
            f"the source promises out_shape {tuple(source.out_shape)}"
        )


def drop_device_references(exc: BaseException) -> None:
    """Clear gpuimg's finished frames in ``exc``'s tracebacks so their device arrays are freed.

    A traceback keeps every frame's locals alive; without this, a caught read error would pin the
    partial result and staging buffers in device memory for as long as the exception is referenced.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        pending += [error.__cause__, error.__context__]
        for frame, _ in traceback.walk_tb(error.__traceback__):
            filename = frame.f_code.co_filename
            if filename in _OWN_FILES or filename.startswith(_SEAM_FOLDER):
                try:
                    frame.clear()
                except RuntimeError:  # a frame still running (this one) cannot be cleared
                    pass
