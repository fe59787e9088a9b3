"""Device arrays: allocation, copies between host and device, and the fused kernel's launch.

Device arrays are always native-endian (CuPy has no byte order), so a big-endian dtype asked for on
the GPU comes back as the same dtype in native order. Every dtype change on the device goes through
gpuimg's kernel (:func:`cast_into`), which converts float32 subnormals exactly where CuPy's casts
flush them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from gpuimg.device.backend import BackendCache, get_cupy, is_device_array, resolve_device
from gpuimg.device.pinned import default_pinned_pool
from gpuimg.device.streams import current_stream, using_device
from gpuimg.scaling_kernel import KernelSpec, cast_spec, device_dtype

_kernels = BackendCache(per_backend=False)


def empty(shape: Any, dtype: DTypeLike, *, order: str = "C", device: int | None = None) -> Any:
    """An uninitialised device array, allocated on the current stream of ``device`` (or the
    current device)."""
    cupy = get_cupy()
    if device is None:
        return cupy.empty(shape, dtype=dtype, order=order)
    with using_device(device):
        return cupy.empty(shape, dtype=dtype, order=order)


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
    pool = default_pinned_pool()
    buffer = pool.acquire()
    try:
        with using_device(array.device.id):
            stream = current_stream()
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
    if is_device_array(array):
        return _device_to_device(array, dtype, device_id)
    host = np.asanyarray(array, dtype=dtype)
    host = host.astype(device_dtype(host.dtype), copy=False)
    with using_device(device_id):
        out = empty(host.shape, host.dtype, order=_order(host))
        out.set(host)
        return out


def _device_to_device(array: Any, dtype: Any, device_id: int) -> Any:
    """``array`` on ``device_id`` as ``dtype``, copied from its own device first if that differs."""
    target = array.dtype if dtype is None else device_dtype(dtype)
    source_id = array.device.id
    if source_id != device_id:
        with using_device(source_id):
            if not (array.flags.c_contiguous or array.flags.f_contiguous):
                array = array.copy(order="C")  # CuPy copies between devices only contiguous arrays
            ready = current_stream().record()
        with using_device(device_id):
            # The copy runs on this device's current stream: order it after the source's work.
            current_stream().wait_event(ready)
            array = array.copy(order=_order(array))
    if array.dtype == target:
        return array
    with using_device(device_id):
        out = empty(array.shape, target, order=_order(array))
        cast_into(array, out)
        return out


def run_kernel(spec: KernelSpec, src: Any, dst: Any) -> None:
    """Launch ``spec`` on the current stream: read ``src`` (``spec.input_dtype``), write ``dst``."""
    cupy = get_cupy()

    def build() -> Any:
        return cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.operation, spec.name)

    kernel = _kernels.get((cupy.__name__, spec.name, spec.in_params, spec.operation), build)
    kernel(src, *spec.scalars, dst)


def cast_into(src: Any, dst: Any) -> None:
    """Copy (and cast, bit-exactly) ``src`` into ``dst`` on the current stream, whatever their strides."""
    run_kernel(cast_spec(src.dtype, dst.dtype), src, dst)
