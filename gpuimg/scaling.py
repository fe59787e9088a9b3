"""Read scaling (``raw * slope + inter``) with nibabel's exact dtype rules, done in cache-sized blocks.

nibabel computes a scaled read in three dtype steps, and the result depends on every one of them:

1. the *work* dtype the arithmetic runs in: for integer data the first float type in which the scaled
   integer range stays finite (float64 in practice), for float data the promotion of the data with the
   scale factors (float64 unless the caller asked for a wider type);
2. ``promote_types(work, requested)`` — the proxy's ``astype``;
3. the requested dtype — numpy's final cast in ``np.asanyarray(proxy, dtype)``.

:func:`plan_scaling` resolves those steps once, and :func:`scale_into` applies them block by block straight
into the output array, so the values are bit-identical to nibabel's while the peak memory stays near the
output plus the raw data (nibabel materialises the full float64 intermediate).
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal, SupportsFloat, cast

import numpy as np

from gpuimg.config import PARALLEL_MIN_ELEMENTS, claim_helpers, executor, settings
from gpuimg.errors import HeaderDataError
from gpuimg.io.buffers import default_pool
from gpuimg.kernels import scale_flat_into, scale_reversed_into
from gpuimg.transpose import TILE_ELEMENTS, convert_between_orders, tiles

#: Elements per block: 64 Ki float64 work values = 512 KiB, comfortably inside L2.
BLOCK_ELEMENTS = 1 << 16

_WIDER_FLOATS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.longdouble))


@dataclass(frozen=True)
class ScalePlan:
    """How to turn raw on-disk values into the requested result.

    Attributes
    ----------
    raw_dtype : numpy.dtype
        The on-disk dtype, with its byte order.
    slope, inter : numpy scalar or None
        Factors in ``work_dtype``; None where nibabel skips that operation (slope 1, intercept 0).
    work_dtype : numpy.dtype or None
        dtype of the arithmetic; None when no arithmetic happens.
    casts : tuple of numpy.dtype
        Successive casts applied after the arithmetic (or to the raw values when unscaled); the last one is
        the result dtype. Empty when the result is the raw array itself.
    """

    raw_dtype: np.dtype
    slope: np.generic | None
    inter: np.generic | None
    work_dtype: np.dtype | None
    casts: tuple[np.dtype, ...]

    @property
    def out_dtype(self) -> np.dtype:
        """dtype of the scaled result."""
        if self.casts:
            return self.casts[-1]
        return self.work_dtype if self.work_dtype is not None else self.raw_dtype

    @property
    def is_identity(self) -> bool:
        """True when the result is the raw data unchanged (same dtype, byte order included)."""
        return self.work_dtype is None and not self.casts


def _scaled_int_ftype(raw_dtype: np.dtype, slope: float, inter: float, start: np.dtype) -> np.dtype:
    """First float type from ``start`` upwards in which the scaled integer range stays finite."""
    info = np.iinfo(raw_dtype)
    candidates = [t for t in _WIDER_FLOATS if t.itemsize >= start.itemsize]
    for ftype in candidates:
        ends = np.array([info.min, info.max], dtype=raw_dtype).astype(ftype)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.add(np.multiply(ends, ftype.type(slope)), ftype.type(inter))
        if np.all(np.isfinite(scaled)):
            return ftype
    raise HeaderDataError(
        f"scaling {raw_dtype} data by slope {slope} and intercept {inter} overflows every float type"
    )


def scale_factor(value: Any, default: float) -> float | np.floating:
    """A slope or intercept as a header gives it: a numpy float keeps its type (nibabel then scales in
    it, as for an SPM99 slope), anything else becomes a float; None becomes ``default``."""
    if value is None:
        return default
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind == "f":
        return cast(np.floating, value.dtype.type(value))
    return float(value)


def plan_scaling(
    raw_dtype: np.dtype,
    slope: SupportsFloat | None,
    inter: SupportsFloat | None,
    dtype: np.dtype | None = None,
) -> ScalePlan:
    """Resolve nibabel's dtype steps for reading ``raw_dtype`` data scaled by ``slope``/``inter``.

    Parameters
    ----------
    raw_dtype : numpy.dtype
        On-disk dtype (byte order kept: an unscaled read with ``dtype=None`` keeps it, as nibabel does).
    slope, inter : float, 0-d array or None
        Scale factors as the header returns them; None means 1.0 and 0.0. A numpy float slope (an
        SPM99 header's float32 field, as nibabel returns it) gives the factors' type, as in nibabel;
        any other slope, float64. Integer data are scaled in that type, or the first wider float type
        the scaled range fits in.
    dtype : numpy.dtype or None
        Requested result dtype (``np.asanyarray(proxy, dtype)``); None gives nibabel's natural dtype.

    Returns
    -------
    ScalePlan

    Examples
    --------
    >>> plan = plan_scaling(np.dtype('<i2'), 2.0, 1.0, np.dtype(np.float32))
    >>> plan.work_dtype, plan.out_dtype
    (dtype('float64'), dtype('float32'))
    """
    raw_dtype = np.dtype(raw_dtype)
    given = scale_factor(slope, 1.0)
    factor_dtype = given.dtype if isinstance(given, np.floating) else np.dtype(np.float64)
    slope = float(given)
    inter = 0.0 if inter is None else float(inter)
    requested = None if dtype is None else np.dtype(dtype)
    if math.isnan(slope) or math.isnan(inter) or math.isinf(slope) or math.isinf(inter):
        raise HeaderDataError(
            f"scale factors must be finite, found slope {slope}, intercept {inter}"
        )

    work = None
    if (slope, inter) != (1.0, 0.0):
        if raw_dtype.fields is not None:
            raise HeaderDataError(f"cannot scale structured data {raw_dtype} by {slope}, {inter}")
        if requested is not None and np.can_cast(factor_dtype, requested):
            factor_dtype = requested
        if raw_dtype.kind in "iu":
            start = factor_dtype if factor_dtype.kind == "f" else np.dtype(np.float64)
            # nibabel multiplies the integers by factors of that type: numpy promotes the two
            # (int32 data with an SPM99 float32 slope are scaled in float64).
            work = np.promote_types(raw_dtype, _scaled_int_ftype(raw_dtype, slope, inter, start))
        else:
            work = np.promote_types(raw_dtype, factor_dtype)
    casts: list[np.dtype] = []
    if requested is not None:
        current = work if work is not None else raw_dtype
        promoted = np.promote_types(current, requested)
        for step in (promoted, requested):
            if step != (casts[-1] if casts else current):
                casts.append(step)
    return ScalePlan(
        raw_dtype=raw_dtype,
        slope=None if slope == 1.0 or work is None else work.type(slope),
        inter=None if inter == 0.0 or work is None else work.type(inter),
        work_dtype=work,
        casts=tuple(casts),
    )


@lru_cache(maxsize=256)
def equivalent_narrow_plan(plan: ScalePlan) -> ScalePlan:
    """``plan`` with its arithmetic done in float32, when that provably gives the same values.

    nibabel scales 8- and 16-bit integers in float64 and then casts to the requested float32. When
    every product ``raw * slope`` is exact in float32 and every sum ``product + inter`` is exact in
    float64, both ways round the same exact value once (to nearest, ties to even), so arithmetic in
    float32 straight into the output is bit-identical and about a third faster. That holds for scale
    factors with short binary expansions (slope 1.25, intercept -8, say), not for ones like 0.1.

    Examples
    --------
    >>> equivalent_narrow_plan(plan_scaling(np.dtype('<i2'), 1.25, -8.0, np.float32)).work_dtype
    dtype('float32')
    >>> equivalent_narrow_plan(plan_scaling(np.dtype('<i2'), 0.1, -8.0, np.float32)).work_dtype
    dtype('float64')
    """
    narrow = np.dtype(np.float32)
    if plan.casts != (narrow,) or plan.work_dtype != np.float64:
        return plan
    raw = plan.raw_dtype
    if raw.kind not in "iu" or raw.itemsize > 2:
        return plan
    factors = [float(f) for f in (plan.slope, plan.inter) if f is not None]
    with np.errstate(over="ignore"):  # a factor past float32's range is simply not exact there
        if any(float(narrow.type(f)) != f for f in factors):
            return plan
    info = np.iinfo(raw)
    largest = max(-int(info.min), int(info.max))
    slope_m, slope_e = _dyadic(1.0 if plan.slope is None else float(plan.slope))
    inter_m, inter_e = _dyadic(0.0 if plan.inter is None else float(plan.inter))
    terms = [(largest * abs(slope_m), slope_e), (abs(inter_m), inter_e)]
    terms = [(m, e) for m, e in terms if m]
    if not terms:
        return plan
    lowest = min(e for _, e in terms)
    exact_products = largest * abs(slope_m) < 2**24
    # Every sum is a multiple of 2**lowest no larger than this many of them: exact below 2**53.
    exact_sums = sum(m << (e - lowest) for m, e in terms) < 2**53
    # Stay clear of float32's subnormals and overflow, where rounding could differ.
    in_range = lowest >= -126 and max(m.bit_length() + e for m, e in terms) <= 126
    if not (exact_products and exact_sums and in_range):
        return plan
    return replace(
        plan,
        slope=None if plan.slope is None else narrow.type(plan.slope),
        inter=None if plan.inter is None else narrow.type(plan.inter),
        work_dtype=narrow,
        casts=(),
    )


def _dyadic(value: float) -> tuple[int, int]:
    """``(m, e)`` with ``value == m * 2**e`` and ``m`` odd (``(0, 0)`` for zero)."""
    numerator, denominator = value.as_integer_ratio()
    if numerator == 0:
        return 0, 0
    trailing = (numerator & -numerator).bit_length() - 1
    return numerator >> trailing, trailing - (denominator.bit_length() - 1)


def scale_into(
    raw: np.ndarray, plan: ScalePlan, out: np.ndarray, *, threads: int | None = None
) -> np.ndarray:
    """Scale ``raw`` into ``out`` following ``plan``, block by block.

    Parameters
    ----------
    raw : numpy.ndarray
        Raw values, any strides. Values laid out in ``out``'s order are walked as flat ranges;
        others (Fortran-ordered data into a C-ordered ``out``) are transposed tile by tile in the
        same pass (:func:`scale_transposed_into`); nothing is copied beforehand.
    plan : ScalePlan
        From :func:`plan_scaling` for ``raw.dtype``.
    out : numpy.ndarray
        Output of ``plan.out_dtype`` and ``raw.shape``, with the same memory order as ``raw``.
    threads : int, optional
        At most this many threads for large arrays, the calling one included (default:
        ``gpuimg.config.settings.threads``); fewer while other reads hold helpers (see
        :func:`gpuimg.config.claim_helpers`).

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    if out.shape != raw.shape:
        raise ValueError(f"output shape {out.shape} differs from the raw shape {raw.shape}")
    if not (out.flags.c_contiguous or out.flags.f_contiguous) or not out.flags.writeable:
        raise ValueError("out must be a writeable C- or Fortran-contiguous array")
    if out.dtype != plan.out_dtype:
        raise ValueError(f"out has dtype {out.dtype}, the plan produces {plan.out_dtype}")
    plan = equivalent_narrow_plan(plan)
    wanted = (settings.threads if threads is None else threads) - 1
    if wanted < 1 or raw.size < PARALLEL_MIN_ELEMENTS:
        _scale_share(raw, plan, out, 0, 1)
        return out
    with claim_helpers(wanted) as helpers:
        # numpy releases the GIL inside ufunc loops, so shares scale in parallel.
        count = 1 + helpers
        jobs = [
            executor().submit(_scale_share, raw, plan, out, index, count)
            for index in range(1, count)
        ]
        try:
            _scale_share(raw, plan, out, 0, count)
        finally:
            for job in jobs:
                job.result()
    return out


def _scale_share(raw: np.ndarray, plan: ScalePlan, out: np.ndarray, index: int, count: int) -> None:
    """Scale share ``index`` of ``count`` equal shares of ``raw`` into ``out``."""
    order: Literal["C", "F"] = "F" if _is_fortran(out) else "C"
    if raw.ndim > 1 and not (raw.flags.f_contiguous if order == "F" else raw.flags.c_contiguous):
        # Another layout (Fortran-ordered data into a C-ordered batch): transpose tile by tile.
        scale_transposed_into(raw, plan, out, share=(index, count))
        return
    # Walk both arrays in their common memory order, as flat ranges.
    src = raw.reshape(-1, order=order)
    dst = out.reshape(-1, order=order)
    per_share = -(-src.size // count // BLOCK_ELEMENTS) * BLOCK_ELEMENTS
    start = index * per_share
    _scale_range(src[start : start + per_share], plan, dst[start : start + per_share])


def scale_transposed_into(
    raw: np.ndarray,
    plan: ScalePlan,
    out: np.ndarray,
    *,
    share: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Scale ``raw`` into ``out`` of another memory order (or any strides), in cache-sized tiles.

    Scaling, casting and transposition happen in one pass over the data, with the same values as
    :func:`scale_into`: in the compiled kernel of :mod:`gpuimg.kernels` when numba is installed and
    the kernel takes the plan (a Fortran-ordered volume into a C-ordered one), else in numpy calls
    on cache-sized tiles (:func:`gpuimg.transpose.convert_between_orders`).

    Parameters
    ----------
    raw : numpy.ndarray
        Raw values, any strides (typically a Fortran-ordered volume read from disk).
    plan : ScalePlan
        From :func:`plan_scaling` for ``raw.dtype``.
    out : numpy.ndarray
        Writeable output of ``plan.out_dtype`` and ``raw.shape``, any strides (typically a C-ordered
        slot of a batch).
    share : (int, int)
        ``(index, count)``: fill only share ``index`` of ``count`` shares of ``out``, for callers
        that split the work between threads (default: all of it).

    Returns
    -------
    numpy.ndarray
        ``out``.
    """
    if out.shape != raw.shape or out.dtype != plan.out_dtype:
        raise ValueError(
            f"out is {out.dtype} {out.shape}, the plan produces {plan.out_dtype} {raw.shape}"
        )
    plan = equivalent_narrow_plan(plan)
    if scale_reversed_into(raw, plan, out, share=share):
        return out
    index, count = share
    every = list(tiles(raw.shape))
    per_share = -(-len(every) // count)
    tile_slicers = iter(every[index * per_share : (index + 1) * per_share])
    steps = _steps(plan)
    with ExitStack() as stack:
        scratch = [
            stack.enter_context(default_pool.borrow(TILE_ELEMENTS * dt.itemsize)).view(dt)
            for dt in steps[:-1]
        ]

        def convert(part: np.ndarray, staged: np.ndarray) -> None:
            if not steps:
                np.copyto(staged, part)
                return
            order: Literal["C", "F"] = "F" if _is_fortran(staged) else "C"
            shaped = [buffer[: part.size].reshape(part.shape, order=order) for buffer in scratch]
            _scale_block(part, plan, [*shaped, staged])

        convert_between_orders(raw, out, convert, tile_slicers=tile_slicers)
    return out


def _steps(plan: ScalePlan) -> tuple[np.dtype, ...]:
    """The dtypes ``plan`` produces in turn: the work dtype (if any), then each cast."""
    return ((plan.work_dtype,) if plan.work_dtype is not None else ()) + plan.casts


def _scale_range(src: np.ndarray, plan: ScalePlan, dst: np.ndarray) -> None:
    """Scale a 1-D range: in one compiled pass when numba takes it, else block by block in numpy.

    numpy's way makes one pass per operation over each block (scratch buffers of one block per
    intermediate dtype). Ranges under a block stay with numpy: its few calls cost as little there,
    and small reads compile nothing.
    """
    steps = _steps(plan)
    if not steps:
        np.copyto(dst, src)
        return
    if src.size >= BLOCK_ELEMENTS and scale_flat_into(src, plan, dst):
        return
    scratch = [np.empty(min(BLOCK_ELEMENTS, src.size), dtype=dt) for dt in steps[:-1]]
    for start in range(0, src.size, BLOCK_ELEMENTS):
        stop = min(start + BLOCK_ELEMENTS, src.size)
        targets = [buffer[: stop - start] for buffer in scratch] + [dst[start:stop]]
        _scale_block(src[start:stop], plan, targets)


def _scale_block(src: np.ndarray, plan: ScalePlan, targets: list[np.ndarray]) -> None:
    """One block: arithmetic in the work dtype, then each cast into the next target.

    The last arithmetic operation writes straight into the first cast's target: numpy computes it in
    ``dtype=work_dtype`` and casts on output, which rounds exactly as a separate cast would.
    """
    current, first_cast = src, 0
    if plan.work_dtype is not None:
        work = plan.work_dtype
        ops: list[tuple[np.ufunc, Any]] = (
            [(np.multiply, plan.slope)] if plan.slope is not None else []
        )
        ops += [(np.add, plan.inter)] if plan.inter is not None else []
        last = targets[1] if len(targets) > 1 else targets[0]
        # Values past the work dtype's range become ±inf, as nibabel's float64-then-cast gives them;
        # a header with a huge slope is valid, so that is a result, not an error.
        with np.errstate(over="ignore"):
            for index, (op, factor) in enumerate(ops):
                out = last if index == len(ops) - 1 else targets[0]
                op(current, factor, out=out, dtype=work, casting="unsafe")
                current = out
        first_cast = 2 if last is not targets[0] else 1
    with np.errstate(over="ignore"):
        for target in targets[first_cast:]:
            np.copyto(target, current, casting="unsafe")
            current = target


def apply_scaling(raw: np.ndarray, plan: ScalePlan) -> np.ndarray:
    """Return ``raw`` scaled by ``plan`` in a new array (``raw`` itself when the plan is the identity)."""
    if plan.is_identity:
        return raw
    out = np.empty(raw.shape, dtype=plan.out_dtype, order="F" if _is_fortran(raw) else "C")
    return scale_into(raw, plan, out)


def _is_fortran(array: np.ndarray) -> bool:
    return bool(array.flags.f_contiguous and not array.flags.c_contiguous)
