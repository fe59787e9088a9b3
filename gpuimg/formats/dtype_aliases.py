"""NIfTI's dynamic on-disk dtype aliases: ``'compat'`` and ``'smallest'``, chosen from the data.

``img.set_data_dtype('compat')`` (or ``'smallest'``) defers the choice of on-disk type until the
image is saved or ``img.get_data_dtype(finalize=True)`` is called; then :func:`resolve_alias` picks it
from the data, with nibabel's rules:

* ``'compat'``: the nearest Analyze-compatible type. uint8, int16, int32 and float32 data keep their
  type; int8 becomes uint8 (no negative value) or int16, uint16 becomes int16 (up to 32767) or int32,
  other integers int32 and other floats float32 when their range fits.
* ``'smallest'``: the smallest of uint8, int16, int32 that holds integer data; floats have none.

Anything else raises ``ValueError`` saying to set an explicit type.

>>> resolve_alias("compat", np.array([-1, 70000]))
dtype('int32')
>>> resolve_alias("smallest", np.array([0, 255]))
dtype('uint8')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpuimg import device as device_seam
from gpuimg.arraywriter import block_elements, data_blocks

__all__ = ["DYNAMIC_ALIASES", "resolve_alias"]

#: The aliases resolved from the data at save time.
DYNAMIC_ALIASES = ("compat", "smallest")

_ANALYZE_TYPES = tuple(np.dtype(t) for t in ("uint8", "int16", "int32", "float32"))
_SMALLEST_INTEGERS = tuple(np.dtype(t) for t in ("uint8", "int16", "int32"))


def _extremes(values: Any) -> tuple[Any, Any]:
    """``(values.min(), values.max())``: NaN when there is one, infinities kept, as nibabel compares.

    A CuPy array is looked at block by block on the host.
    """
    if not device_seam.is_device_array(values):
        return values.min(), values.max()
    extremes = [(block.min(), block.max()) for block in data_blocks(values, block_elements(values))]
    return np.min([low for low, _ in extremes]), np.max([high for _, high in extremes])


def _compat(values: Any) -> np.dtype | None:
    dtype = values.dtype
    if dtype in _ANALYZE_TYPES:
        return dtype
    low, high = _extremes(values)
    if dtype == np.int8:
        return np.dtype("uint8" if low >= 0 else "int16")
    if dtype == np.uint16:
        return np.dtype("int16" if high <= np.iinfo(np.int16).max else "int32")
    if dtype.kind in "iu":
        target: np.dtype = np.dtype("int32")
        bounds: tuple[Any, Any] = (np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    elif dtype.kind == "f":
        target = np.dtype("float32")
        bounds = (np.finfo(np.float32).min, np.finfo(np.float32).max)
    else:
        return None
    return target if bounds[0] <= low and high <= bounds[1] else None


def _smallest(values: Any) -> np.dtype | None:
    if values.dtype.kind not in "iu":
        return None  # floats and complex are not coerced to integers
    low, high = _extremes(values)
    info = np.iinfo
    return next((t for t in _SMALLEST_INTEGERS if info(t).min <= low and high <= info(t).max), None)


_RULES = {
    "compat": (_compat, "an Analyze-compatible dtype"),
    "smallest": (_smallest, "an integer type with fewer than 64 bits"),
}


def resolve_alias(alias: str, data: Any) -> np.dtype:
    """The on-disk dtype the dynamic ``alias`` means for ``data`` (numpy, a proxy or CuPy).

    Raises
    ------
    ValueError
        When no type of the alias holds the data (nibabel's message), or ``alias`` is unknown.
    """
    if alias not in _RULES:
        raise ValueError(f"unknown dtype alias {alias!r}, expected one of {DYNAMIC_ALIASES}")
    rule, description = _RULES[alias]
    # A proxy's values are read (its scaled dtype is what counts), as nibabel reads them.
    values = data if device_seam.is_device_array(data) else np.asanyarray(data)
    dtype = rule(values)
    if dtype is None:
        raise ValueError(
            f"Cannot automatically cast array (of type {values.dtype}) to {description}. "
            "Please set_data_dtype() to an explicit data type."
        )
    return dtype
