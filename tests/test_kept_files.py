"""Files that change or go away under a proxy: kept handles serve every read, and no read mixes versions."""

from __future__ import annotations

import gzip
import io
import os

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.errors import FileChangedError
from gpuimg.io.handles import FileHandle

SHAPE = (32, 32, 16, 4)


def _nifti_bytes(seed: int) -> bytes:
    data = np.random.default_rng(seed).integers(-500, 500, SHAPE).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.0, -1.0)
    buffer = io.BytesIO()
    img.to_file_map(
        {"image": nib.FileHolder(fileobj=buffer), "header": nib.FileHolder(fileobj=buffer)}
    )
    return buffer.getvalue()


def _expected(raw: bytes) -> np.ndarray:
    return nib.Nifti1Image.from_bytes(raw).get_fdata()


def _write(path, raw: bytes) -> None:
    # Stored (level 0) gzip: two versions of one size, so only the contents and the time differ.
    path.write_bytes(gzip.compress(raw, 0) if path.suffix == ".gz" else raw)


@pytest.fixture(params=["vol.nii", "vol.nii.gz"])
def path(request, tmp_path):
    target = tmp_path / request.param
    _write(target, _nifti_bytes(1))
    return target


@pytest.mark.parametrize("mmap", [True, False])
def test_whole_reads_use_the_kept_file_after_it_is_deleted(path, mmap):
    expected = _expected(_nifti_bytes(1))
    img = gpuimg.load(path, keep_file_open=True, mmap=mmap)
    np.testing.assert_array_equal(img.dataobj[..., 1], expected[..., 1])
    os.unlink(path)
    np.testing.assert_array_equal(img.get_fdata(), expected)
    np.testing.assert_array_equal(img.dataobj.get_unscaled() * 2.0 - 1.0, expected)
    np.testing.assert_array_equal(img.dataobj[..., 2], expected[..., 2])


def test_kept_file_replaced_by_rename_keeps_reading_its_own_version(path):
    expected = _expected(_nifti_bytes(1))
    img = gpuimg.load(path, keep_file_open=True)
    img.dataobj[..., 0]
    replacement = path.with_name("new" + path.name)
    _write(replacement, _nifti_bytes(2))
    os.replace(replacement, path)
    np.testing.assert_array_equal(img.dataobj[..., 3], expected[..., 3])
    np.testing.assert_array_equal(img.get_fdata(), expected)


@pytest.mark.parametrize("keep_file_open", [True, False])
def test_rewrite_in_place_is_read_as_the_new_version_only(path, keep_file_open):
    new = _nifti_bytes(2)
    img = gpuimg.load(path, keep_file_open=keep_file_open)
    img.dataobj[..., 0]  # fills the gzip index and its window of decompressed bytes
    before = os.stat(path).st_mtime_ns
    with open(path, "r+b") as f:  # same inode, same size
        f.write(gzip.compress(new, 0) if path.suffix == ".gz" else new)
    os.utime(path, ns=(before, before + 10**9))  # a later time even where the clock is coarse
    np.testing.assert_array_equal(img.dataobj[..., :2], _expected(new)[..., :2])


def test_a_change_during_a_read_raises_naming_the_file(path):
    handle = FileHandle(path, keep_file_open=True)
    with pytest.raises(FileChangedError, match=str(path)), handle.open() as f:
        f.seek(0)
        f.read(100)
        with open(path, "ab") as grow:
            grow.write(b"\0" * 10)
