"""Every generated kernel compiles with NVRTC exactly as CuPy wraps and compiles it, and stays exact.

CuPy turns an ``ElementwiseKernel`` into CUDA source with its own code generator and headers, then
compiles it with NVRTC and its own options, ``-ftz=true`` always among them (``cupy/cuda/compiler.py``).
Compiling needs no GPU: NVRTC comes from PyPI (``nvidia-cuda-nvrtc-cu12``, in the ``test`` extra). The
PTX then shows what ``-ftz=true`` and contraction would do to the arithmetic: no instruction may flush
subnormals (``.ftz``) and none may fuse a multiply-add (``fma``), or the device would not be
bit-identical to numpy.

The code generator is CuPy's private API (``cupy._core._kernel``), so the test skips, saying why, when
a CuPy version no longer has it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from kernel_cases import generated_specs

from gpuimg.scaling_kernel import KernelSpec

cupy = pytest.importorskip("cupy")
try:
    from cupy._core import _carray, _kernel, _scalar, core
    from cupy_backends.cuda.libs import nvrtc
except ImportError as exc:  # pragma: no cover - depends on the CuPy version
    pytest.skip(
        f"CuPy {cupy.__version__} moved its kernel generator: {exc}", allow_module_level=True
    )

ARCH = "90"
# _ArgKind in cupy/_core/_kernel.pxd
NDARRAY, INDEXER, SCALAR = 1, 2, 3


def _nvrtc_or_skip() -> None:
    try:
        nvrtc.getVersion()
    except Exception as exc:  # CuPy raises whatever the library loader raised
        pytest.skip(f"NVRTC cannot be loaded ({exc}); pip install nvidia-cuda-nvrtc-cu12")


def _cupy_options() -> tuple[str, ...]:
    """The options CuPy compiles an ElementwiseKernel with (compile_with_cache), for PTX."""
    try:
        options = core.assemble_cupy_compiler_options(())
    except RuntimeError as exc:  # no CUDA headers: CuPy itself could compile nothing here
        pytest.skip(str(exc))
    return (*options, "-ftz=true", f"-arch=compute_{ARCH}", "--device-as-default-execution-space")


def _cupy_source(spec: KernelSpec, name: str, ndim: int) -> str:
    """The CUDA source CuPy generates for ``spec`` called on ``ndim``-D arrays (strided when > 1)."""
    kernel = cupy.ElementwiseKernel(spec.in_params, spec.out_params, spec.operation, name)
    scalars = [np.dtype(type(scalar)) for scalar in spec.scalars]
    in_dtypes = (spec.input_dtype, *scalars)
    _, _, type_map = _kernel._decide_params_type(
        kernel.in_params, kernel.out_params, in_dtypes, (spec.out_dtype,)
    )
    contiguous = ndim == 1
    arginfos = (
        _kernel._ArgInfo(NDARRAY, cupy.ndarray, spec.input_dtype, ndim, contiguous, True),
        *(_kernel._ArgInfo(SCALAR, _scalar.CScalar, dtype, 0, True, True) for dtype in scalars),
        _kernel._ArgInfo(NDARRAY, cupy.ndarray, spec.out_dtype, ndim, contiguous, True),
        _kernel._ArgInfo(INDEXER, _carray.Indexer, None, ndim, True, True),
    )
    return _kernel._get_elementwise_kernel_code(
        arginfos, type_map, kernel.params, kernel.operation, kernel.name, kernel.preamble
    )


def _ptx(kernels: list[str]) -> str:
    headers = "".join(f"#include <{header}>\n" for header in core._cupy_header_list)
    program = nvrtc.createProgram(headers + "\n".join(kernels), "gpuimg_kernels.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(program, _cupy_options())
        except nvrtc.NVRTCError:
            pytest.fail(nvrtc.getProgramLog(program))
        return nvrtc.getPTX(program).decode()
    finally:
        nvrtc.destroyProgram(program)


def _flushing_float_results(ptx: str) -> list[str]:
    """Instructions with ``.ftz`` that produce a float. A float-to-integer conversion may flush
    (``cvt.rzi.ftz.s32.f32``): a subnormal truncates to integer 0 either way."""
    found = set()
    for instruction in re.findall(r"\b[a-z]+(?:\.\w+)+", ptx):
        parts = instruction.split(".")
        types = [part for part in parts if re.fullmatch(r"[subf]\d+", part)]
        if "ftz" in parts and types and types[0].startswith("f"):
            found.add(instruction)
    return sorted(found)


@pytest.mark.parametrize("ndim", [1, 3], ids=["1d-contiguous", "3d-strided"])
def test_every_generated_kernel_compiles_exact_under_cupys_options(ndim) -> None:
    _nvrtc_or_skip()
    specs = generated_specs()
    assert len(specs) > 200
    ptx = _ptx([_cupy_source(spec, f"k{index}", ndim) for index, spec in enumerate(specs)])
    assert len(re.findall(r"\.entry k\d+", ptx)) == len(specs)
    flushing = _flushing_float_results(ptx)
    assert not flushing, f"-ftz=true flushes float32 subnormals in {flushing}"
    assert not re.search(r"\bfma\.rn\.f(32|64)", ptx), "a multiply-add was contracted into an FMA"
    assert re.search(r"\bcvt\.f64\.f32\b", ptx) and re.search(r"\bcvt\.rn\.f32\.f64\b", ptx)


def test_a_plain_cast_would_flush() -> None:
    """The check above can fail: the same conversion written as a C cast flushes under -ftz=true."""
    _nvrtc_or_skip()
    spec = KernelSpec(
        name="plain",
        in_params="float32 x",
        out_params="float64 y",
        operation="double w = (double)x; y = w;",
        input_dtype=np.dtype(np.float32),
        out_dtype=np.dtype(np.float64),
        scalars=(),
    )
    ptx = _ptx([_cupy_source(spec, "plain", 1)])
    assert _flushing_float_results(ptx) == ["cvt.ftz.f64.f32"]
