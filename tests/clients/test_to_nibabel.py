"""``img.to_nibabel()``: nibabel's class, lazy, the same bytes; and what nilearn and TorchIO do with it."""

from __future__ import annotations

import numpy as np
import pytest
from client_files import ALL_FILES

import gpuimg

nib = pytest.importorskip("nibabel")


@pytest.mark.parametrize("name", ALL_FILES)
def test_to_nibabel_is_nibabel_s_image_holding_gpuimg_s_proxy(real_files, name):
    ours = gpuimg.load(real_files[name])
    converted = ours.to_nibabel()
    theirs = nib.load(real_files[name])
    assert type(converted) is type(theirs)
    assert converted.dataobj is ours.dataobj  # lazy: gpuimg's proxy reads the data
    assert nib.is_proxy(converted.dataobj)
    assert converted.header.binaryblock == theirs.header.binaryblock
    assert converted.header.extensions == theirs.header.extensions
    np.testing.assert_array_equal(converted.affine, theirs.affine)
    assert converted.get_filename() == theirs.get_filename()
    np.testing.assert_array_equal(converted.get_fdata(), theirs.get_fdata())
    assert not ours.in_memory


def test_to_nibabel_of_an_array_image_and_back(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    ours = gpuimg.Nifti2Pair(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    converted = ours.to_nibabel()
    assert isinstance(converted, nib.Nifti2Pair)
    assert converted.dataobj is data
    nib.save(converted, tmp_path / "pair.img")
    back = gpuimg.Nifti2Pair.from_image(nib.load(tmp_path / "pair.img"))
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data)
    np.testing.assert_array_equal(back.affine, ours.affine)


def test_nilearn_on_to_nibabel_gives_nibabel_s_results(real_files):
    image = pytest.importorskip("nilearn.image")
    masking = pytest.importorskip("nilearn.masking")
    path = real_files["example4d.nii.gz"]
    ours, theirs = gpuimg.load(path).to_nibabel(), nib.load(path)
    for compute in (image.mean_img, masking.compute_epi_mask, image.load_img):
        result, expected = compute(ours), compute(theirs)
        np.testing.assert_array_equal(result.get_fdata(), expected.get_fdata())
        np.testing.assert_array_equal(result.affine, expected.affine)
    assert masking.compute_epi_mask(ours).get_fdata().any()


def test_nilearn_refuses_gpuimg_s_own_class(real_files):
    image = pytest.importorskip("nilearn.image")
    with pytest.raises(TypeError):
        image.mean_img(gpuimg.load(real_files["example4d.nii.gz"]))


def test_torchio_transform_on_to_nibabel(real_files):
    tio = pytest.importorskip("torchio")
    path = real_files["scaled_int16.nii.gz"]
    transform = tio.ToCanonical()
    ours = transform(gpuimg.load(path).to_nibabel())
    theirs = transform(nib.load(path))
    assert type(ours) is type(theirs)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)


def test_to_nibabel_without_nibabel_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "nibabel", None)
    img = gpuimg.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(ImportError, match="pip install nibabel"):
        img.to_nibabel()
