"""Writing arrays to image files: the write plan (factors and cast) and the blocked write loop.

:func:`plan_write` decides once, from the data's dtype and :class:`~gpuimg.scalefactors.DataRange`, the
scale factors to store (see :mod:`gpuimg.scalefactors`) and a :class:`CastPlan`; :func:`cast_block` then
turns any block of the data into on-disk values, so a writer can go block by block. The cast follows
nibabel's rules step for step, so the bytes written are nibabel's:

- no arithmetic where numpy casts safely or the target is float or complex (a plain cast);
- integers to a narrower integer type unscaled: clipped to the target's range;
- otherwise ``rint((x - inter) / slope)`` in the working float type (the promotion of the data with the
  float32 factors, widened until the scaled range is finite), clipped to the scaled finite range of the
  data and to what the working type holds of the target's range — so ±inf become the scaled extremes —
  NaN written as the scaled 0;
- float data with no finite value (or a finite range of exactly 0) written as integers: all zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, TypedDict

import numpy as np

from gpuimg import device as device_seam
from gpuimg.errors import ScalingError, WriterError
from gpuimg.floatlimits import FLOAT_LADDER, shared_range
from gpuimg.io.buffers import default_pool
from gpuimg.scalefactors import DataRange, choose_factors, data_range, needs_range
from gpuimg.transpose import TILE_ELEMENTS, convert_between_orders, fortran_blocks

__all__ = [
    "CastPlan",
    "DataRange",
    "ScalingError",
    "WritePlan",
    "WriterError",
    "block_elements",
    "blocked_data_range",
    "cast_block",
    "data_blocks",
    "data_range",
    "needs_range",
    "plan_array_write",
    "plan_cast",
    "plan_write",
    "write_array",
]

#: Values per block while writing (4 MiB of float32). Large enough that a block of a C-ordered
#: 256x256xN volume spans 16 indices of its last axis: the transposition then reads whole cache lines.
WRITE_BLOCK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class CastPlan:
    """How a block of data values becomes on-disk values; applied by :func:`cast_block`.

    Attributes
    ----------
    out_dtype : numpy.dtype
        The on-disk dtype.
    zeros : bool
        Write zeros whatever the values (float data without a finite value, written as integers).
    clips : tuple or None
        Integer bounds applied to the values first (unscaled integer narrowing).
    in_cast : numpy.dtype or None
        Float type the values are cast to before the arithmetic (float16 and complex data).
    inter, slope : numpy.ndarray or None
        One-element arrays in the working float type: ``(x - inter) / slope``; None where not applied.
    post_clips : tuple or None
        Bounds applied after rounding to nearest; None when nothing is rounded.
    nan_fill : numpy scalar or None
        Value NaNs are written as (the scaled 0); None when the data have no NaN.
    """

    out_dtype: np.dtype
    zeros: bool = False
    clips: tuple[int, int] | None = None
    in_cast: np.dtype | None = None
    inter: np.ndarray | None = None
    slope: np.ndarray | None = None
    post_clips: tuple[np.floating, np.floating] | None = None
    nan_fill: np.floating | None = None


@dataclass(frozen=True)
class WritePlan:
    """The scale factors to store in the header and the cast that writes the data.

    ``(slope, inter)`` are ``(1, 0)`` for unscaled data, and also when the plan was made with
    ``scale=False`` (the header then keeps the factors the caller set).
    """

    slope: np.float32
    inter: np.float32
    cast: CastPlan

    @property
    def out_dtype(self) -> np.dtype:
        """The on-disk dtype."""
        return self.cast.out_dtype


def plan_write(
    in_dtype: np.dtype,
    out_dtype: np.dtype,
    rng: DataRange | None,
    *,
    has_slope: bool,
    has_inter: bool,
    scale: bool = True,
    name: str = "<image>",
) -> WritePlan:
    """Plan writing data of ``in_dtype`` as ``out_dtype`` in a format storing the given factors.

    Parameters
    ----------
    in_dtype, out_dtype : numpy.dtype
        dtype of the data and on disk.
    rng : DataRange or None
        The data's :func:`data_range`; may be None when :func:`needs_range` is False.
    has_slope, has_inter : bool
        Whether the format stores a slope, an intercept.
    scale : bool
        False: write the values cast, not scaled, because the caller set the header's factors.
    name : str
        File named in error messages.

    Raises
    ------
    WriterError
        When the data cannot be written as ``out_dtype`` (see :func:`~gpuimg.scalefactors.choose_factors`).
    ScalingError
        When the factors needed are not finite in float32.
    """
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    one, zero = np.float32(1), np.float32(0)
    slope, inter = one, zero
    if scale:
        slope, inter = choose_factors(
            in_dtype, out_dtype, rng, has_slope=has_slope, has_inter=has_inter, name=name
        )
    float_to_int = in_dtype.kind == "f" and out_dtype.kind in "iu"
    low = high = None
    if scale and has_slope and float_to_int and rng is not None:
        # Clip at the scaled finite range, so ±inf become its ends; no finite value: zeros.
        low, high = (rng.low, rng.high) if rng.has_finite else (0, 0)
    nan2zero = in_dtype.kind in "fc" and out_dtype.kind in "iu" and rng is not None and rng.has_nan
    cast = plan_cast(
        in_dtype, out_dtype, slope, inter, low=low, high=high, nan2zero=nan2zero, name=name
    )
    return WritePlan(slope, inter, cast)


def plan_cast(
    in_dtype: np.dtype,
    out_dtype: np.dtype,
    slope: float | np.floating[Any] = 1.0,
    inter: float | np.floating[Any] = 0.0,
    *,
    low: float | np.number[Any] | None = None,
    high: float | np.number[Any] | None = None,
    nan2zero: bool = True,
    name: str = "<image>",
) -> CastPlan:
    """The cast writing ``rint((x - inter) / slope)`` of ``in_dtype`` data as ``out_dtype``.

    ``low``/``high`` bound the (unscaled) float data before scaling; ``nan2zero`` writes NaNs as the
    scaled 0.

    Raises
    ------
    WriterError
        For factors that are not finite or a slope of 0, or NaNs that cannot be written as 0.
    """
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    if not (np.isfinite(slope) and np.isfinite(inter)) or slope == 0:
        raise ScalingError(
            f"{name}: cannot write {in_dtype} data as {out_dtype} with slope {slope} and intercept "
            f"{inter}: expected finite factors and a non-zero slope"
        )
    if (low, high) == (0, 0) or (low is not None and high is not None and high < low):
        return CastPlan(out_dtype, zeros=True)
    unscaled = inter == 0 and slope == 1
    if in_dtype.kind == "V" or (unscaled and np.can_cast(in_dtype, out_dtype)):
        return CastPlan(out_dtype)
    slope_a, inter_a = (_as_float_array(v) for v in (slope, inter))
    if out_dtype.kind in "fc":
        return CastPlan(out_dtype, **_factor_fields(slope_a, inter_a))
    if in_dtype.kind in "iu":
        if unscaled:
            in_info, out_info = np.iinfo(in_dtype), np.iinfo(out_dtype)
            return CastPlan(
                out_dtype, clips=(max(in_info.min, out_info.min), min(in_info.max, out_info.max))
            )
        nan2zero = False  # integers hold no NaN
    in_cast = in_dtype
    if in_dtype.kind == "c":
        in_cast = np.dtype(_real_float(in_dtype))
    elif in_dtype.kind == "f" and in_dtype.itemsize == 2:
        in_cast = np.dtype(np.float32)  # float16 is no working type
    ends = _type_ends(in_cast, low, high)
    work = _working_type(in_cast, slope_a, inter_a)
    work = _finite_work_type(np.array(ends, dtype=in_cast), slope_a, inter_a, work)
    slope_a, inter_a = slope_a.astype(work), inter_a.astype(work)
    # The scaled ends of the data and the scaled 0 (the NaN fill), rounded as the data will be.
    specials = np.array((*ends, 0), dtype=work)
    with np.errstate(over="ignore", invalid="ignore"):
        if inter_a != 0:
            specials = specials - inter_a
        if slope_a != 1:
            specials = specials / slope_a
    post_low, post_high, nan_fill = np.rint(specials)
    if post_low > post_high:  # a negative slope
        post_low, post_high = post_high, post_low
    both_low, both_high = shared_range(work, out_dtype)
    if nan2zero and not both_low <= nan_fill <= both_high:
        nan_fill = _nudged_nan_fill(nan_fill, both_low, both_high, work, slope_a, inter_a, name)
    return CastPlan(
        out_dtype,
        in_cast=None if in_cast == in_dtype else in_cast,
        post_clips=(np.max([post_low, both_low]), np.min([post_high, both_high])),
        nan_fill=nan_fill if nan2zero else None,
        **_factor_fields(slope_a, inter_a),
    )


def cast_block(block: np.ndarray, plan: CastPlan) -> np.ndarray:
    """On-disk values (``plan.out_dtype``) for ``block`` of the data, element by element."""
    if plan.zeros:
        return np.zeros(block.shape, plan.out_dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if plan.clips is not None:
            block = np.clip(block, *plan.clips)
        if plan.in_cast is not None:
            block = block.astype(plan.in_cast)
        if plan.inter is not None:
            block = block - plan.inter
        if plan.slope is not None:
            block = block / plan.slope
        if plan.post_clips is not None:
            block = np.clip(np.rint(block), *plan.post_clips)  # a new array: safe to fill below
        if plan.nan_fill is not None:
            block[np.isnan(block)] = plan.nan_fill
        return block.astype(plan.out_dtype, copy=False)


def write_array(fileobj: BinaryIO, data: Any, plan: CastPlan) -> None:
    """Write ``data`` (a numpy or CuPy array) in Fortran order, cast by ``plan``, one block at a time.

    Blocks are boxes of the data taken in their own layout (:func:`gpuimg.transpose.fortran_blocks`):
    a block that needs no cast is written straight from the data; otherwise a Fortran-ordered block
    is cast in flat runs, any other (a C-ordered array) is cast and transposed tile by tile, into
    one reused block buffer that is then written. A CuPy array is streamed block by block through
    pinned host buffers (:func:`gpuimg.device.host_blocks`). Nothing the size of the data is ever
    allocated: the extra memory is one block (at most :data:`WRITE_BLOCK_ELEMENTS` values) plus
    cache-sized scratch.
    """
    elements = block_elements(data)
    plain = _is_plain_copy(plan, np.dtype(data.dtype))
    with ExitStack() as stack:
        buffer = None
        for block in data_blocks(data, elements):
            if plain and block.flags.f_contiguous:
                fileobj.write(_bytes(block))
                continue
            if buffer is None:
                nbytes = elements * plan.out_dtype.itemsize
                buffer = stack.enter_context(default_pool.borrow(nbytes)).view(plan.out_dtype)
            out = buffer[: block.size].reshape(block.shape, order="F")
            fileobj.write(_bytes(_cast_into(block, plan, out)))


def block_elements(data: Any) -> int:
    """Values per block when writing ``data``: at most what a pinned buffer holds for a CuPy array."""
    if device_seam.is_device_array(data):
        per_buffer = device_seam.default_pinned_pool().buffer_size // data.itemsize
        return max(1, min(WRITE_BLOCK_ELEMENTS, per_buffer))
    return WRITE_BLOCK_ELEMENTS


def data_blocks(data: Any, elements: int) -> Iterator[np.ndarray]:
    """Host arrays of the boxes of ``data`` that, written in Fortran order one after another, write it.

    A numpy array yields views of itself; a CuPy array yields Fortran-ordered copies of each box in a
    pinned buffer, each valid until the next is asked for. Boxes hold at most ``elements`` values.
    """
    if device_seam.is_device_array(data):
        yield from device_seam.host_blocks(data, fortran_blocks(data.shape, elements))
        return
    data = np.asanyarray(data)
    if data.ndim == 0:
        data = data.reshape(1)
    for box in fortran_blocks(data.shape, elements):
        yield data[box]


def blocked_data_range(data: Any) -> DataRange:
    """:func:`data_range` of a numpy or CuPy array; a CuPy array is read block by block to the host."""
    if not device_seam.is_device_array(data):
        return data_range(data)
    ranges = [data_range(block) for block in data_blocks(data, block_elements(data))]
    filled = [r for r in ranges if not r.empty]
    if not filled:
        return DataRange(np.inf, -np.inf, empty=True)
    return DataRange(
        min(r.low for r in filled),
        max(r.high for r in filled),
        has_nan=any(r.has_nan for r in filled),
    )


def plan_array_write(
    data: Any,
    out_dtype: np.dtype,
    *,
    has_slope: bool,
    has_inter: bool,
    scale: bool = True,
    name: str = "<image>",
) -> WritePlan:
    """:func:`plan_write` for ``data`` itself (numpy or CuPy), scanning its range only when needed.

    The range is :func:`blocked_data_range`, so a CuPy array is never copied whole to the host.
    """
    rng = blocked_data_range(data) if needs_range(data.dtype, out_dtype) else None
    return plan_write(
        data.dtype,
        out_dtype,
        rng,
        has_slope=has_slope,
        has_inter=has_inter,
        scale=scale,
        name=name,
    )


def _cast_into(block: np.ndarray, plan: CastPlan, out: np.ndarray) -> np.ndarray:
    """``block`` cast by ``plan`` into ``out``, a Fortran-ordered array of its shape."""
    if block.flags.f_contiguous:
        flat, target = block.reshape(-1, order="F"), out.reshape(-1, order="F")
        for start in range(0, flat.size, TILE_ELEMENTS):
            stop = start + TILE_ELEMENTS
            np.copyto(target[start:stop], cast_block(flat[start:stop], plan))
        return out

    def cast_tile(part: np.ndarray, staged: np.ndarray) -> None:
        np.copyto(staged, cast_block(part, plan))

    return convert_between_orders(block, out, cast_tile)


def _is_plain_copy(plan: CastPlan, dtype: np.dtype) -> bool:
    """True when ``plan`` writes ``dtype`` values as they are (no cast, no arithmetic)."""
    unset = [getattr(plan, field.name) for field in fields(plan) if field.name != "out_dtype"]
    return plan.out_dtype == dtype and all(value is None or value is False for value in unset)


def _bytes(array: np.ndarray) -> memoryview:
    """The bytes of a Fortran-contiguous array, without a copy."""
    return array.reshape(-1, order="F").view(np.uint8).data


def _as_float_array(value) -> np.ndarray:
    """``value`` as a one-element float array (integer factors become float64)."""
    array = np.atleast_1d(np.asarray(value))
    if array.dtype.kind in "iu":
        return array.astype(np.float64)
    return array.astype(_real_float(array.dtype))


def _real_float(dtype: np.dtype) -> type[np.floating]:
    """The float type of a float dtype, or of the parts of a complex dtype."""
    return np.finfo(dtype).dtype.type


class _Factors(TypedDict):
    """The factor fields of a :class:`CastPlan`: None where not applied."""

    inter: np.ndarray | None
    slope: np.ndarray | None


def _factor_fields(slope_a: np.ndarray, inter_a: np.ndarray) -> _Factors:
    return {
        "inter": inter_a if inter_a != 0 else None,
        "slope": slope_a if slope_a != 1 else None,
    }


def _type_ends(dtype: np.dtype, low: Any, high: Any) -> tuple[Any, Any]:
    """``(low, high)``, each defaulting to the end of ``dtype``'s range (±inf for floats)."""
    ends: tuple[float, float]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        ends = (info.min, info.max)
    else:
        ends = (-np.inf, np.inf)
    return (ends[0] if low is None else low, ends[1] if high is None else high)


def _working_type(in_dtype: np.dtype, slope_a: np.ndarray, inter_a: np.ndarray) -> np.dtype:
    """dtype of ``(x - inter) / slope``, counting only the factors that are applied."""
    dtypes = [in_dtype]
    if inter_a != 0:
        dtypes.append(inter_a.dtype)
    if slope_a != 1:
        dtypes.append(slope_a.dtype)
    return np.dtype(np.result_type(*dtypes).type)


def _finite_work_type(
    ends: np.ndarray, slope_a: np.ndarray, inter_a: np.ndarray, start: np.dtype
) -> np.dtype:
    """The first float type from ``start`` (or the data's wider float type) keeping ``ends`` finite."""
    if ends.dtype.kind == "f" and not (start.kind == "f" and ends.dtype.itemsize < start.itemsize):
        start = np.dtype(ends.dtype.type)
    elif start.kind != "f":
        start = np.dtype(np.float32)
    if not np.all(np.isfinite(ends)) or start not in FLOAT_LADDER:
        return start
    for ftype in FLOAT_LADDER[FLOAT_LADDER.index(start) :]:
        trial, slope_f, inter_f = ends, slope_a.astype(ftype), inter_a.astype(ftype)
        with np.errstate(over="ignore", invalid="ignore"):
            if inter_f != 0:
                trial = trial - inter_f
            if slope_f != 1:
                trial = trial / slope_f
        if np.all(np.isfinite(trial)):
            return ftype
    return FLOAT_LADDER[-1]


def _nudged_nan_fill(nan_fill, low, high, work, slope_a, inter_a, name):
    """The NaN fill clipped into ``[low, high]`` when only rounding put it out; else an error."""
    # The error of (0 - inter) / slope is about 2 eps |inter / slope|, rounded as the data are.
    error = np.round(2 * np.finfo(work).eps * abs(inter_a / slope_a))
    if (nan_fill < low and abs(nan_fill - low) < error) or (
        nan_fill > high and abs(nan_fill - high) < error
    ):
        return np.clip(nan_fill, low, high)
    raise WriterError(
        f"{name}: NaNs would be written as {nan_fill}, outside the range "
        f"[{int(low)}, {int(high)}] that the on-disk type holds"
    )
