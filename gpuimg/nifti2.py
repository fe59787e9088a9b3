"""``nibabel.nifti2``'s names: gpuimg's NIfTI-2 image and header classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.formats.nifti2 import Nifti2Image, Nifti2Pair
from gpuimg.headers.nifti2 import Nifti2Header, Nifti2PairHeader
from gpuimg.nifti1 import single_or_pair

load, save = single_or_pair(Nifti2Image, Nifti2Pair)

__all__ = ["Nifti2Header", "Nifti2Image", "Nifti2Pair", "Nifti2PairHeader", "load", "save"]
