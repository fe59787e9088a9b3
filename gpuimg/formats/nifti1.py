"""NIfTI-1 images: single files (.nii) and pairs (.hdr/.img, magic ``ni1``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from gpuimg.formats.analyze import AnalyzeImage
from gpuimg.formats.dtype_aliases import DYNAMIC_ALIASES, resolve_alias
from gpuimg.headers.nifti1 import Nifti1Header, Nifti1PairHeader
from gpuimg.images.filebased import SerializableImage

_DANGEROUS_DEFAULT_DTYPES = (np.dtype("int64"), np.dtype("uint64"))


class Nifti1Pair(AnalyzeImage):
    """NIfTI-1 image stored as a .hdr/.img pair."""

    header_class: ClassVar[type[Any]] = Nifti1PairHeader
    #: A dynamic dtype alias set and not yet resolved from the data (None: the header's dtype holds).
    _dtype_alias: str | None = None

    def __init__(self, dataobj, affine, header=None, extra=None, file_map=None, dtype=None) -> None:
        obj_dtype = getattr(dataobj, "dtype", None)
        if header is None and dtype is None and obj_dtype in _DANGEROUS_DEFAULT_DTYPES:
            # nibabel refuses to guess a 64-bit integer on-disk type: few tools read it.
            raise ValueError(
                f"image data has type {obj_dtype}, which may cause incompatibilities with other tools; "
                "pass dtype= (e.g. dtype=np.int32) or a header to choose the on-disk type"
            )
        super().__init__(dataobj, affine, header, extra, file_map, dtype)
        if header is None and affine is not None:
            self._affine2header()

    def update_header(self) -> None:
        """Harmonize the header with data and affine, and set the magic for this file layout."""
        super().update_header()
        self._header["magic"] = self._header.pair_magic

    def _affine2header(self) -> None:
        """Store the affine as the sform (code 'aligned') and the qform (code 'unknown')."""
        self._header.set_sform(self._affine, code="aligned")
        self._header.set_qform(self._affine, code="unknown")

    def as_reoriented(self, ornt):
        """Reorient as :meth:`SpatialImage.as_reoriented`, moving the header's ``dim_info`` axes too."""
        img = super().as_reoriented(ornt)
        if img is not self:
            img.header.set_dim_info(
                *(
                    None if axis is None else int(ornt[axis][0])
                    for axis in img.header.get_dim_info()
                )
            )
        return img

    def set_data_dtype(self, dtype) -> None:
        """Set the on-disk dtype; ``'mask'`` is nibabel's alias of uint8.

        ``'compat'`` and ``'smallest'`` choose the type from the data when the image is saved or
        ``get_data_dtype(finalize=True)`` is called (see :mod:`gpuimg.formats.dtype_aliases`); until
        then the header keeps its type and :meth:`get_data_dtype` returns the alias.
        """
        if isinstance(dtype, str) and dtype in DYNAMIC_ALIASES:
            self._dtype_alias = dtype
            return
        self._dtype_alias = None
        super().set_data_dtype("u1" if isinstance(dtype, str) and dtype == "mask" else dtype)

    def get_data_dtype(self, finalize: bool = False):
        """The on-disk dtype, or the dynamic alias set and not yet resolved.

        With ``finalize``, an alias is resolved from the data and set as the dtype (which clears it).

        Raises
        ------
        ValueError
            When ``finalize`` finds no type of the alias that holds the data.
        """
        if self._dtype_alias is None:
            return super().get_data_dtype()
        if not finalize:
            return self._dtype_alias
        self.set_data_dtype(resolve_alias(self._dtype_alias, self._dataobj))
        return super().get_data_dtype()

    def to_file_map(self, file_map=None, dtype=None, *, bgzf: bool | None = None) -> None:
        """Write the image as :meth:`AnalyzeImage.to_file_map`; a dynamic dtype alias is resolved for
        the write and set again after it."""
        alias_or_dtype = self.get_data_dtype()
        self.get_data_dtype(finalize=True)
        try:
            super().to_file_map(file_map, dtype, bgzf=bgzf)
        finally:
            self.set_data_dtype(alias_or_dtype)

    def get_qform(self, coded: bool = False):
        """The header's qform (see the header's ``get_qform``)."""
        return self._header.get_qform(coded)

    def set_qform(
        self, affine, code=None, strip_shears: bool = True, *, update_affine: bool = True
    ) -> None:
        """Set the header's qform; with ``update_affine``, the image affine becomes the best affine."""
        self._header.set_qform(affine, code, strip_shears)
        if update_affine:
            self._update_affine_from_header()

    def get_sform(self, coded: bool = False):
        """The header's sform (see the header's ``get_sform``)."""
        return self._header.get_sform(coded)

    def set_sform(self, affine, code=None, *, update_affine: bool = True) -> None:
        """Set the header's sform; with ``update_affine``, the image affine becomes the best affine."""
        self._header.set_sform(affine, code)
        if update_affine:
            self._update_affine_from_header()

    def _update_affine_from_header(self) -> None:
        # In place, as nibabel: ``img.affine`` arrays the caller holds see the new values.
        if self._affine is None:
            self._affine = self._header.get_best_affine()
        else:
            self._affine[:] = self._header.get_best_affine()


class Nifti1Image(Nifti1Pair, SerializableImage):
    """NIfTI-1 image in a single .nii file; also reads from and writes to bytes and streams."""

    header_class = Nifti1Header
    files_types = (("image", ".nii"),)
    valid_exts = (".nii",)

    @classmethod
    def _header_and_image(cls, file_map):
        holder = file_map["image"]
        return holder, holder

    def update_header(self) -> None:
        """Harmonize the header with data and affine; single-file magic and data offset."""
        super().update_header()
        self._header["magic"] = self._header.single_magic
