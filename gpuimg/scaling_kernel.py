"""The CUDA C of the fused read-scale-cast kernel, generated from a :class:`~gpuimg.scaling.ScalePlan`.

Pure string work, testable without CuPy or a GPU: :func:`kernel_spec` turns nibabel's dtype steps
into the body of one ``ElementwiseKernel`` (:func:`gpuimg.device.run_kernel` compiles and launches
it). The kernel reads the raw on-disk values (byte-swapping big-endian data on the device), scales
them with explicitly rounded operations so the result is bit-identical to
:func:`gpuimg.scaling.apply_scaling`, and casts; see ``docs/gpu.md`` for why each line is so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gpuimg.scaling import ScalePlan, plan_scaling

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


def cast_spec(source: np.dtype, target: np.dtype) -> KernelSpec:
    """The kernel that copies ``source`` values into a ``target`` array, converting them exactly."""
    spec = kernel_spec(plan_scaling(source, None, None, target))
    return replace(spec, operation="y = x;") if spec.is_copy else spec
