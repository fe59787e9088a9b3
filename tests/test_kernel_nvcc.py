"""The fused kernels' CUDA source compiles with nvcc, and the PTX has no fused multiply-add.

CI has no GPU, but it has nvcc: compiling every kernel body gpuimg generates (wrapped the way CuPy's
``ElementwiseKernel`` wraps an operation: per-element references ``x``/``y`` and scalar parameters)
checks the source real CUDA sees, and the PTX shows that the explicitly rounded intrinsics kept nvcc
from contracting ``w * s + b`` into an FMA, which would round differently from numpy.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from kernel_cases import generated_specs

from gpuimg.scaling_kernel import _CTYPES

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")


def _ctype(name: str) -> str:
    return _CTYPES[np.dtype(name)]


def _wrapped(index: int, spec) -> str:
    """One __global__ function around ``spec.operation``, as ElementwiseKernel generates it."""
    in_type, *scalars = [p.strip().split() for p in spec.in_params.split(",")]
    out_type = spec.out_params.split()[0]
    params = [f"const {_ctype(in_type[0])}* xs"]
    params += [f"{_ctype(t)} {n}" for t, n in scalars]
    params += [f"{_ctype(out_type)}* ys", "long long n"]
    return (
        f'extern "C" __global__ void k{index}({", ".join(params)}) {{\n'
        "  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "  if (i >= n) return;\n"
        f"  const {_ctype(in_type[0])}& x = xs[i];\n"
        f"  {_ctype(out_type)}& y = ys[i];\n"
        f"  {spec.operation}\n"
        "}\n"
    )


def test_every_generated_kernel_compiles_without_fma(tmp_path):
    specs = generated_specs()
    assert len(specs) > 200
    source = tmp_path / "kernels.cu"
    source.write_text("\n".join(_wrapped(i, spec) for i, spec in enumerate(specs)))
    ptx = tmp_path / "kernels.ptx"
    result = subprocess.run(
        [NVCC, "-ptx", "-arch=compute_80", "-o", str(ptx), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = ptx.read_text()
    assert len(re.findall(r"\.entry k\d+", text)) == len(specs)
    assert re.search(r"\bfma\.", text) is None, "nvcc contracted a multiply-add into an FMA"
    assert re.search(r"\bmul\.rn\.f64", text) and re.search(r"\badd\.rn\.f64", text)


def test_a_plain_expression_would_be_contracted(tmp_path):
    """The check above can fail: the same arithmetic written as ``w * s + b`` becomes an FMA."""
    source = tmp_path / "plain.cu"
    source.write_text(
        'extern "C" __global__ void k(const short* xs, double s, double b, float* ys) {\n'
        "  int i = threadIdx.x; double w = (double)xs[i]; w = w * s + b; ys[i] = (float)w; }\n"
    )
    ptx = tmp_path / "plain.ptx"
    subprocess.run([NVCC, "-ptx", "-arch=compute_80", "-o", str(ptx), str(source)], check=True)
    assert re.search(r"\bfma\.rn\.f64", ptx.read_text())
