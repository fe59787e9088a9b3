"""Stream a raw data block from disk to the GPU and scale it there.

Only the raw on-disk bytes cross PCIe. The block is read in chunks into pinned host buffers; each
chunk's asynchronous host-to-device copy and its fused scale kernel run on gpuimg's own stream while
the host reads the next chunk into the other buffer. Events order the two streams both ways, so
nothing here blocks the host on the GPU: gpuimg's stream waits for the caller's stream to reach the
result's allocation (CuPy's pool may hand back a block the caller's queued work still uses), and the
caller's stream waits for the read at the end; the result is ready on the caller's stream.

A *source* is anything with this small protocol (the array proxy implements it):

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

import functools
import math
import os
import threading
import traceback
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike

from gpuimg import device
from gpuimg.device import (
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
from gpuimg.scaling import ScalePlan, apply_scaling
from gpuimg.scaling_kernel import kernel_spec

# Frames of these files, and of the device seam's, may hold device arrays after an error; they are
# cleared so the memory goes.
_OWN_FILES = {__file__}
_SEAM_FOLDER = os.path.dirname(device.__file__) + os.sep


def own_device_frames(path: str) -> None:
    """Have :func:`drop_device_references` clear the frames of the module at ``path`` too."""
    _OWN_FILES.add(path)


class RawSource(Protocol):
    """What :func:`read_to_device` reads from."""

    dtype: np.dtype
    raw_shape: tuple[int, ...]
    post_slicer: Any
    out_shape: tuple[int, ...]
    nbytes: int

    def readinto(self, start: int, out: memoryview) -> None:
        """Fill ``out`` with bytes ``[start, start + len(out))`` of the raw block."""


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


def read_to_device(
    source: RawSource, plan: ScalePlan, *, device: object, stream: Any = None, name: str = ""
) -> Any:
    """Read ``source``'s raw block to the GPU, scaled by ``plan``.

    Parameters
    ----------
    source : RawSource
        The raw block (see the module docstring).
    plan : ScalePlan
        From :func:`gpuimg.scaling.plan_scaling` for ``source.dtype``.
    device : str, int or cupy.cuda.Device
        Where the result lives (anything :func:`gpuimg.device.resolve_device` accepts but the host).
    stream : cupy.cuda.Stream, optional
        The stream that will use the result (created on ``device``); the device's current stream by
        default. The result is ready on it: it waits, on the device, for the read to finish.
    name : str
        What is being read (a file name), for error messages.

    Returns
    -------
    cupy.ndarray
        Fortran-contiguous, shape ``source.out_shape``, dtype ``plan.out_dtype`` in native byte order.

    Raises
    ------
    DeviceMemoryError
        The GPU ran out of memory. Whatever the error, pinned buffers go back to the pool and the
        device memory of the partial result is freed.
    TypeError
        The data cannot be handled on the GPU (structured RGB data, long double, complex256).
    ValueError
        ``stream`` was created on another device.
    """
    device_id = resolve_device(device)
    if device_id is None:
        raise ValueError(
            f"device is {device!r}; read_to_device needs a GPU, e.g. 'cuda' or 'cuda:0'"
        )
    _check_source(source, plan, name)
    if stream is not None:
        check_stream_device(stream, device_id, name or "data block")
    via_host = plan.raw_dtype.kind == "c" and plan.raw_dtype.itemsize <= 16
    if not via_host:
        kernel_spec(plan)  # raises TypeError before any work for data the GPU cannot handle
    with using_device(device_id):
        consumer = current_stream() if stream is None else stream
        work = gpuimg_stream(device_id)
        try:
            with device_memory_guard(name or "data block", source.nbytes):
                if via_host:
                    result = _read_via_host(source, plan, work, consumer)
                else:
                    result = _read_streamed(source, plan, work, consumer)
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


def _read_streamed(source: RawSource, plan: ScalePlan, work: Any, consumer: Any) -> Any:
    """Chunks through pinned buffers, one fused kernel per chunk, into a flat result."""
    spec = kernel_spec(plan)
    count = math.prod(source.raw_shape)
    flat = allocate_for(consumer, work, count, spec.out_dtype, "C")
    if count:
        with work:
            _stream_chunks(source, spec, flat, work)
            finished = work.record()
        consumer.wait_event(finished)
    return finish_result(flat, source, consumer)


def finish_result(flat: Any, source: Any, consumer: Any) -> Any:
    """Turn the flat, scaled raw block of ``source`` on the device into the result, on ``consumer``.

    ``source`` needs ``raw_shape``, ``post_slicer`` and ``out_shape`` (a :class:`RawSource` or a
    :class:`~gpuimg.io.slicing.ReadPlan`). The result is Fortran-contiguous: a view of ``flat`` when
    the slicer keeps every value, else a copy.
    """
    with consumer:
        raw = flat.reshape(tuple(source.raw_shape), order="F")
        result = raw[source.post_slicer]
        if result.size != raw.size or not result.flags.f_contiguous:
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


def _stream_chunks(source: RawSource, spec: Any, flat: Any, work: Any) -> None:
    """Upload and scale the raw block chunk by chunk, double-buffered, on the current stream."""
    itemsize = spec.input_dtype.itemsize
    chunk = default_pinned_pool().buffer_size // itemsize
    count = flat.size
    # One device staging buffer is enough: on one stream, chunk k+1's copy into it is ordered after
    # chunk k's kernel. The overlap that matters is the host reading (decompressing) chunk k+1 into
    # the other pinned buffer while the device copies and scales chunk k.
    staging = None if spec.is_copy else device.empty(min(chunk, count), spec.input_dtype)
    for first in range(0, count, chunk):
        stop = min(first + chunk, count)
        target = flat[first:stop] if staging is None else staging[: stop - first]
        _upload(source, first * itemsize, target, work)
        if staging is not None:
            run_kernel(spec, target, flat[first:stop])
        _stats.add(bytes_to_device=(stop - first) * itemsize)


def _upload(source: RawSource, start: int, target: Any, work: Any) -> None:
    """Read bytes from ``start`` into a pinned buffer and queue their copy into ``target``."""
    # A partial, not a closure: a traceback keeps a closure's cells (``target``, device memory)
    # alive through its frame, where clearing the frame frees them.
    upload_pinned(
        functools.partial(_read_pinned, source, start, target.nbytes, target.dtype), target, work
    )


def _read_pinned(
    source: RawSource, start: int, nbytes: int, dtype: np.dtype, buffer: np.ndarray
) -> np.ndarray:
    host = buffer[:nbytes]
    source.readinto(start, memoryview(host))
    return host.view(dtype)


def upload_pinned(fill: Any, target: Any, work: Any) -> None:
    """Fill a pooled pinned buffer and queue its copy into the device array ``target`` on ``work``.

    ``fill(buffer)`` writes the bytes into ``buffer`` (a uint8 array of the pool's buffer size) and
    returns the host array to copy, of ``target``'s shape and dtype. The buffer goes back to the pool
    behind an event recorded after the copy, so it is reused only once the copy has read it.
    """
    pool = default_pinned_pool()
    buffer = pool.acquire()
    event = None
    queued = False
    try:
        host = fill(buffer)
        target.set(host, stream=work)
        queued = True
        event = work.record()
    finally:
        if queued and event is None:
            work.synchronize()
        pool.release(buffer, event)


def _read_via_host(source: RawSource, plan: ScalePlan, work: Any, consumer: Any) -> Any:
    """Complex data: scale on the host (CUDA has no complex intrinsics we rely on), then upload."""
    raw = np.empty(source.nbytes, dtype=np.uint8)
    source.readinto(0, memoryview(raw))
    values = raw.view(plan.raw_dtype).reshape(tuple(source.raw_shape), order="F")
    scaled = apply_scaling(values, plan)[source.post_slicer]
    # np.asfortranarray would turn a 0-d result (an integer index on a 1-D image) into shape (1,).
    host = np.asarray(scaled, dtype=device_dtype(scaled.dtype), order="F")
    result = allocate_for(consumer, work, host.shape, host.dtype, "F")
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
