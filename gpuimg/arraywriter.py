"""Writing arrays to image files: choosing scale factors and casting in blocks.

The rules follow nibabel's array writers: no scaling when the on-disk type holds the data as they are
(same type, a float or complex target, or integers within the target's range); otherwise a slope (and an
intercept where the format stores one) maps the finite data range onto the integer type, values are rounded
to nearest, clipped, and NaN becomes 0.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from gpuimg.errors import ImageFileError

#: Elements converted per block while writing.
WRITE_BLOCK_ELEMENTS = 1 << 18


def _finite_range(data: np.ndarray) -> tuple[float, float] | None:
    if data.size == 0:
        return None
    if data.dtype.kind in "iu":
        return int(data.min()), int(data.max())
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def choose_scaling(
    data: np.ndarray,
    out_dtype: np.dtype,
    *,
    has_slope: bool,
    has_inter: bool,
    name: str = "<image>",
) -> tuple[float, float]:
    """Scale factors ``(slope, inter)`` for writing ``data`` as ``out_dtype`` (``(1.0, 0.0)``: none).

    Raises
    ------
    ImageFileError
        When the data cannot be written as ``out_dtype`` (complex to real, structured mismatch, or values
        out of range in a format without scale factors).
    """
    out_dtype = np.dtype(out_dtype)
    if data.dtype.fields is not None or out_dtype.fields is not None:
        if data.dtype.newbyteorder("=") == out_dtype.newbyteorder("="):
            return 1.0, 0.0
        raise ImageFileError(f"{name}: cannot write {data.dtype} data as {out_dtype}")
    if data.dtype.kind == "c" and out_dtype.kind != "c":
        raise ImageFileError(f"{name}: cannot write complex data as {out_dtype}")
    if out_dtype.kind in "fc" or np.can_cast(data.dtype, out_dtype):
        return 1.0, 0.0
    data_range = _finite_range(data)
    if data_range is None:
        return 1.0, 0.0
    low, high = data_range
    info = np.iinfo(out_dtype)
    fits = info.min <= low and high <= info.max
    integral = data.dtype.kind in "iu" or bool(np.all(np.mod(data[np.isfinite(data)], 1) == 0))
    if fits and integral:
        return 1.0, 0.0
    if not has_slope:
        raise ImageFileError(
            f"{name}: data range [{low}, {high}] does not fit {out_dtype} "
            "and the format stores no scale factor"
        )
    if has_inter:
        # Map [low, high] onto the whole integer range.
        slope = (high - low) / (float(info.max) - float(info.min)) if high > low else 1.0
        return slope, low - float(info.min) * slope
    # Slope only: zero stays zero, the larger end reaches the type's limit.
    candidates = [high / float(info.max) if high > 0 else 0.0]
    if low < 0:
        if info.min == 0:
            raise ImageFileError(
                f"{name}: negative data cannot be written as {out_dtype} without an intercept"
            )
        candidates.append(low / float(info.min))
    return (max(candidates) or 1.0), 0.0


def write_array(
    fileobj: BinaryIO, data: np.ndarray, out_dtype: np.dtype, slope: float = 1.0, inter: float = 0.0
) -> None:
    """Write ``data`` in Fortran order as ``out_dtype``, storing ``(data - inter) / slope``."""
    out_dtype = np.dtype(out_dtype)
    flat = np.asarray(data).reshape(-1, order="F")
    to_int = out_dtype.kind in "iu" and flat.dtype.kind not in "iu"
    scaled = (slope, inter) != (1.0, 0.0)
    for start in range(0, flat.size, WRITE_BLOCK_ELEMENTS):
        block = flat[start : start + WRITE_BLOCK_ELEMENTS]
        if scaled:
            block = (block.astype(np.float64) - inter) / slope
        if to_int or (scaled and out_dtype.kind in "iu"):
            info = np.iinfo(out_dtype)
            block = np.clip(np.rint(np.nan_to_num(block, nan=0.0)), info.min, info.max)
        fileobj.write(np.ascontiguousarray(block, dtype=out_dtype).tobytes())
