"""Device memory: freeing CuPy's cached blocks, counting bytes in use, and out-of-memory errors.

CuPy keeps one memory pool per device and its pool methods act on the current device only, so these
functions visit the current device and every device gpuimg has been asked for; other devices are
left alone (visiting one would create a CUDA context there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gpuimg.device.backend import devices_in_use, get_cupy, loaded_backend
from gpuimg.device.pinned import default_pinned_pool
from gpuimg.errors import DeviceMemoryError


def empty_cache() -> None:
    """Free cached device and pinned memory (gpuimg's ``torch.cuda.empty_cache``).

    Drops gpuimg's idle pinned buffers, then frees CuPy's unused memory-pool blocks on the current
    device and on every device gpuimg has been asked to use (CuPy keeps one pool per device and its
    methods act on the current device's). Memory held by live arrays stays; CuPy frees a split block
    only once every part of it is free.
    """
    default_pinned_pool().clear()
    backend = loaded_backend()
    if backend is None:
        return
    pool = backend.get_default_memory_pool()
    for device_id in devices_in_use(backend):
        with backend.cuda.Device(device_id):
            pool.free_all_blocks()
    backend.get_default_pinned_memory_pool().free_all_blocks()


def device_memory_used(*, include_cached: bool = False) -> int:
    """Bytes of device memory held by live arrays in CuPy's default pool (plus its cache if asked),
    summed over the current device and every device gpuimg has been asked to use."""
    backend = loaded_backend()
    if backend is None:
        return 0
    pool = backend.get_default_memory_pool()
    total = 0
    for device_id in devices_in_use(backend):
        with backend.cuda.Device(device_id):
            total += pool.total_bytes() if include_cached else pool.used_bytes()
    return total


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
