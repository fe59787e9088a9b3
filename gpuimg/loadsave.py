"""Find the image class for a file, load it, save it."""

from __future__ import annotations

import os
from contextlib import ExitStack

from gpuimg.arrayproxy import normalize_keep_file_open, normalize_mmap
from gpuimg.errors import ImageFileError
from gpuimg.formats.analyze import AnalyzeImage, Spm2AnalyzeImage
from gpuimg.formats.nifti1 import Nifti1Image, Nifti1Pair
from gpuimg.formats.nifti2 import Nifti2Image, Nifti2Pair
from gpuimg.io.containers import compressed_suffix, signature_mismatch
from gpuimg.io.handles import FileHandle, OpenedFile

#: Tried in this order, as nibabel does: the first class whose sniff accepts the file wins.
IMAGE_CLASSES = (Nifti1Pair, Nifti1Image, Nifti2Pair, Nifti2Image, Spm2AnalyzeImage)


def image_class_for(filename: str | os.PathLike) -> type[AnalyzeImage]:
    """The image class that can read ``filename`` (by extension, then header magic and size).

    Raises
    ------
    ImageFileError
        When no class recognises the file (nibabel's messages: the file is not of the format its
        compression suffix says, or ``Cannot work out file type of "name"``).
    FileNotFoundError, PermissionError
        When the file (or the header file of a pair) is missing or cannot be read.
    """
    with ExitStack() as stack:
        return _sniffed(os.fspath(filename), stack, keep_file_open=False)[0]


def _sniffed(
    name: str, stack: ExitStack, *, keep_file_open
) -> tuple[type[AnalyzeImage], OpenedFile]:
    """The image class of file ``name`` and its header file, opened once (closed with ``stack``).

    The header file of a single-file image is the data file, so its handle keeps the file as
    ``keep_file_open`` says and goes on to the proxy; a pair's ``.hdr`` is closed after the load.
    """
    try:
        size = os.stat(name).st_size
    except FileNotFoundError:
        raise FileNotFoundError(f"No such file or no access: '{name}'") from None
    if size == 0:
        raise ImageFileError(f"Empty file: '{name}'")  # nibabel's wording
    opened: dict[str, OpenedFile | None] = {}
    for image_class in IMAGE_CLASSES:
        meta = image_class.header_file_for(name)
        if meta is None:
            continue
        if meta not in opened:
            keep = keep_file_open if len(image_class.files_types) == 1 else False
            opened[meta] = _open_header_file(meta, stack, keep_file_open=keep)
        header_file = opened[meta]
        if header_file is not None and image_class.head_may_be_image(header_file.head):
            return image_class, header_file
    mismatch = signature_mismatch(name)  # 'File img.nii.bz2 is not a bzip2 file', as nibabel says
    if mismatch:
        raise ImageFileError(mismatch)
    raise ImageFileError(
        f'Cannot work out file type of "{name}" (expected NIfTI-1, NIfTI-2 or Analyze: .nii, '
        ".hdr/.img, optionally .gz, .bz2 or .zst compressed, with a valid header)"
    )


def _open_header_file(meta: str, stack: ExitStack, *, keep_file_open) -> OpenedFile | None:
    """``meta`` open until ``stack`` closes, its first bytes read; None when it cannot be read."""
    try:
        return stack.enter_context(OpenedFile.open(FileHandle(meta, keep_file_open=keep_file_open)))
    except PermissionError:
        raise  # an unreadable file is not one of unknown type
    except (OSError, EOFError):
        return None


def load(filename: str | os.PathLike, *, mmap=True, keep_file_open=None):
    """Load an image from ``filename``; only the header is read, the data stay on disk behind a proxy.

    The file is opened once: its first bytes choose the image class and hold the header, and (for a
    single file) the same open file serves the data's reads, kept as ``keep_file_open`` says (None:
    kept while few, see ``gpuimg.config.settings.open_files``).

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
    normalize_mmap(mmap)
    keep_file_open = normalize_keep_file_open(keep_file_open)
    name = os.fspath(filename)
    with ExitStack() as stack:
        image_class, header_file = _sniffed(name, stack, keep_file_open=keep_file_open)
        return image_class.from_header_file(
            image_class.filespec_to_file_map(name),
            header_file,
            mmap=mmap,
            keep_file_open=keep_file_open,
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
    lower = name.lower().removesuffix(compressed_suffix(name))
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
