"""bzip2 and zstd images: read and written as nibabel does (nibabel is the oracle)."""

from __future__ import annotations

import io
import os
import sys

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.errors import CompressedStreamError, ImageFileError, TruncatedDataError
from gpuimg.io.containers import container_for, max_uncompressed_size

NAMES = ["t.nii.bz2", "t.img.bz2", "t.nii.zst", "t.hdr.zst", "T.NII.BZ2"]


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(100, 30, (6, 5, 4, 3)).astype(np.float32)


def _partner(path) -> str:
    """The other file of a pair (the header of an image, the image of a header)."""
    name = os.fspath(path)
    for one, other in ((".img", ".hdr"), (".hdr", ".img")):
        if one in name:
            return name.replace(one, other)
    return name


@pytest.mark.parametrize("name", NAMES)
def test_gpuimg_save_reads_in_nibabel(tmp_path, name):
    path = tmp_path / name
    img = gpuimg.Nifti1Image(_data(), np.diag([2.0, 3.0, 4.0, 1.0]))
    img.set_data_dtype(np.int16)
    gpuimg.save(img, path)
    theirs = nib.load(path)
    ours = gpuimg.load(path)
    assert type(ours).__name__ == type(theirs).__name__
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    assert (theirs.dataobj.slope, theirs.dataobj.inter) == (ours.dataobj.slope, ours.dataobj.inter)
    with open(path, "rb") as raw:
        assert raw.read(3) in (b"BZh", b"\x28\xb5\x2f")
    if path.name.lower().endswith((".img.bz2", ".hdr.zst")):
        assert os.path.exists(_partner(path))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("keep_file_open", [False, True])
def test_nibabel_save_reads_in_gpuimg_whole_and_sliced(tmp_path, name, keep_file_open):
    path = tmp_path / name
    data = _data()
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    img = gpuimg.load(path, keep_file_open=keep_file_open)
    assert img.dataobj.is_compressed
    # Later slices first: a backward slice starts the stream again.
    for slicer in [(..., 2), (1, slice(None, None, 2)), (slice(4, 6), 0, 3, 1), ()]:
        np.testing.assert_array_equal(img.dataobj[slicer], data[slicer])
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), data)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    out = np.empty(data.shape, np.float32, order="F")
    np.testing.assert_array_equal(img.dataobj.read_scaled_into(out), data)


def test_device_read_of_a_bz2_file(tmp_path, xp):
    path = tmp_path / "t.nii.bz2"
    data = _data()
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    img = gpuimg.load(path)
    np.testing.assert_array_equal(xp.asnumpy(img.dataobj.to_device(dtype=np.float32)), data)
    np.testing.assert_array_equal(
        xp.asnumpy(img.dataobj.to_device((slice(1, 3), 2), dtype=np.float32)), data[1:3, 2]
    )


@pytest.mark.parametrize("suffix", [".bz2", ".zst"])
def test_load_names_the_format_a_file_is_not(tmp_path, suffix):
    path = tmp_path / f"img.nii{suffix}"
    path.write_bytes(b"bad")
    name = {".bz2": "bzip2", ".zst": "zstd"}[suffix]
    with pytest.raises(ImageFileError, match=f"^File {path} is not a {name} file$"):
        gpuimg.load(path)
    with pytest.raises(nib.filebasedimages.ImageFileError, match="^File .* is not a .* file$"):
        nib.load(path)  # nibabel's message, which gpuimg's follows (nibabel spells zstd 'ztsd')


@pytest.mark.parametrize("suffix", [".bz2", ".zst"])
def test_load_of_a_good_container_of_bad_data(tmp_path, suffix):
    path = tmp_path / f"img.nii{suffix}"
    with container_for(path).open_write(os.fspath(path)) as writer:
        writer.write(b"bad")
    with pytest.raises(ImageFileError, match=f'^Cannot work out file type of "{path}"'):
        gpuimg.load(path)
    with pytest.raises(nib.filebasedimages.ImageFileError, match="^Cannot work out file type of "):
        nib.load(path)


@pytest.mark.parametrize("name", ["t.nii.bz2", "t.nii.zst"])
@pytest.mark.parametrize("cut", ["truncated", "corrupt"])
def test_broken_streams_raise_naming_the_file(tmp_path, name, cut):
    path = tmp_path / name
    # Several blocks of integers (corrupt floats could be signalling NaNs, which warn when cast).
    data = np.random.default_rng(1).integers(-1000, 1000, (64, 64, 32), dtype=np.int16)
    gpuimg.save(gpuimg.Nifti1Image(data, np.eye(4)), path)
    raw = path.read_bytes()
    middle = len(raw) * 3 // 4  # past the first block: the header still reads
    if cut == "truncated":
        path.write_bytes(raw[:middle])
    else:
        flipped = bytes(b ^ 0xFF for b in raw[middle : middle + 64])
        path.write_bytes(raw[:middle] + flipped + raw[middle + 64 :])
    img = gpuimg.load(path)
    with pytest.raises(CompressedStreamError, match=f"^{path}: corrupt or truncated"):
        img.get_fdata()


def test_data_the_file_lacks_raise_truncated(tmp_path):
    """A stream that ends where the data should go on: the header promises more than the file has."""
    path = tmp_path / "t.nii.bz2"
    img = gpuimg.Nifti1Image(_data(), np.eye(4))
    header = img.header.copy()
    header.set_data_shape((6, 5, 4, 30))
    buffer = io.BytesIO()
    header.write_to(buffer)
    with container_for(path).open_write(os.fspath(path)) as writer:
        writer.write(buffer.getvalue() + b"\0" * (352 - len(buffer.getvalue())))
        writer.write(_data().tobytes(order="F"))
    assert max_uncompressed_size(path) is None  # bzip2 bounds nothing: the read finds out
    with pytest.raises(TruncatedDataError, match=f"^{path}: data end at byte 1792"):
        gpuimg.load(path).get_fdata()


def test_zst_without_its_module_says_what_to_install(tmp_path, monkeypatch):
    for name in ("compression.zstd", "backports.zstd"):
        monkeypatch.setitem(sys.modules, name, None)  # what an absent module imports as
    path = tmp_path / "t.nii.zst"
    with pytest.raises(ImportError, match=f"backports.zstd.*{path}.*pip install backports.zstd"):
        gpuimg.save(gpuimg.Nifti1Image(_data(), np.eye(4)), path)
    assert not path.exists()
