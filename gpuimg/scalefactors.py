"""Choosing the scale factors of a write, by nibabel's array-writer rules.

A format stores no factor (Analyze), a slope (SPM), or a slope and an intercept (NIfTI). Data that the
on-disk type holds as they are (a cast numpy calls safe, a float or complex target, integers within range,
all zeros, no finite value) are written unscaled. Otherwise:

- float data are mapped onto the integer type's range — the finite range, widened to include 0 when NaNs
  will be written as 0;
- integer data are first shifted by an intercept alone where that suffices, then sign-flipped (an unsigned
  target and no positive value), then range-scaled;
- with a slope only, zero stays zero and the larger end reaches the type's limit; negative and positive
  data cannot both go to an unsigned type;
- with an intercept, an unsigned target gets the end nearer zero at 0: mostly-negative data get a negative
  slope.

Factors are computed in the most precise float type and stored as float32, as nibabel does, so the integers
written are the same as nibabel's. Factors that are not finite in float32 raise :class:`ScalingError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuimg.errors import ScalingError, WriterError
from gpuimg.floatlimits import BEST_FLOAT, floor_exact, shared_range

#: Scale factors are stored (and applied when writing) as float32.
FACTOR_DTYPE = np.dtype(np.float32)

#: Values looked at a time when finding the finite range of float data.
RANGE_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class DataRange:
    """The finite range of an array and whether it has NaNs.

    Attributes
    ----------
    low, high : numpy scalar
        Smallest and largest finite value, in the array's dtype; ``(inf, -inf)`` when there is none.
    has_nan : bool
        True when the array holds a NaN.
    empty : bool
        True for an array with no elements.
    """

    low: np.number[Any] | float
    high: np.number[Any] | float
    has_nan: bool = False
    empty: bool = False

    @property
    def has_finite(self) -> bool:
        """True when the array has at least one finite value."""
        return not (self.low == np.inf and self.high == -np.inf)


def data_range(data: np.ndarray) -> DataRange:
    """The finite range of integer or float ``data`` and whether it holds NaNs.

    Float data are looked at :data:`RANGE_BLOCK_ELEMENTS` values at a time, so the mask that drops
    non-finite values never spans the whole array.
    """
    data = np.asarray(data)
    if data.size == 0:
        return DataRange(np.inf, -np.inf, empty=True)
    if data.dtype.kind not in "fc":
        return DataRange(data.min(), data.max())
    flat = data.ravel(order="K")  # a view of any contiguous array
    lows, highs, has_nan = [], [], False
    for start in range(0, flat.size, RANGE_BLOCK_ELEMENTS):
        block = flat[start : start + RANGE_BLOCK_ELEMENTS]
        low, high = block.min(), block.max()
        if not (np.isfinite(low) and np.isfinite(high)):
            has_nan = has_nan or bool(np.isnan(low) or np.isnan(high))
            block = block[np.isfinite(block)]
            if block.size == 0:
                continue
            low, high = block.min(), block.max()
        lows.append(low)
        highs.append(high)
    if not lows:
        none = data.dtype.type
        return DataRange(none(np.inf), none(-np.inf), has_nan)
    return DataRange(min(lows), max(highs), has_nan)


def needs_range(in_dtype: np.dtype, out_dtype: np.dtype) -> bool:
    """True when choosing factors for ``in_dtype`` data written as ``out_dtype`` looks at the values."""
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    return (
        in_dtype.kind in "iufc" and out_dtype.kind in "iu" and not np.can_cast(in_dtype, out_dtype)
    )


def scaling_needed(
    in_dtype: np.dtype, out_dtype: np.dtype, rng: DataRange | None, *, name: str = "<image>"
) -> bool:
    """True when ``in_dtype`` data with range ``rng`` need scale factors to be written as ``out_dtype``.

    Raises
    ------
    WriterError
        For structured types that differ, or complex data written as a real type.
    """
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    if "V" in (in_dtype.kind, out_dtype.kind):
        if in_dtype == out_dtype:
            return False
        raise WriterError(f"{name}: cannot write {in_dtype} data as {out_dtype}")
    if np.can_cast(in_dtype, out_dtype) or out_dtype.kind == "c":
        return False
    if in_dtype.kind == "c":
        raise WriterError(f"{name}: cannot write complex data ({in_dtype}) as {out_dtype}")
    if out_dtype.kind == "f":
        return False
    assert rng is not None, "data needing a cast check come with their range (see needs_range)"
    if rng.empty or (rng.low, rng.high) == (0, 0):
        return False
    if in_dtype.kind == "f":
        return True
    info = np.iinfo(out_dtype)
    return not (int(rng.low) >= info.min and int(rng.high) <= info.max)


def choose_factors(
    in_dtype: np.dtype,
    out_dtype: np.dtype,
    rng: DataRange | None,
    *,
    has_slope: bool,
    has_inter: bool,
    name: str = "<image>",
) -> tuple[np.float32, np.float32]:
    """Scale factors ``(slope, inter)`` for writing data as ``out_dtype``; ``(1, 0)`` means unscaled.

    ``rng`` is the data's :func:`data_range` (None allowed when :func:`needs_range` is False). The stored
    values are ``rint((data - inter) / slope)``.

    Raises
    ------
    WriterError
        When the data need scaling the format cannot store, or cannot be cast at all.
    ScalingError
        When the factors the data need are not finite in float32 (a range near float64's limits).
    """
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    needed = scaling_needed(in_dtype, out_dtype, rng, name=name)
    if not needed:
        return np.float32(1), np.float32(0)
    assert rng is not None, "scaling_needed is True only with a range"
    if not has_slope:
        values = f"range [{rng.low}, {rng.high}]" if rng.has_finite else "no finite value"
        raise WriterError(
            f"{name}: {in_dtype} data ({values}) need scaling to be written as {out_dtype}, "
            "and the format stores no scale factor"
        )
    if not rng.has_finite:
        return np.float32(1), np.float32(0)
    rules = _Rules(in_dtype, out_dtype, has_inter, rng.has_nan, name)
    if in_dtype.kind == "f":
        # NaNs are written as 0, so 0 must be inside the scaled range.
        low, high = (min(rng.low, 0), max(rng.high, 0)) if rng.has_nan else (rng.low, rng.high)
        return rules.range_scale(low, high)
    return rules.int_to_int(int(rng.low), int(rng.high))


@dataclass(frozen=True)
class _Rules:
    in_dtype: np.dtype
    out_dtype: np.dtype
    has_inter: bool
    has_nan: bool
    name: str

    def int_to_int(self, low: int, high: int) -> tuple[np.float32, np.float32]:
        """Integers out of range: an intercept alone, else a sign flip, else range scaling."""
        o_min, o_max = (int(v) for v in shared_range(FACTOR_DTYPE, self.out_dtype))
        if self.has_inter and high - low <= o_max - o_min:
            if o_min == 0:  # unsigned: the minimum goes to 0
                inter = floor_exact(low, FACTOR_DTYPE)
            else:  # signed: the midpoint goes to 0
                inter = floor_exact(low + int(np.ceil((high - low) / 2.0)), FACTOR_DTYPE)
            # floor_exact may have pushed the maximum out of range.
            if high - int(inter) <= o_max:
                return np.float32(1), np.float32(inter)
        if o_min == 0 and high <= 0 and abs(low) <= o_max:
            return np.float32(-1), np.float32(0)
        return self.range_scale(low, high)

    def range_scale(self, low, high) -> tuple[np.float32, np.float32]:
        """Factors mapping ``[low, high]`` onto the output type's range."""
        if self.has_inter:
            return self._slope_inter(low, high)
        return self._slope_only(low, high), np.float32(0)

    def _slope_only(self, low, high) -> np.float32:
        info = np.iinfo(self.out_dtype)
        out_min, out_max = BEST_FLOAT.type(info.min), BEST_FLOAT.type(info.max)
        if info.min == 0:
            if low < 0 and high > 0:
                raise WriterError(
                    f"{self.name}: data range [{low}, {high}] has negative and positive values; "
                    f"{self.out_dtype} needs an intercept this format cannot store"
                )
            return _as_factor(low / out_max if high <= 0 else high / out_max)
        # Scaling to int: the larger of the two end slopes (an end on the wrong side of 0 gives < 0).
        return _as_factor(np.max([high / out_max, low / out_min]))

    def _slope_inter(self, low, high) -> tuple[np.float32, np.float32]:
        if low == high:
            return np.float32(1), _as_factor(low)
        if self.in_dtype.kind == "f":
            low, high = np.array([low, high], dtype=BEST_FLOAT)
            in_range = high - low
        else:  # the difference of two int64/uint64 values can exceed either type: take it exactly
            big = BEST_FLOAT.type
            in_range = big(int(high) - int(low))
            low, high = big(int(low)), big(int(high))
        out_min, out_max = np.array(shared_range(FACTOR_DTYPE, self.out_dtype), dtype=BEST_FLOAT)
        slope = in_range / (out_max - out_min)
        # An unsigned target puts the end nearer zero at 0, where the steps are finest.
        if out_min == 0 and np.abs(high) < np.abs(low):
            inter, slope = high + out_min * slope, -slope
        else:
            inter = low - out_min * slope
        slope, inter = _as_factor(slope), _as_factor(inter)
        if not (np.isfinite(slope) and np.isfinite(inter)):
            raise ScalingError(
                f"{self.name}: data range [{low}, {high}] needs scale factors that are not finite "
                f"in float32 (slope {slope}, intercept {inter}) to be written as {self.out_dtype}"
            )
        if 0 in (low, high) and self.has_nan:
            inter = self._nan_fill_in_range(slope, inter, out_min, out_max)
        return slope, inter

    def _nan_fill_in_range(self, slope, inter, out_min, out_max) -> np.float32:
        """An intercept with which NaNs, written as 0, land inside the output type's range."""
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = -inter / slope
        info = np.iinfo(self.out_dtype)
        if info.min <= np.rint(fill) <= info.max:
            return inter
        return _as_factor(-np.clip(fill, out_min, out_max) * slope)


def _as_factor(value) -> np.float32:
    """``value`` rounded once to float32, as the header stores it."""
    with np.errstate(over="ignore"):
        return np.float32(np.squeeze(value))
