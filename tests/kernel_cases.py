"""Every fused kernel gpuimg generates, for the compile tests (nvcc and NVRTC).

The scale kernels cover every raw dtype the kernel reads, native and byte-swapped, with and without
slope and intercept, read as float32, float64 or nibabel's natural dtype; the cast kernels are those
:func:`gpuimg.device.cast_into` runs (the loader's slot copies, device-array conversions).
"""

from __future__ import annotations

import numpy as np

from gpuimg.scaling import plan_scaling
from gpuimg.scaling_kernel import _CTYPES, KernelSpec, cast_spec, kernel_spec

FACTORS = [(None, None), (2.5, None), (None, -3.0), (0.1, 7.25)]
REQUESTS = [np.float32, np.float64, None]


def _raw_dtypes() -> list[np.dtype]:
    native = list(_CTYPES)
    return native + [dtype.newbyteorder(">") for dtype in native if dtype.itemsize > 1]


def generated_specs() -> list[KernelSpec]:
    """One spec per distinct kernel (name and operation)."""
    seen: dict[tuple[str, str], KernelSpec] = {}
    for raw in _raw_dtypes():
        for slope, inter in FACTORS:
            for request in REQUESTS:
                spec = kernel_spec(plan_scaling(raw, slope, inter, request))
                if not spec.is_copy:
                    seen[(spec.name, spec.operation)] = spec
    for source in _CTYPES:
        for target in _CTYPES:
            spec = cast_spec(source, target)
            seen[(spec.name, spec.operation)] = spec
    return list(seen.values())
