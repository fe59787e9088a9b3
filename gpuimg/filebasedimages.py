"""``nibabel.filebasedimages``'s names: the file-based image base class and ``ImageFileError``.

``except gpuimg.filebasedimages.ImageFileError`` catches what gpuimg raises for a file it cannot read
as an image (gpuimg's class: it also is an ``OSError``, and is not nibabel's class).
"""

from __future__ import annotations

from gpuimg.errors import ImageFileError
from gpuimg.headers.generic import FileBasedHeader
from gpuimg.images.filebased import FileBasedImage, SerializableImage

__all__ = ["FileBasedHeader", "FileBasedImage", "ImageFileError", "SerializableImage"]
