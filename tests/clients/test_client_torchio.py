"""TorchIO with gpuimg: the ``read_image`` reader against TorchIO's nibabel path, and gpuimg standing in
for nibabel when TorchIO saves and reorients."""

from __future__ import annotations

import numpy as np
import pytest
from client_files import ALL_FILES

import gpuimg

tio = pytest.importorskip("torchio")
from torchio.data import io as tio_io  # noqa: E402

from gpuimg.torchio import read_image  # noqa: E402


@pytest.mark.parametrize("name", ALL_FILES)
def test_read_image_matches_torchio_nibabel_reader(real_files, name):
    tensor, affine = read_image(real_files[name])
    theirs, their_affine = tio_io._read_nibabel(real_files[name])  # noqa: SLF001 - the oracle
    assert tensor.dtype == theirs.dtype
    assert tensor.shape == theirs.shape
    assert np.array_equal(tensor.numpy(), theirs.numpy(), equal_nan=True)
    np.testing.assert_array_equal(affine, their_affine)


def test_read_image_refuses_5d_with_several_time_points(tmp_path):
    path = tmp_path / "bad5d.nii"
    gpuimg.save(gpuimg.Nifti1Image(np.zeros((2, 2, 2, 2, 3), np.float32), np.eye(4)), path)
    with pytest.raises(ValueError, match="bad5d.nii: 5D image of shape"):
        read_image(path)


@pytest.mark.parametrize("kind", [tio.ScalarImage, tio.LabelMap])
def test_images_and_transforms_with_the_reader(real_files, kind):
    path = real_files["labels_uint8.nii.gz"]
    ours = kind(path, reader=read_image)
    theirs = kind(path, reader=tio_io._read_nibabel)  # noqa: SLF001 - the oracle
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    assert ours.orientation == theirs.orientation
    transform = tio.Compose([tio.ToCanonical(), tio.Resample(2)])
    np.testing.assert_array_equal(transform(ours).numpy(), transform(theirs).numpy())


def test_gpuimg_stands_in_for_nibabel_when_saving(real_files, tmp_path, monkeypatch):
    image = tio.ScalarImage(real_files["scaled_int16.nii.gz"], reader=read_image)
    theirs_path, ours_path = tmp_path / "theirs.nii", tmp_path / "ours.nii"
    tio_io._write_nibabel(image.data, image.affine, theirs_path)  # noqa: SLF001
    monkeypatch.setattr(tio_io, "nib", gpuimg)
    tio_io._write_nibabel(image.data, image.affine, ours_path)  # noqa: SLF001
    assert ours_path.read_bytes() == theirs_path.read_bytes()
    tensor, affine = tio_io._read_nibabel(ours_path)  # noqa: SLF001 - with gpuimg as nibabel
    np.testing.assert_array_equal(tensor.numpy(), image.numpy()[0])
    np.testing.assert_array_equal(affine, image.affine)


@pytest.mark.parametrize("orientation", ["LPS", "ASR", "RAS"])
def test_gpuimg_stands_in_for_nibabel_when_reorienting(real_files, monkeypatch, orientation):
    module = pytest.importorskip("torchio.transforms.preprocessing.spatial.to_orientation")
    image = tio.ScalarImage(real_files["big_endian_4d.nii"], reader=read_image)
    theirs = tio.ToOrientation(orientation)(image)
    monkeypatch.setattr(module, "nib", gpuimg)
    monkeypatch.setattr(module, "orientations", gpuimg.orientations)
    ours = tio.ToOrientation(orientation)(image)
    assert ours.orientation == theirs.orientation == tuple(orientation)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.affine, theirs.affine)
