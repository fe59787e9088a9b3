"""gpuimg save -> nibabel load, nibabel save -> gpuimg load, and gpuimg -> gpuimg: values and affines equal."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg
from tests.oracle import FORMATS, oblique_affine, random_data, write_with_nibabel

nib = pytest.importorskip("nibabel")

GPUIMG_CLASSES = {
    "analyze": gpuimg.Spm2AnalyzeImage,
    "nifti1": gpuimg.Nifti1Image,
    "nifti1-pair": gpuimg.Nifti1Pair,
    "nifti2": gpuimg.Nifti2Image,
    "nifti2-pair": gpuimg.Nifti2Pair,
}
DTYPES = ["u1", "i2", "i4", "f4", "f8", "c8"]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_gpuimg_save_nibabel_load(tmp_path, fmt, dtype, gz):
    data = random_data(np.dtype(dtype), (3, 4, 5), seed=11)
    affine = oblique_affine(3) if fmt.has_affine else np.diag([-2.0, 3.0, 1.5, 1.0])
    path = tmp_path / f"out{fmt.ext}{'.gz' if gz else ''}"
    ours = GPUIMG_CLASSES[fmt.name](data, affine)
    ours.to_filename(path)
    theirs = nib.load(path)
    assert type(theirs).__name__ == type(ours).__name__
    assert theirs.get_data_dtype() == np.dtype(dtype)
    np.testing.assert_array_equal(np.asanyarray(theirs.dataobj), data)
    np.testing.assert_allclose(theirs.affine, ours.affine, rtol=0, atol=1e-5)
    reloaded = gpuimg.load(path)
    np.testing.assert_array_equal(reloaded.affine, theirs.affine)
    np.testing.assert_array_equal(np.asanyarray(reloaded.dataobj), data)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_nibabel_save_gpuimg_load_and_resave(tmp_path, fmt, big_endian):
    path, data = write_with_nibabel(
        tmp_path, fmt, np.dtype("i2"), (4, 3, 2, 2), big_endian=big_endian, scaled=True, gz=True
    )
    ours = gpuimg.load(path)
    theirs = nib.load(path)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    resaved = tmp_path / f"again{fmt.ext}"
    gpuimg.save(ours, resaved)
    again = nib.load(resaved)
    # A proxy image keeping its on-disk type is re-written losslessly: raw values and scale factors.
    np.testing.assert_array_equal(again.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(np.asanyarray(again.dataobj), np.asanyarray(theirs.dataobj))
    np.testing.assert_array_equal(again.affine, theirs.affine)


def test_float_data_saved_as_int16_is_scaled_and_read_back_close(tmp_path):
    data = np.linspace(-1000.5, 3000.25, 60).reshape(3, 4, 5)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.set_data_dtype(np.int16)
    path = tmp_path / "scaled.nii"
    img.to_filename(path)
    theirs = nib.load(path)
    slope, inter = theirs.dataobj.slope, theirs.dataobj.inter
    assert slope != 1.0
    np.testing.assert_allclose(theirs.get_fdata(), data, atol=slope)
    np.testing.assert_array_equal(gpuimg.load(path).get_fdata(), theirs.get_fdata())
    assert np.isfinite(inter)


def test_save_converts_single_file_to_pair(tmp_path):
    img = gpuimg.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), oblique_affine(1))
    gpuimg.save(img, tmp_path / "pair.img")
    assert (tmp_path / "pair.hdr").exists()
    loaded = gpuimg.load(tmp_path / "pair.hdr")
    assert isinstance(loaded, gpuimg.Nifti1Pair)
    np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), np.asanyarray(img.dataobj))


def test_save_over_the_file_being_read(tmp_path):
    path = tmp_path / "same.nii"
    gpuimg.Nifti1Image(np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.eye(4)).to_filename(path)
    img = gpuimg.load(path)
    img.to_filename(path)
    np.testing.assert_array_equal(gpuimg.load(path).get_fdata(), np.arange(8).reshape(2, 2, 2))


def test_extensions_survive_a_round_trip(tmp_path):
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment for the ages"))
    path = tmp_path / "ext.nii"
    nib.save(img, path)
    ours = gpuimg.load(path)
    out = tmp_path / "ext2.nii"
    ours.to_filename(out)
    ext = nib.load(out).header.extensions
    assert len(ext) == 1
    assert ext[0].get_code() == 6
    assert ext[0].get_content().rstrip(b"\0") == b"a comment for the ages"


@pytest.mark.parametrize("dtype", ["u1", "i2", "f4"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_plain_analyze_pair_loads_as_nibabel_loads_it(tmp_path, dtype, gz):
    """A pair written as plain Analyze 7.5 (no SPM fields) loads as nibabel's SPM2 variant does."""
    data = random_data(np.dtype(dtype), (4, 5, 3), seed=5)
    path = tmp_path / f"plain.img{'.gz' if gz else ''}"
    nib.save(nib.AnalyzeImage(data, np.diag([-2.0, 3.0, 1.5, 1.0])), path)
    theirs = nib.load(path)
    ours = gpuimg.load(path)
    assert type(ours).__name__ == type(theirs).__name__ == "Spm2AnalyzeImage"
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))


@pytest.mark.parametrize(
    "cls", [gpuimg.AnalyzeImage, gpuimg.Spm99AnalyzeImage, gpuimg.Spm2AnalyzeImage]
)
def test_save_keeps_analyze_classes_in_a_pair(tmp_path, cls):
    img = cls(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 3.0, 4.0, 1.0]))
    gpuimg.save(img, tmp_path / "analyze.img")
    assert type(nib.load(tmp_path / "analyze.hdr")).__name__ == "Spm2AnalyzeImage", "saved as NIfTI"
    assert isinstance(gpuimg.load(tmp_path / "analyze.img"), gpuimg.Spm2AnalyzeImage)
