"""nibabel's own test data files load in gpuimg with the same shape, dtype, affine and values."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpuimg

nib = pytest.importorskip("nibabel")
from nibabel.testing import data_path  # noqa: E402

FILES = [
    "anatomical.nii",
    "functional.nii",
    "example4d.nii.gz",
    "example_nifti2.nii.gz",
    "standard.nii.gz",
    "reoriented_anat_moved.nii",
    "resampled_anat_moved.nii",
    "row_major.dconn.nii",
]
FILES = [name for name in FILES if os.path.exists(os.path.join(data_path, name))]


@pytest.mark.parametrize("name", FILES)
def test_nibabel_test_file(name):
    path = os.path.join(data_path, name)
    theirs = nib.load(path)
    if isinstance(theirs, nib.Cifti2Image):
        # CIFTI is out of gpuimg's scope; the file underneath is a plain NIfTI-2 image.
        theirs = nib.Nifti2Image.from_filename(path)
    ours = gpuimg.load(path)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.shape == theirs.shape
    assert ours.get_data_dtype() == theirs.get_data_dtype()
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    assert ours.header.get_zooms() == theirs.header.get_zooms()
    ours_raw = np.asanyarray(ours.dataobj)
    theirs_raw = np.asanyarray(theirs.dataobj)
    assert ours_raw.dtype == theirs_raw.dtype
    np.testing.assert_array_equal(ours_raw, theirs_raw)
    np.testing.assert_array_equal(
        ours.get_fdata(dtype=np.float32), theirs.get_fdata(dtype=np.float32)
    )
