"""Find the image class for a file, load it, save it."""

from __future__ import annotations

import os

from gpuimg.errors import ImageFileError
from gpuimg.formats.analyze import AnalyzeImage, Spm2AnalyzeImage
from gpuimg.formats.nifti1 import Nifti1Image, Nifti1Pair
from gpuimg.formats.nifti2 import Nifti2Image, Nifti2Pair

#: Tried in this order, as nibabel does: the first class whose sniff accepts the file wins.
IMAGE_CLASSES = (Nifti1Pair, Nifti1Image, Nifti2Pair, Nifti2Image, Spm2AnalyzeImage)


def image_class_for(filename: str | os.PathLike):
    """The image class that can read ``filename`` (by extension, then header magic and size).

    Raises
    ------
    ImageFileError
        When no class recognises the file.
    FileNotFoundError, PermissionError
        When the file (or the header file of a pair) is missing or cannot be read.
    """
    name = os.fspath(filename)
    try:
        size = os.stat(name).st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file or no access: '{name}'") from None
    if size == 0:
        raise ImageFileError(f"Empty file: '{name}'")  # nibabel's wording
    sniff = None
    for image_class in IMAGE_CLASSES:
        maybe, sniff = image_class.path_maybe_image(name, sniff)
        if maybe:
            return image_class
    raise ImageFileError(
        f"{name}: cannot work out file type (expected NIfTI-1, NIfTI-2 or Analyze: "
        ".nii, .nii.gz, .hdr/.img, .hdr.gz/.img.gz with a valid header)"
    )


def load(filename: str | os.PathLike, *, mmap=True, keep_file_open=None):
    """Load an image from ``filename``; only the header is read, the data stay on disk behind a proxy.

    Parameters
    ----------
    filename : str or os.PathLike
    mmap : {True, False, 'c', 'r'}, optional, keyword only
    keep_file_open : {None, True, False}, optional, keyword only

    Returns
    -------
    image
        A :class:`~gpuimg.Nifti1Image`, :class:`~gpuimg.Nifti2Image`, pair or Analyze image.
    """
    return image_class_for(filename).from_filename(
        filename, mmap=mmap, keep_file_open=keep_file_open
    )


_SAVE_CLASSES: dict[str, dict[int, type[Nifti1Pair]]] = {
    ".nii": {1: Nifti1Image, 2: Nifti2Image},
    ".hdr": {1: Nifti1Pair, 2: Nifti2Pair},
    ".img": {1: Nifti1Pair, 2: Nifti2Pair},
}


def save(img, filename: str | os.PathLike, **kwargs) -> None:
    """Save ``img`` to ``filename``, converting between single-file and pair NIfTI by extension.

    The write is atomic: files are written under temporary names and renamed into place.
    """
    name = os.fspath(filename)
    lower = name.lower().removesuffix(".gz")
    ext = os.path.splitext(lower)[1]
    if ext not in _SAVE_CLASSES:
        raise ImageFileError(
            f"{name}: cannot save to extension {ext!r}, expected .nii, .hdr or .img"
        )
    if isinstance(img, AnalyzeImage) and not isinstance(img, Nifti1Pair) and ext != ".nii":
        # Analyze and its SPM variants keep their class in a .hdr/.img pair, as nibabel keeps them.
        img.to_filename(name, **kwargs)
        return
    version = 2 if isinstance(img, (Nifti2Image, Nifti2Pair)) else 1
    target = _SAVE_CLASSES[ext][version]
    converted = img if type(img) is target else target.from_image(img)
    converted.to_filename(name, **kwargs)
