"""NIfTI-2 images: the NIfTI-1 image model over the 540-byte header."""

from __future__ import annotations

from gpuimg.formats.nifti1 import Nifti1Image, Nifti1Pair
from gpuimg.headers.nifti2 import Nifti2Header, Nifti2PairHeader


class Nifti2Pair(Nifti1Pair):
    """NIfTI-2 image stored as a .hdr/.img pair."""

    header_class = Nifti2PairHeader


class Nifti2Image(Nifti1Image):
    """NIfTI-2 image in a single .nii file."""

    header_class = Nifti2Header
