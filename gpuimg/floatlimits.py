"""Which integers a float type holds exactly, and which float types to try when scaling.

Scaled writes compute their factors in the most precise float type and clip in the working float type; both
need the integer range a float type can represent without rounding past the integer type's limits.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _best_float() -> np.dtype:
    """``longdouble`` where it is more precise than float64 (x86 extended precision), else float64."""
    if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant:
        return np.dtype(np.longdouble)
    return np.dtype(np.float64)


#: The most precise float type; scale factors are computed in it.
BEST_FLOAT: np.dtype = _best_float()

#: Float types by increasing precision, up to :data:`BEST_FLOAT`.
FLOAT_LADDER: tuple[np.dtype, ...] = tuple(
    np.dtype(t) for t in (np.float16, np.float32, np.float64)
) + ((BEST_FLOAT,) if BEST_FLOAT != np.dtype(np.float64) else ())


def floor_exact(value: int, ftype: np.dtype) -> np.floating:
    """The largest integer ``<= value`` that ``ftype`` represents exactly (±inf past its range).

    >>> float(floor_exact(2**24 + 1, np.dtype(np.float32))) == 2**24
    True
    """
    value = int(value)
    scalar = np.dtype(ftype).type
    with np.errstate(over="ignore"):
        try:
            rounded = scalar(value)
        except OverflowError:
            return scalar(np.inf if value > 0 else -np.inf)
    if not np.isfinite(rounded) or int(rounded) <= value:
        return rounded
    # Rounding went up: step down by the spacing of floats at this magnitude.
    gap = 2 ** (abs(value).bit_length() - 1 - np.finfo(scalar).nmant)
    return rounded - scalar(gap)


def ceil_exact(value: int, ftype: np.dtype) -> np.floating:
    """The smallest integer ``>= value`` that ``ftype`` represents exactly."""
    return -floor_exact(-int(value), ftype)


@cache
def shared_range(ftype: np.dtype, itype: np.dtype) -> tuple[np.floating, np.floating]:
    """``(low, high)`` in ``ftype``: the widest float range whose values all cast into ``itype``.

    >>> [int(v) for v in shared_range(np.dtype(np.float32), np.dtype(np.int32))]
    [-2147483648, 2147483520]
    """
    info = np.iinfo(itype)
    finfo = np.finfo(ftype)
    low = ceil_exact(info.min, ftype)
    if low == -np.inf:
        low = finfo.min
    high = floor_exact(info.max, ftype)
    if high == np.inf:
        high = finfo.max
    return low, high
