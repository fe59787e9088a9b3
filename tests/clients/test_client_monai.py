"""MONAI with gpuimg: GpuimgReader against NibabelReader, and gpuimg standing in for nibabel."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from client_files import ALL_FILES

import gpuimg

pytest.importorskip("monai")
from monai.data import NibabelReader, image_reader, image_writer  # noqa: E402
from monai.transforms import LoadImage, SaveImage  # noqa: E402

from gpuimg.monai import GpuimgReader  # noqa: E402


def assert_same_meta(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        mine = ours[key]
        if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "numpy"):
            value, mine = np.asarray(value), np.asarray(mine)
            assert mine.dtype == value.dtype, key
            np.testing.assert_array_equal(mine, value, err_msg=key)
        elif isinstance(value, float) and np.isnan(value):
            assert np.isnan(mine), key
        else:
            assert mine == value, key


def load_pair(path, **options):
    """``(data, meta)`` from GpuimgReader and from NibabelReader, in the dtype each reads."""
    readers = GpuimgReader(**options), NibabelReader(**options)
    return [reader.get_data(reader.read(path)) for reader in readers]


@pytest.mark.parametrize("canonical", [False, True], ids=["as-is", "canonical"])
@pytest.mark.parametrize("name", ALL_FILES)
def test_gpuimg_reader_matches_nibabel_reader(real_files, name, canonical):
    (ours, ours_meta), (theirs, theirs_meta) = load_pair(
        real_files[name], as_closest_canonical=canonical
    )
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    assert_same_meta(ours_meta, theirs_meta)


def test_load_image_with_gpuimg_reader(real_files):
    path = real_files["example4d.nii.gz"]
    ours = LoadImage(reader=GpuimgReader(as_closest_canonical=True), image_only=True)(path)
    theirs = LoadImage(reader="NibabelReader", image_only=True, as_closest_canonical=True)(path)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.affine.numpy(), theirs.affine.numpy())
    assert_same_meta(ours.meta, theirs.meta)


@pytest.mark.parametrize(
    "options", [{"squeeze_non_spatial_dims": True}, {"channel_dim": -1}, {"channel_dim": 3}]
)
def test_reader_options_as_nibabel_reader(real_files, options):
    for name in ("vector_5d.nii.gz", "big_endian_4d.nii"):
        (ours, ours_meta), (theirs, theirs_meta) = load_pair(real_files[name], **options)
        np.testing.assert_array_equal(ours, theirs)
        assert_same_meta(ours_meta, theirs_meta)


def test_several_files_stack_as_nibabel_reader(real_files):
    paths = [real_files["labels_uint8.nii.gz"]] * 2
    (ours, ours_meta), (theirs, theirs_meta) = load_pair(paths)
    assert ours.shape == (2, 16, 12, 10)
    np.testing.assert_array_equal(ours, theirs)
    assert_same_meta(ours_meta, theirs_meta)


def test_reader_suffixes_and_load_options(real_files):
    reader = GpuimgReader(mmap=False)
    assert reader.verify_suffix("a.nii.gz") and reader.verify_suffix(["a.nii", "b.nii"])
    assert not reader.verify_suffix("a.png")
    img = reader.read(real_files["anatomical.nii"])
    assert isinstance(img, gpuimg.Nifti1Image)
    assert img.dataobj._mmap is None  # noqa: SLF001 - the load option reached gpuimg.load


@pytest.mark.parametrize("canonical", [False, True], ids=["as-is", "canonical"])
def test_gpuimg_stands_in_for_nibabel_in_load_and_save(
    real_files, canonical, tmp_path, monkeypatch
):
    names = ["example4d.nii.gz", "scaled_int16.nii.gz", "nifti2_ext.nii", "labels_uint8.nii.gz"]
    outputs = {}
    for who in ("nibabel", "gpuimg"):
        if who == "gpuimg":
            monkeypatch.setattr(image_reader, "nib", gpuimg)
            monkeypatch.setattr(image_writer, "nib", gpuimg)
        load = LoadImage(reader="NibabelReader", image_only=True, as_closest_canonical=canonical)
        for name in names:
            volume = load(real_files[name])
            folder = tmp_path / who
            SaveImage(output_dir=folder, separate_folder=False, output_postfix="out")(volume)
            outputs[who, name] = volume
    for name in names:
        ours, theirs = outputs["gpuimg", name], outputs["nibabel", name]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        np.testing.assert_array_equal(ours.affine.numpy(), theirs.affine.numpy())
    ours_files = sorted(p.name for p in (tmp_path / "gpuimg").iterdir())
    assert ours_files == sorted(p.name for p in (tmp_path / "nibabel").iterdir())
    assert len(ours_files) == len(names)
    for file in ours_files:  # the same NIfTI bytes (gzip's own framing and deflate choices aside)
        assert gunzipped(tmp_path / "gpuimg" / file) == gunzipped(tmp_path / "nibabel" / file)


def gunzipped(path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


@pytest.mark.parametrize("canonical", [False, True], ids=["as-is", "canonical"])
@pytest.mark.parametrize(
    "name", ["scaled_int16.nii.gz", "labels_uint8.nii.gz", "big_endian_4d.nii"]
)
def test_device_reader_gives_the_host_arrays_on_the_device(double, real_files, name, canonical):
    host_reader = GpuimgReader(as_closest_canonical=canonical)
    host, host_meta = host_reader.get_data(host_reader.read(real_files[name]))
    reader = GpuimgReader(as_closest_canonical=canonical, device="cuda")
    data, meta = reader.get_data(reader.read(real_files[name]))
    assert isinstance(data, double.ndarray)
    assert data.dtype == host.dtype
    np.testing.assert_array_equal(data.get(), host)
    assert_same_meta(meta, host_meta)


@pytest.mark.cuda
def test_load_image_on_the_gpu(real_files, real_cupy):
    path = real_files["scaled_int16.nii.gz"]
    ours = LoadImage(reader=GpuimgReader(device="cuda"), image_only=True)(path)
    theirs = LoadImage(reader=NibabelReader(), image_only=True)(path)
    assert ours.device.type == "cuda"
    np.testing.assert_array_equal(ours.cpu().numpy(), theirs.numpy())
