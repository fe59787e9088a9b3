"""NIfTI-1 orientation: the qform (quaternion, voxel sizes, ``qfac``, offsets) and the sform (``srow_*``).

A mixin for :class:`~gpuimg.headers.nifti1.Nifti1Header` (and so NIfTI-2) with nibabel's methods and
errors: ``get_qform`` / ``set_qform``, ``get_sform`` / ``set_sform``, ``get_qform_quaternion`` and
``get_best_affine`` (the sform when its code is set, else the qform, else the voxel sizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, overload

import numpy as np
from numpy.typing import ArrayLike

from gpuimg.errors import HeaderDataError
from gpuimg.headers.codes import XFORM_CODES
from gpuimg.headers.quaternions import fill_positive, mat_to_quat, quat_to_mat


class XformFields:
    """qform and sform methods over a NIfTI structured header (``qform_code``, ``quatern_*``, ``srow_*``)."""

    # |1 - |bcd|^2| below this is float32 rounding: the quaternion's w is 0.
    quaternion_threshold: ClassVar[float] = float(np.finfo(np.float32).eps * 3)

    if TYPE_CHECKING:  # provided by the header class this is mixed into
        _structarr: np.ndarray

        def get_base_affine(self) -> np.ndarray: ...

    def get_qform_quaternion(self) -> np.ndarray:
        """Return the qform quaternion ``(w, x, y, z)``, ``w`` filled in from the unit norm."""
        arr = self._structarr
        bcd = [arr["quatern_b"], arr["quatern_c"], arr["quatern_d"]]
        return fill_positive(bcd, self.quaternion_threshold)

    @overload
    def get_qform(self, coded: Literal[False] = False) -> np.ndarray: ...
    @overload
    def get_qform(self, coded: Literal[True]) -> tuple[np.ndarray | None, int]: ...
    @overload
    def get_qform(self, coded: bool) -> np.ndarray | tuple[np.ndarray | None, int]: ...
    def get_qform(self, coded: bool = False) -> np.ndarray | tuple[np.ndarray | None, int]:
        """Return the qform affine (with `coded`, ``(affine or None if code 0, code)``).

        Raises
        ------
        HeaderDataError
            If ``pixdim[1:4]`` has a negative value or ``qfac`` (``pixdim[0]``) is not ±1.
        """
        arr = self._structarr
        code = int(arr["qform_code"])
        if coded and code == 0:
            return None, 0
        rotation = quat_to_mat(self.get_qform_quaternion())
        zooms = arr["pixdim"][1:4].copy()
        if np.any(zooms < 0):
            raise HeaderDataError(f"header field 'pixdim[1:4]' is {zooms.tolist()}, expected >= 0")
        qfac = arr["pixdim"][0]
        if qfac not in (-1, 1):
            raise HeaderDataError(f"header field 'pixdim[0]' (qfac) is {qfac}, expected 1 or -1")
        zooms[-1] *= qfac
        affine = np.eye(4)
        affine[:3, :3] = rotation @ np.diag(zooms)
        affine[:3, 3] = [arr["qoffset_x"], arr["qoffset_y"], arr["qoffset_z"]]
        return (affine, code) if coded else affine

    def set_qform(
        self, affine: ArrayLike | None, code: int | str | None = None, strip_shears: bool = True
    ) -> None:
        """Store `affine` as a qform (rotation, voxel sizes, qfac, offsets) and set the code.

        Parameters
        ----------
        affine : (4, 4) array-like or None
            None sets only the code.
        code : int or str, optional
            Code or label (``'scanner'``, ``'aligned'``, ``'talairach'``, ``'mni'``,
            ``'template'``, ``'unknown'``). None keeps the current code, or uses 0
            when `affine` is None and ``'aligned'`` (2) when the current code is 0.
        strip_shears : bool, optional
            Store the nearest shear-free affine; with False, shears raise.

        Raises
        ------
        HeaderDataError
            If `affine` has shears and `strip_shears` is False, or cannot be decomposed.
        """
        affine = self._set_xform_code("qform_code", affine, code)
        if affine is None:
            return
        arr = self._structarr
        rzs = affine[:3, :3]
        zooms = np.sqrt(np.sum(rzs * rzs, axis=0))
        rotation = rzs / zooms
        qfac = 1 if np.linalg.det(rotation) > 0 else -1
        if qfac < 0:
            rotation[:, -1] *= -1
        # The polar decomposition gives the orthogonal matrix nearest to rotation,
        # which a quaternion can represent.
        try:
            left, _, right = np.linalg.svd(rotation)
        except np.linalg.LinAlgError as err:
            raise HeaderDataError(f"could not decompose affine:\n{affine}") from err
        orthogonal = left @ right
        if not strip_shears and not np.allclose(orthogonal, rotation):
            raise HeaderDataError("affine has shears and strip_shears is False")
        quat = mat_to_quat(orthogonal)
        arr["qoffset_x"], arr["qoffset_y"], arr["qoffset_z"] = affine[:3, 3]
        arr["pixdim"][0] = qfac
        arr["pixdim"][1:4] = zooms
        arr["quatern_b"], arr["quatern_c"], arr["quatern_d"] = quat[1:]

    @overload
    def get_sform(self, coded: Literal[False] = False) -> np.ndarray: ...
    @overload
    def get_sform(self, coded: Literal[True]) -> tuple[np.ndarray | None, int]: ...
    @overload
    def get_sform(self, coded: bool) -> np.ndarray | tuple[np.ndarray | None, int]: ...
    def get_sform(self, coded: bool = False) -> np.ndarray | tuple[np.ndarray | None, int]:
        """Return the sform affine (with `coded`, ``(affine or None if code 0, code)``)."""
        arr = self._structarr
        code = int(arr["sform_code"])
        if coded and code == 0:
            return None, 0
        affine = np.eye(4)
        affine[0], affine[1], affine[2] = arr["srow_x"], arr["srow_y"], arr["srow_z"]
        return (affine, code) if coded else affine

    def set_sform(self, affine: ArrayLike | None, code: int | str | None = None) -> None:
        """Store `affine` in ``srow_x/y/z`` and set the code (defaults as for :meth:`set_qform`)."""
        affine = self._set_xform_code("sform_code", affine, code)
        if affine is not None:
            arr = self._structarr
            arr["srow_x"], arr["srow_y"], arr["srow_z"] = affine[0], affine[1], affine[2]

    def _set_xform_code(
        self, field: str, affine: ArrayLike | None, code: int | str | None
    ) -> np.ndarray | None:
        """Set ``qform_code`` or ``sform_code`` by nibabel's defaults; return the checked affine."""
        if code is not None:
            new_code = XFORM_CODES.code(code)
        elif affine is None:
            new_code = 0
        else:
            new_code = int(self._structarr[field]) or XFORM_CODES.code("aligned")
        if affine is not None:
            affine = np.asarray(affine)
            if affine.shape != (4, 4):
                raise HeaderDataError(f"affine has shape {affine.shape}, expected (4, 4)")
        self._structarr[field] = new_code
        return affine

    def get_best_affine(self) -> np.ndarray:
        """Return the sform if its code is set, else the qform if its code is set, else the base affine."""
        if int(self._structarr["sform_code"]):
            return self.get_sform()
        if int(self._structarr["qform_code"]):
            return self.get_qform()
        return self.get_base_affine()
