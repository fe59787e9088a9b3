"""``gpuimg.load`` does its work once: one open of the file per load and read, one header decode.

Each test counts what a load (and the read after it) does, by wrapping the functions that do it: file
opens (``os.open`` and ``open`` of a path), gzip streams started, header decodes, validations and copies.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
from collections import Counter

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg import config
from gpuimg.headers.nifti1 import Nifti1Header
from gpuimg.images.fileholders import FileHolder
from gpuimg.io.openers import GzipReader

SHAPE = (16, 16, 8)


def _data() -> np.ndarray:
    return np.random.default_rng(5).integers(-300, 300, SHAPE).astype(np.int16)


#: File names of :func:`write_scaled`'s three kinds.
KINDS = ["vol.nii", "vol.nii.gz", "bgzf.nii.gz"]


def write_scaled(target: str) -> str:
    """Write ``_data()`` scaled by 0.5 and 3.0 to ``target``: plain, one gzip stream, or BGZF
    (a name starting ``bgzf``)."""
    img = gpuimg.Nifti1Image(_data(), np.eye(4))
    img.header.set_slope_inter(0.5, 3.0)
    with config.configure(bgzf=os.path.basename(target).startswith("bgzf")):
        gpuimg.save(img, target)
    return target


@pytest.fixture(params=KINDS)
def path(request, tmp_path) -> str:
    """A scaled NIfTI-1 file: plain, one gzip stream, or BGZF."""
    return write_scaled(str(tmp_path / request.param))


@pytest.fixture
def opens(monkeypatch) -> Counter:
    """Counts opens of a path (``os.open``, ``open``), by path; descriptors reopened are not counted."""
    counts: Counter = Counter()
    os_open, builtin_open = os.open, builtins.open

    def counting_os_open(file, *args, **kwargs):
        counts[os.fspath(file)] += 1
        return os_open(file, *args, **kwargs)

    def counting_open(file, *args, **kwargs):
        if not isinstance(file, int):
            counts[os.fspath(file)] += 1
        return builtin_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_os_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


def _counting(monkeypatch, owner, name: str, counts: Counter) -> None:
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def _expected() -> np.ndarray:
    return (_data() * 0.5 + 3.0).astype(np.float32)


def test_a_load_and_its_read_open_the_file_once(path, opens):
    img = gpuimg.load(path)
    data = img.get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(data, _expected())
    assert dict(opens) == {path: 1}


def test_slices_after_the_load_need_no_open_either(path, opens):
    img = gpuimg.load(path)
    np.testing.assert_array_equal(img.dataobj[..., 3], _expected()[..., 3])
    np.testing.assert_array_equal(img.dataobj.get_unscaled(), _data())
    assert dict(opens) == {path: 1}


@pytest.mark.parametrize("keep_file_open", [True, False])
def test_the_load_itself_opens_once_whatever_keep_file_open(path, opens, keep_file_open):
    img = gpuimg.load(path, keep_file_open=keep_file_open)
    assert dict(opens) == {path: 1}
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), _expected())
    if keep_file_open:  # the kept file serves the read too
        assert dict(opens) == {path: 1}


def test_a_pair_opens_its_header_once_and_its_image_for_the_read(tmp_path, opens):
    target = str(tmp_path / "pair.img")
    gpuimg.save(gpuimg.Nifti1Pair(_data(), np.eye(4)), target)
    opens.clear()
    img = gpuimg.load(target)
    assert dict(opens) == {str(tmp_path / "pair.hdr"): 1}
    np.testing.assert_array_equal(img.get_fdata(), _data())


def test_the_header_is_decoded_validated_once_and_not_copied(path, monkeypatch):
    counts: Counter = Counter()
    for name in ("from_fileobj", "validate", "copy"):
        _counting(monkeypatch, Nifti1Header, name, counts)
    gpuimg.load(path)
    assert counts == Counter(from_fileobj=1, validate=1)


def test_a_gzip_header_is_decompressed_once(tmp_path, monkeypatch):
    target = str(tmp_path / "vol.nii.gz")
    gpuimg.save(gpuimg.Nifti1Image(_data(), np.eye(4)), target)
    counts: Counter = Counter()
    _counting(monkeypatch, GzipReader, "_start_member", counts)
    gpuimg.load(target)
    assert counts == Counter(_start_member=1)  # one gzip stream started: sniff and header share it


def test_the_proxy_keeps_the_loaded_facts_when_the_image_header_changes(path):
    img = gpuimg.load(path)
    img.header.set_slope_inter(7.0, -1.0)
    img.header.set_data_dtype(np.float64)
    img.header.set_data_offset(4096)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), _expected())


def test_load_reads_what_nibabel_reads(path):
    img = gpuimg.load(path)
    truth = nib.load(path)
    np.testing.assert_array_equal(img.get_fdata(), truth.get_fdata())
    np.testing.assert_array_equal(img.affine, truth.affine)
    assert img.header.binaryblock == truth.header.binaryblock


def test_a_loaded_image_pickles_without_its_open_file(path):
    img = gpuimg.load(path)
    img.dataobj[..., 0]  # the load's file now serves reads
    clone = pickle.loads(pickle.dumps(img))
    assert clone.dataobj._handle._kept is None
    np.testing.assert_array_equal(clone.get_fdata(dtype=np.float32), _expected())


def test_a_holder_with_a_file_object_and_a_name_reads_the_header_from_the_object(tmp_path):
    named = str(tmp_path / "named.nii")
    gpuimg.save(gpuimg.Nifti1Image(_data(), np.eye(4)), named)
    other = gpuimg.Nifti1Image(_data()[:8], np.diag([2.0, 2.0, 2.0, 1.0]))
    holder = FileHolder(filename=named, fileobj=io.BytesIO(other.to_bytes()))
    img = gpuimg.Nifti1Image.from_file_map({"image": holder})
    assert img.shape == (8, *SHAPE[1:])  # nibabel: the holder's file object holds the header
    np.testing.assert_array_equal(img.affine, other.affine)


def test_a_load_and_its_device_read_open_the_file_once(path, opens, xp):
    img = gpuimg.load(path)
    data = img.get_fdata(dtype=np.float32, device="cuda")
    np.testing.assert_array_equal(xp.asnumpy(data), _expected())
    assert dict(opens) == {path: 1}
