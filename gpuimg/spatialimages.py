"""``nibabel.spatialimages``'s names: the spatial image base class, its slicer and errors."""

from __future__ import annotations

from gpuimg.errors import HeaderDataError, HeaderTypeError, ImageFileError
from gpuimg.headers.generic import SpatialHeader
from gpuimg.images.spatial import SpatialFirstSlicer, SpatialImage

__all__ = [
    "HeaderDataError",
    "HeaderTypeError",
    "ImageFileError",
    "SpatialFirstSlicer",
    "SpatialHeader",
    "SpatialImage",
]
