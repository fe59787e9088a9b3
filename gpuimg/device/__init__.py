"""The GPU seam: the only package in gpuimg that touches CuPy (and nvCOMP), and only when a GPU is
asked for.

Everything device-specific lives here so the rest of gpuimg stays importable and testable on
machines without a GPU. Other modules use the operations below and never CuPy itself (a test walks
the package to hold this); CuPy's objects they get back (arrays, streams, events) are used through
their own methods.

* :mod:`~gpuimg.device.backend`: which CuPy (:func:`use_backend` swaps in the strict CPU test
  double of ``tests/cupy_double.py``), device ids (:func:`resolve_device`).
* :mod:`~gpuimg.device.streams`: :func:`using_device`, :func:`current_stream`, :func:`new_stream`,
  gpuimg's own stream per device, events between streams.
* :mod:`~gpuimg.device.arrays`: :func:`empty`, :func:`to_device`, :func:`to_host`,
  :func:`host_blocks`, and the fused scale kernel's launch (:func:`run_kernel`, :func:`cast_into`;
  its CUDA C is written by :mod:`gpuimg.scaling_kernel`).
* :mod:`~gpuimg.device.pinned`: the pool of page-locked host buffers.
* :mod:`~gpuimg.device.memory`: :func:`empty_cache`, :func:`device_memory_used`,
  :func:`device_memory_guard`.
* :mod:`~gpuimg.device.nvcomp`: nvCOMP's batched Deflate decode (BGZF blocks).

Device arrays are always native-endian (CuPy has no byte order), so a big-endian dtype asked for on
the GPU comes back as the same dtype in native order.
"""

from __future__ import annotations

from gpuimg.device.arrays import cast_into, empty, host_blocks, run_kernel, to_device, to_host
from gpuimg.device.backend import is_device_array, resolve_device, use_backend
from gpuimg.device.memory import device_memory_guard, device_memory_used, empty_cache
from gpuimg.device.nvcomp import (
    decode_deflate_batch,
    deflate_alignment,
    nvcomp_available,
    use_nvcomp_backend,
)
from gpuimg.device.pinned import (
    PinnedPool,
    PinnedPoolStats,
    default_pinned_pool,
    set_pinned_pool_limits,
)
from gpuimg.device.streams import (
    check_stream_device,
    current_stream,
    current_stream_event,
    gpuimg_stream,
    new_stream,
    using_device,
    wait_on_current_stream,
)
from gpuimg.scaling_kernel import device_dtype

__all__ = [
    "PinnedPool",
    "PinnedPoolStats",
    "cast_into",
    "check_stream_device",
    "current_stream",
    "current_stream_event",
    "decode_deflate_batch",
    "default_pinned_pool",
    "deflate_alignment",
    "device_dtype",
    "device_memory_guard",
    "device_memory_used",
    "empty",
    "empty_cache",
    "gpuimg_stream",
    "host_blocks",
    "is_device_array",
    "new_stream",
    "nvcomp_available",
    "resolve_device",
    "run_kernel",
    "set_pinned_pool_limits",
    "to_device",
    "to_host",
    "use_backend",
    "use_nvcomp_backend",
    "using_device",
    "wait_on_current_stream",
]
