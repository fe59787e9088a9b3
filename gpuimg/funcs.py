"""Image-level helpers with nibabel's API (``nibabel.funcs``): canonical orientation, split, join, squeeze.

Each returns images of the input's class. Like nibabel's, they read the data only when they must:
``as_closest_canonical`` of an image already in RAS+ order and ``squeeze_image`` of an image with
nothing to squeeze return images that still hold the proxy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from gpuimg.images.spatial import SpatialImage
from gpuimg.loadsave import load
from gpuimg.orientations import OrientationError, io_orientation


def as_closest_canonical(img: SpatialImage, enforce_diag: bool = False) -> SpatialImage:
    """``img`` with its array axes flipped and reordered to lie closest to RAS+ (``'R', 'A', 'S'``).

    Parameters
    ----------
    img : SpatialImage
    enforce_diag : bool, optional
        Raise :class:`~gpuimg.orientations.OrientationError` if the reoriented affine is not diagonal.

    Returns
    -------
    SpatialImage
        ``img`` itself when it already is closest to RAS+, else a new image (data read and reoriented).
    """
    canonical = img.as_reoriented(io_orientation(img.affine))
    if enforce_diag:
        rzs = canonical.affine[:3, :3]
        if not np.allclose(rzs, np.diag(np.diag(rzs))):
            raise OrientationError(f"Transformed affine is not diagonal:\n{canonical.affine}")
    return canonical


def squeeze_image(img: SpatialImage) -> SpatialImage:
    """``img`` without the trailing length-1 axes past the third (a 3D image is returned as it is).

    Returns a new image of the same class; it shares the proxy when there is nothing to squeeze.
    """
    shape = img.shape
    kept = len(shape)
    while kept > 3 and shape[kept - 1] == 1:
        kept -= 1
    if kept == len(shape):
        return type(img).from_image(img)
    data = np.asanyarray(img.dataobj).reshape(shape[:kept])
    return type(img)(data, img.affine, img.header, img.extra)


def four_to_three(img: SpatialImage) -> list[SpatialImage]:
    """Split a 4D image into a list of 3D images (views of one read), sharing its affine and header.

    Raises
    ------
    ValueError
        If ``img`` is not 4D.
    """
    if img.ndim != 4:
        raise ValueError(f"Expecting four dimensions, found shape {img.shape}")
    data = np.asanyarray(img.dataobj)
    return [type(img)(data[..., i], img.affine, img.header) for i in range(data.shape[3])]


def concat_images(
    images: Iterable[SpatialImage | str | os.PathLike],
    check_affines: bool = True,
    axis: int | None = None,
) -> SpatialImage:
    """Join images (or filenames, loaded) into one image of the first one's class.

    Parameters
    ----------
    images : iterable of images or filenames
    check_affines : bool, optional
        Raise ValueError unless every affine equals the first image's.
    axis : int or None, optional
        Join along this existing axis; None stacks on a new last axis (as float64, like nibabel).

    Raises
    ------
    ValueError
        For an empty list, mismatched dimensions or shapes, or (with ``check_affines``) affines.
    """
    loaded: list[SpatialImage] = [
        load(img) if isinstance(img, (str, os.PathLike)) else img for img in images
    ]
    if not loaded:
        raise ValueError("Cannot concatenate an empty list of images.")
    first = loaded[0]
    ndim = len(first.shape)
    compared = np.ones(ndim, dtype=bool)
    if axis is not None:
        compared[axis] = False
    arrays = []
    for index, img in enumerate(loaded):
        if len(img.shape) != ndim:
            raise ValueError(f"Image {index} has {len(img.shape)} dimensions, image 0 has {ndim}")
        if not np.array_equal(np.array(img.shape)[compared], np.array(first.shape)[compared]):
            raise ValueError(
                f"shape {img.shape} for image {index} not compatible with "
                f"first image shape {first.shape} with axis == {axis}"
            )
        if check_affines and not np.all(img.affine == first.affine):
            raise ValueError(f"Affine for image {index} does not match affine for first image")
        arrays.append(np.asanyarray(img.dataobj))
    if axis is None:
        data = np.empty(first.shape + (len(arrays),))
        for index, array in enumerate(arrays):
            data[..., index] = array
    else:
        data = np.concatenate(arrays, axis=axis)
    return type(first)(data, first.affine, first.header)
