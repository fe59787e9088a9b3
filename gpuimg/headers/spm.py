"""SPM's Analyze dialects: SPM99 (slope, origin) and SPM2 (slope and intercept).

SPM99 reads ``funused1`` as a scale factor and the ``originator`` bytes as five
int16 values, the first three the 1-based voxel at the world origin. SPM2 adds
an intercept in ``funused2`` and falls back to the ``glmax/glmin`` and
``cal_max/cal_min`` ranges when the slope is unusable.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from gpuimg.errors import HeaderDataError, HeaderTypeError
from gpuimg.headers import analyze, checks


def _renamed(fields: list[tuple], old: str, new: tuple) -> list[tuple]:
    return [new if field[0] == old else field for field in fields]


# fmt: off
spm99_image_dimension_dtd = _renamed(
    analyze.image_dimension_dtd, 'funused1', ('scl_slope', 'f4'))      # 112
spm99_data_history_dtd = _renamed(
    analyze.data_history_dtd, 'originator', ('origin', 'i2', (5,)))    # 253
spm2_image_dimension_dtd = _renamed(
    spm99_image_dimension_dtd, 'funused2', ('scl_inter', 'f4'))        # 116
# fmt: on
spm99_header_dtype = np.dtype(
    analyze.header_key_dtd + spm99_image_dimension_dtd + spm99_data_history_dtd
)
spm2_header_dtype = np.dtype(
    analyze.header_key_dtd + spm2_image_dimension_dtd + spm99_data_history_dtd
)


class SpmAnalyzeHeader(analyze.AnalyzeHeader):
    """SPM99 Analyze header: a scale factor in ``scl_slope`` and a voxel origin.

    Examples
    --------
    >>> hdr = SpmAnalyzeHeader()
    >>> hdr.set_data_shape((3, 5, 7))
    >>> hdr.set_zooms((3, 2, 1))
    >>> hdr['origin'][:3] = [3, 4, 5]
    >>> hdr.get_best_affine()[:3, 3].tolist()
    [6.0, -6.0, -4.0]
    """

    template_dtype = spm99_header_dtype
    has_data_slope = True
    check_battery = checks.SPM

    @classmethod
    def default_structarr(cls, endianness: str | None = None) -> np.ndarray:
        """Return the fields of an empty header, with slope 1."""
        arr = super().default_structarr(endianness)
        arr["scl_slope"] = 1
        return arr

    def get_slope_inter(self) -> tuple[float | np.ndarray | None, float | None]:
        """Return ``(slope, None)``, or ``(None, None)`` when the slope is 0 or not finite.

        As nibabel's, the slope is the header's 0-d ``scl_slope`` array (float32 in the header's
        byte order; a copy here), not a Python float, so ``slope * data`` keeps float32.
        """
        slope = self._structarr["scl_slope"].copy()
        if slope == 0 or not np.isfinite(slope):
            return None, None
        return slope, None

    def set_slope_inter(self, slope: float | None, inter: float | None = None) -> None:
        """Set the slope (None means NaN: "choose on write"); the intercept must be unset or 0.

        Raises
        ------
        HeaderDataError
            For a slope of 0 or ±inf.
        HeaderTypeError
            For a non-zero intercept: SPM99 headers cannot store one.
        """
        slope = np.nan if slope is None else slope
        if slope == 0 or np.isinf(slope):
            raise HeaderDataError(f"slope is {slope}, expected a finite non-zero value or NaN")
        # As nibabel does, the slope is stored even when the intercept is then refused.
        self._structarr["scl_slope"] = slope
        if not (inter is None or inter == 0 or np.isnan(inter)):
            raise HeaderTypeError(
                f"{type(self).__name__} cannot store intercept {inter}; expected None, NaN or 0"
            )

    def get_origin_affine(self) -> np.ndarray:
        """Return the affine from voxel sizes, translated to the ``origin`` voxel when it is plausible.

        The origin counts from 1 (MATLAB). It is used when set and within
        ``(-dims, 2 * dims)``; otherwise the image centre is the origin.
        """
        arr = self._structarr
        zooms = arr["pixdim"][1:4].copy()
        if self.default_x_flip:
            zooms[0] *= -1
        origin = arr["origin"][:3]
        dims = arr["dim"][1:4]
        if np.any(origin) and np.all(origin > -dims) and np.all(origin < dims * 2):
            # Keep nibabel's dtypes (int16 origin times float32 zooms) for equal results.
            origin = origin - np.int16(1)
        else:
            origin = (dims - 1) / 2.0
        affine = np.eye(4)
        affine[:3, :3] = np.diag(zooms)
        affine[:3, 3] = -origin * zooms
        return affine

    def get_best_affine(self) -> np.ndarray:
        """Return the origin affine (see :meth:`get_origin_affine`)."""
        return self.get_origin_affine()

    def set_origin_from_affine(self, affine: ArrayLike) -> None:
        """Set ``origin`` to the 1-based voxel that `affine` maps to the world origin."""
        affine = np.asarray(affine)
        if affine.shape != (4, 4):
            raise HeaderDataError(f"affine has shape {affine.shape}, expected (4, 4)")
        zooms = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
        self._structarr["origin"][:3] = -affine[:3, 3] / zooms + 1


Spm99AnalyzeHeader = SpmAnalyzeHeader


class Spm2AnalyzeHeader(SpmAnalyzeHeader):
    """SPM2 Analyze header: slope in ``scl_slope``, intercept in ``scl_inter``.

    Examples
    --------
    >>> hdr = Spm2AnalyzeHeader()
    >>> hdr['scl_slope'] = 0
    >>> hdr['glmax'], hdr['glmin'], hdr['cal_max'], hdr['cal_min'] = 110, 10, 0.8, 0.2
    >>> [round(v, 4) for v in hdr.get_slope_inter()]
    [0.006, 0.14]
    """

    template_dtype = spm2_header_dtype

    def get_slope_inter(self) -> tuple[float | None, float | None]:
        """Return slope and intercept by SPM2's ``spm_vol_ana.m`` rules.

        A finite non-zero ``scl_slope`` is used with ``scl_inter`` (0 when not
        finite). Otherwise, when both ``glmax - glmin`` and ``cal_max - cal_min``
        are non-zero, the slope maps the first range onto the second. Otherwise
        ``(None, None)``.
        """
        arr = self._structarr
        slope = float(arr["scl_slope"])
        if np.isfinite(slope) and slope:
            inter = float(arr["scl_inter"])
            return slope, inter if np.isfinite(inter) else 0.0
        unscaled_range = int(arr["glmax"]) - int(arr["glmin"])
        scaled_range = float(arr["cal_max"] - arr["cal_min"])
        if unscaled_range and scaled_range:
            slope = scaled_range / unscaled_range
            return slope, float(arr["cal_min"]) - slope * int(arr["glmin"])
        return None, None

    @classmethod
    def may_contain_header(cls, binaryblock: bytes) -> bool:
        """Like Analyze, but not when the block carries a NIfTI-1 magic."""
        return binaryblock[344:348] not in (b"ni1\x00", b"n+1\x00") and super().may_contain_header(
            binaryblock
        )
