"""``nibabel.nifti1``'s names for code written against nibabel: ``gpuimg.nifti1.Nifti1Image`` and friends.

The classes are gpuimg's own (see :mod:`gpuimg.formats.nifti1` and :mod:`gpuimg.headers.nifti1`); this
module only gathers them, with the code tables and ``load``/``save``, under nibabel's module path.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gpuimg.errors import ImageFileError
from gpuimg.formats.nifti1 import Nifti1Image, Nifti1Pair
from gpuimg.headers import codes as _codes
from gpuimg.headers.extensions import NiftiExtension
from gpuimg.headers.extensions import NiftiExtension as Nifti1Extension
from gpuimg.headers.extensions import NiftiExtensions as Nifti1Extensions
from gpuimg.headers.nifti1 import Nifti1Header, Nifti1PairHeader
from gpuimg.images.filebased import FileBasedImage

#: nibabel's code tables: ``intent_codes['t test'] == 3``, ``xform_codes['scanner'] == 1``...
extension_codes = _codes.EXTENSION_CODES
intent_codes = _codes.INTENT_CODES
slice_order_codes = _codes.SLICE_ORDER_CODES
unit_codes = _codes.UNIT_CODES
xform_codes = _codes.XFORM_CODES


def single_or_pair(
    single: type[FileBasedImage], pair: type[FileBasedImage]
) -> tuple[Callable[..., FileBasedImage], Callable[..., None]]:
    """nibabel's module-level ``load`` and ``save`` of one NIfTI version: a single file, else a pair."""

    def load(filename: str | os.PathLike):
        """Load a single-file image from ``filename``, else a pair."""
        try:
            return single.from_filename(filename)
        except ImageFileError:
            return pair.from_filename(filename)

    def save(img, filename: str | os.PathLike) -> None:
        """Save ``img`` to ``filename``: a single file for .nii, else a pair."""
        try:
            single.instance_to_filename(img, filename)
        except ImageFileError:
            pair.instance_to_filename(img, filename)

    return load, save


load, save = single_or_pair(Nifti1Image, Nifti1Pair)


__all__ = [
    "Nifti1Extension",
    "Nifti1Extensions",
    "Nifti1Header",
    "Nifti1Image",
    "Nifti1Pair",
    "Nifti1PairHeader",
    "NiftiExtension",
    "extension_codes",
    "intent_codes",
    "load",
    "save",
    "slice_order_codes",
    "unit_codes",
    "xform_codes",
]
