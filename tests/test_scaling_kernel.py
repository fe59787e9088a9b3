"""The fused kernel's CUDA C, generated from a scaling plan: pure strings, no backend needed.

The kernels run on the CuPy double and real CuPy in ``tests/test_device.py`` and compile with
NVRTC in ``tests/test_kernel_nvrtc.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gpuimg.scaling import plan_scaling
from gpuimg.scaling_kernel import kernel_spec


@pytest.mark.parametrize("raw", ["<i2", ">i2", ">u8", ">f4", "<f8", ">i8"])
def test_kernel_uses_only_rounded_arithmetic(raw) -> None:
    spec = kernel_spec(plan_scaling(np.dtype(raw), 1.5, -2.0, np.dtype(np.float32)))
    assert "__dmul_rn(w, s)" in spec.operation and "__dadd_rn(w, b)" in spec.operation
    assert "*" not in spec.operation and "+" not in spec.operation
    assert spec.input_dtype.kind == ("i" if raw == "<i2" else "u" if raw[0] == ">" else "f")


def test_kernel_identity_is_a_copy() -> None:
    assert kernel_spec(plan_scaling(np.dtype("=i2"), None, None)).is_copy
    swapped = kernel_spec(plan_scaling(np.dtype(">i2"), None, None))
    assert not swapped.is_copy and swapped.out_dtype == np.dtype("int16")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")]), "structured .RGB. data"),
        (np.dtype(np.longdouble), "cannot handle raw dtype float128"),
        (np.dtype(np.complex64), "cannot handle raw dtype complex64"),
    ],
)
def test_kernel_refuses(raw, message) -> None:
    with pytest.raises(TypeError, match=message):
        kernel_spec(plan_scaling(raw, None, None, None))


def test_kernel_scales_in_float64_only() -> None:
    plan = replace(plan_scaling(np.dtype("<i2"), 2.0, None), work_dtype=np.dtype(np.float32))
    with pytest.raises(TypeError, match="scales in float64, the plan's work dtype is float32"):
        kernel_spec(plan)
