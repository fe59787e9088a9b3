"""Bad files raise ImageFileError subclasses naming the file and the problem, before big allocations."""

from __future__ import annotations

import gzip
import re
import struct
import tracemalloc

import numpy as np
import pytest

import gpuimg
from gpuimg.errors import (
    CompressedStreamError,
    HeaderDataError,
    HeaderError,
    ImageFileError,
    TruncatedDataError,
    WriterError,
)

nib = pytest.importorskip("nibabel")


def _nifti(tmp_path, name="img.nii", shape=(4, 5, 6), dtype=np.int16):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(np.ones(shape, dtype), np.eye(4)), path)
    return path


def _patch(path, offset, fmt, value):
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, *(value if isinstance(value, tuple) else (value,)))
    path.write_bytes(bytes(raw))


def _raises(exc, path, *words):
    pattern = re.escape(str(path)) + ".*" + ".*".join(words)
    return pytest.raises(exc, match=pattern)


def test_unknown_extension(tmp_path):
    path = tmp_path / "volume.mgz"
    path.write_bytes(b"\0" * 400)
    with pytest.raises(ImageFileError, match="^Cannot work out file type of .*volume.mgz"):
        gpuimg.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.nii"):
        gpuimg.load(tmp_path / "missing.nii")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii"
    path.write_bytes(b"")
    with pytest.raises(ImageFileError, match="^Empty file: '" + re.escape(str(path))):
        gpuimg.load(path)


def test_bad_magic(tmp_path):
    path = _nifti(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[344:348] = b"xyz\0"
    path.write_bytes(bytes(raw))
    with _raises(ImageFileError, path):
        gpuimg.load(path)


def test_wrong_sizeof_hdr(tmp_path):
    path = _nifti(tmp_path)
    _patch(path, 0, "<i", 349)
    with _raises(ImageFileError, path):
        gpuimg.load(path)


def test_truncated_header(tmp_path):
    path = tmp_path / "short.nii"
    path.write_bytes(_nifti(tmp_path).read_bytes()[:200])
    with _raises(ImageFileError, path):
        gpuimg.load(path)


@pytest.mark.parametrize(
    ("index", "value", "word"), [(0, 8, "dim"), (0, -1, "dim"), (2, -5, "dim")]
)
def test_bad_dims(tmp_path, index, value, word):
    path = _nifti(tmp_path)
    _patch(path, 40 + 2 * index, "<h", value)
    with _raises(HeaderError, path, word):
        gpuimg.load(path)


def test_vox_offset_past_the_end(tmp_path):
    path = _nifti(tmp_path)
    _patch(path, 108, "<f", 1e6)
    with _raises(HeaderError, path, "vox_offset|data"):
        gpuimg.load(path)


def test_dims_larger_than_the_file_can_hold(tmp_path):
    path = _nifti(tmp_path)
    for index in range(1, 4):
        _patch(path, 40 + 2 * index, "<h", 32767)
    with _raises(HeaderError, path, "data"):
        gpuimg.load(path)


def test_huge_dims_in_gzip_fail_before_allocating(tmp_path):
    path = _nifti(tmp_path, "img.nii")
    for index in range(1, 4):
        _patch(path, 40 + 2 * index, "<h", 32767)
    gz_path = tmp_path / "huge.nii.gz"
    gz_path.write_bytes(gzip.compress(path.read_bytes()))
    with _raises(HeaderError, gz_path, "data"):
        gpuimg.load(gz_path)


def test_data_shorter_than_the_header_promises_on_read(tmp_path):
    path = _nifti(tmp_path, "img.nii.gz")
    content = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(content[:-20]))
    img = gpuimg.load(path)
    with pytest.raises(ImageFileError, match=re.escape(str(path))):
        img.get_fdata()


def test_pair_with_short_image_file(tmp_path):
    path = tmp_path / "pair.img"
    nib.save(nib.Nifti1Pair(np.ones((4, 5, 6), np.int16), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:-10])
    with _raises(HeaderError, path, "data"):
        gpuimg.load(path)


def test_truncated_data_found_when_reading_a_file_object(tmp_path):
    path = _nifti(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    proxy = gpuimg.ArrayProxy(str(path), ((4, 5, 6), np.int16, 352), mmap=False)
    with _raises(TruncatedDataError, path, "expected"):
        np.asarray(proxy)


def test_corrupt_gzip(tmp_path):
    path = _nifti(tmp_path, "img.nii.gz", shape=(40, 50, 60))
    raw = bytearray(path.read_bytes())
    for i in range(400, len(raw) - 20, 97):
        raw[i] ^= 0xA5
    path.write_bytes(bytes(raw))
    with pytest.raises(CompressedStreamError, match=re.escape(str(path))):
        gpuimg.load(path).get_fdata()


@pytest.mark.parametrize("read", ["get_fdata", "asarray"])
def test_gzip_with_a_bad_crc(tmp_path, read):
    path = _nifti(tmp_path, "img.nii.gz", shape=(40, 50, 60))
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # the trailer's CRC32
    path.write_bytes(bytes(raw))
    img = gpuimg.load(path, mmap=False)
    with pytest.raises(CompressedStreamError, match=re.escape(str(path))):
        img.get_fdata() if read == "get_fdata" else np.asarray(img.dataobj)


def test_truncated_gzip(tmp_path):
    path = _nifti(tmp_path, "img.nii.gz", shape=(40, 50, 60))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageFileError, match=re.escape(str(path))):
        gpuimg.load(path).get_fdata()


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = _nifti(tmp_path)
    before = path.read_bytes()

    def fail_halfway(fileobj, data, *args):
        fileobj.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(gpuimg.formats.analyze, "write_array", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        gpuimg.Nifti1Image(np.zeros((2, 2), np.float32), np.eye(4)).to_filename(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii"]


def test_complex_data_cannot_be_saved_as_integers(tmp_path):
    img = gpuimg.Nifti1Image(np.array([[1 + 2j]]), np.eye(4))
    img.set_data_dtype(np.int16)
    with pytest.raises(WriterError, match="c.nii: cannot write complex"):
        img.to_filename(tmp_path / "c.nii")


def test_finite_slope_with_a_non_finite_intercept(tmp_path):
    path = _nifti(tmp_path)
    _patch(path, 112, "<ff", (2.0, float("nan")))
    with pytest.raises(HeaderDataError, match=re.escape(str(path)) + ".*scl_inter.*nan"):
        gpuimg.load(path)


def test_gzip_header_promising_more_than_the_stream_holds_allocates_nothing_big(tmp_path):
    """The header claims 2000x more data than the .nii.gz holds (within what deflate could expand to)."""
    path = _nifti(tmp_path, "img.nii")
    _patch(path, 42, "<hhh", (400, 500, 100))  # 40 MB of int16, in a file of a few hundred bytes
    gz_path = tmp_path / "liar.nii.gz"
    # Incompressible padding makes the .gz big enough for deflate's 1032:1 bound to allow the claim.
    noise = np.random.default_rng(0).integers(0, 256, 60_000, dtype=np.uint8).tobytes()
    gz_path.write_bytes(gzip.compress(path.read_bytes() + noise, 9))
    img = gpuimg.load(gz_path)
    tracemalloc.start()
    try:
        with pytest.raises(
            TruncatedDataError, match=re.escape(str(gz_path)) + ".*expected 40000000"
        ):
            img.get_fdata(dtype=np.float32)
        with pytest.raises(TruncatedDataError, match=re.escape(str(gz_path))):
            np.asarray(img.dataobj[..., 3])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


def test_multi_member_gzip_still_reads(tmp_path):
    path = _nifti(tmp_path, "img.nii", shape=(20, 30, 40))
    content = path.read_bytes()
    gz_path = tmp_path / "members.nii.gz"
    half = len(content) // 2
    gz_path.write_bytes(gzip.compress(content[:half]) + gzip.compress(content[half:]))
    np.testing.assert_array_equal(gpuimg.load(gz_path).get_fdata(), nib.load(path).get_fdata())
