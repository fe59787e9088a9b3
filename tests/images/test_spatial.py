"""SpatialImage behaviour not covered by the nibabel oracle."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg


def test_slicing_an_image_without_affine_says_why():
    img = gpuimg.Nifti1Image(np.zeros((4, 4, 4), np.float32), None)
    with pytest.raises(ValueError, match="cannot slice an image with no affine"):
        img.slicer[:2]


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 5, 6, 2)])
def test_slicer_refuses_what_nibabels_refuses(shape):
    nib = pytest.importorskip("nibabel")
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    for ours, theirs in [
        (gpuimg.SpatialImage(data, np.eye(4)), nib.spatialimages.SpatialImage(data, np.eye(4))),
        (gpuimg.Nifti1Image(data, np.eye(4)), nib.Nifti1Image(data, np.eye(4))),
    ]:
        if len(shape) == 4 and type(ours) is gpuimg.SpatialImage:
            # Which axes are spatial is unknown for a generic image of four axes.
            with pytest.raises(ValueError, match="Cannot predict position of spatial axes"):
                _ = ours.slicer
            with pytest.raises(ValueError, match="Cannot predict position of spatial axes"):
                _ = theirs.slicer
            continue
        with pytest.raises(ValueError):  # a zero step
            ours.slicer[:, ::0]
        with pytest.raises(ValueError):
            theirs.slicer[:, ::0]
        with pytest.raises(ValueError):
            ours.slicer.slice_affine((slice(None), slice(None, None, 0)))
        for fancy in ([0], ([0], [-1])):
            with pytest.raises(IndexError):
                ours.slicer[fancy]
        sliced = ours.slicer[1:3, ..., None]
        np.testing.assert_array_equal(sliced.get_fdata(), theirs.slicer[1:3, ..., None].get_fdata())
