"""SpatialImage behaviour not covered by the nibabel oracle."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg


def test_slicing_an_image_without_affine_says_why():
    img = gpuimg.Nifti1Image(np.zeros((4, 4, 4), np.float32), None)
    with pytest.raises(ValueError, match="cannot slice an image with no affine"):
        img.slicer[:2]
