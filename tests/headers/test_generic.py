"""The format-free headers of the base image classes, against nibabel's SpatialHeader."""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.errors import HeaderDataError
from gpuimg.filebasedimages import FileBasedHeader
from gpuimg.spatialimages import SpatialHeader


def test_spatial_header_matches_nibabel():
    ours = SpatialHeader(np.int16, (2, 3, 4), (1.0, 2.0, 3.0))
    theirs = nib.spatialimages.SpatialHeader(np.int16, (2, 3, 4), (1.0, 2.0, 3.0))
    np.testing.assert_array_equal(ours.get_best_affine(), theirs.get_best_affine())
    for hdr in (ours, theirs):
        hdr.set_data_shape((5, 6))
    assert ours.get_zooms() == theirs.get_zooms() == (1.0, 2.0)
    data = np.arange(30, dtype=np.float64).reshape(5, 6)
    streams = [io.BytesIO(), io.BytesIO()]
    ours.data_to_fileobj(data, streams[0])
    theirs.data_to_fileobj(data, streams[1])
    assert streams[0].getvalue() == streams[1].getvalue()
    streams[0].seek(0)
    np.testing.assert_array_equal(ours.data_from_fileobj(streams[0]), data.astype(np.int16))


def test_spatial_header_conversions_and_checks():
    hdr = SpatialHeader.from_header(gpuimg.Nifti1Header())
    assert hdr == SpatialHeader(np.float32, (0,), (1.0,))
    assert SpatialHeader.from_header(hdr) is not hdr
    with pytest.raises(HeaderDataError, match="expected 2"):
        SpatialHeader(shape=(2, 3)).set_zooms((1.0,))
    with pytest.raises(NotImplementedError, match="cannot be made from"):
        FileBasedHeader.from_header(hdr)


def test_base_image_classes_can_be_built():
    img = gpuimg.SpatialImage(np.zeros((2, 3, 4), np.int16), np.diag([2, 3, 4, 1]))
    assert type(img.header) is SpatialHeader
    assert img.header.get_zooms() == (2.0, 3.0, 4.0)
    assert img.get_data_dtype() == np.int16
    assert type(gpuimg.FileBasedImage().header) is FileBasedHeader


def test_base_image_classes_claim_no_files(tmp_path):
    path = tmp_path / "x.img"
    path.write_bytes(b"\0" * 400)
    assert gpuimg.SpatialImage.valid_exts == ()
    assert gpuimg.SpatialImage.path_maybe_image(path) == (False, None)
