"""The DataobjImage examples and semantics of the seed document (nibabel's dataobj_images docs)."""

from __future__ import annotations

import copy
import os
import pickle
import threading
import time

import numpy as np
import pytest

import gpuimg
from gpuimg.errors import ExpiredDeprecationError

nib = pytest.importorskip("nibabel")
from nibabel.testing import data_path  # noqa: E402

EXAMPLE4D = os.path.join(data_path, "example4d.nii.gz")


@pytest.fixture
def proxy_img():
    return gpuimg.load(EXAMPLE4D)


def test_seed_get_fdata_fill_example(proxy_img):
    img = proxy_img
    assert gpuimg.is_proxy(img.dataobj)
    assert img.in_memory is False
    data = img.get_fdata()
    assert img.in_memory is True
    assert data[0, 0, 0, 0] == 0.0
    data[0, 0, 0, 0] = 99
    assert data[0, 0, 0, 0] == 99.0
    data_again = img.get_fdata()
    assert data_again is data
    assert data_again[0, 0, 0, 0] == 99.0


def test_seed_get_fdata_unchanged_example(proxy_img):
    img = proxy_img
    data = img.get_fdata(caching="unchanged")
    assert img.in_memory is False
    data[0, 0, 0] = 99
    data_again = img.get_fdata(caching="unchanged")
    assert data_again is not data
    assert data_again[0, 0, 0, 0] == 0.0


def test_seed_get_data_examples_warn_and_cache(proxy_img):
    img = proxy_img
    with pytest.deprecated_call():
        data = img.get_data()
    assert img.in_memory is True
    assert data[0, 0, 0, 0] == 0
    data[0, 0, 0, 0] = 99
    with pytest.deprecated_call():
        data_again = img.get_data()
    assert data_again is data and data_again[0, 0, 0, 0] == 99
    expected = np.asanyarray(nib.load(EXAMPLE4D).dataobj)
    assert data.dtype == expected.dtype


def test_seed_get_data_unchanged_example(proxy_img):
    with pytest.deprecated_call():
        data = proxy_img.get_data(caching="unchanged")
    assert proxy_img.in_memory is False
    data[0, 0, 0] = 99
    with pytest.deprecated_call():
        data_again = proxy_img.get_data(caching="unchanged")
    assert data_again is not data
    assert data_again[0, 0, 0, 0] == 0


def test_unchanged_returns_a_full_cache(proxy_img):
    data = proxy_img.get_fdata()
    assert proxy_img.get_fdata(caching="unchanged") is data


def test_seed_uncache_restores_proxy_values_not_array_values(proxy_img):
    data = proxy_img.get_fdata()
    data[:] = 42
    assert np.all(proxy_img.get_fdata() == 42)
    proxy_img.uncache()
    assert proxy_img.in_memory is False
    assert not np.all(proxy_img.get_fdata() == 42)

    array_img = gpuimg.Nifti1Image(np.zeros((2, 3, 4)), np.eye(4))
    array_data = array_img.get_fdata()
    array_data[:] = 42
    array_img.uncache()
    assert np.all(array_img.get_fdata() == 42)


def test_array_image_caching_flags_make_no_difference():
    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    img = gpuimg.Nifti1Image(arr, np.eye(4))
    assert img.in_memory is True
    assert img.get_fdata(caching="unchanged") is arr
    assert img.get_fdata() is arr


def test_other_float_dtype_rereads(proxy_img):
    data64 = proxy_img.get_fdata()
    data32 = proxy_img.get_fdata(dtype=np.float32)
    assert data32.dtype == np.float32 and data32 is not data64
    assert proxy_img.get_fdata(dtype=np.float32) is data32
    np.testing.assert_array_equal(data32, nib.load(EXAMPLE4D).get_fdata(dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, "i4", bool, "not-a-dtype"])
def test_non_float_dtype_is_rejected(proxy_img, dtype):
    with pytest.raises(ValueError, match="floating point type|not a numpy dtype"):
        proxy_img.get_fdata(dtype=dtype)


def test_bad_caching_value_is_rejected(proxy_img):
    with pytest.raises(ValueError, match="caching value should be 'fill' or 'unchanged'"):
        proxy_img.get_fdata(caching="sometimes")


def test_get_shape_has_expired(proxy_img):
    with pytest.raises(ExpiredDeprecationError, match="use the img.shape property"):
        proxy_img.get_shape()
    assert proxy_img.shape == (128, 96, 24, 2)
    assert proxy_img.ndim == 4


@pytest.mark.parametrize("mmap", [True, False, "c", "r"])
@pytest.mark.parametrize("keep_file_open", [None, True, False])
def test_load_options(mmap, keep_file_open):
    for loader in (gpuimg.Nifti1Image.from_filename, gpuimg.Nifti1Image.load, gpuimg.load):
        img = loader(EXAMPLE4D, mmap=mmap, keep_file_open=keep_file_open)
        np.testing.assert_array_equal(img.get_fdata(), nib.load(EXAMPLE4D).get_fdata())


def test_from_file_map_matches_from_filename():
    file_map = gpuimg.Nifti1Image.filespec_to_file_map(EXAMPLE4D)
    img = gpuimg.Nifti1Image.from_file_map(file_map, mmap=False, keep_file_open=False)
    assert img.file_map is file_map
    assert img.get_filename() == EXAMPLE4D
    np.testing.assert_array_equal(img.affine, nib.load(EXAMPLE4D).affine)


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("mmap", "auto", "mmap should be one of"),
        ("mmap", 1.5, "mmap should be one of"),
        ("keep_file_open", "auto", "'auto' was deprecated"),
        ("keep_file_open", "yes", "keep_file_open should be one of"),
    ],
)
def test_bad_load_options(option, value, match):
    with pytest.raises(ValueError, match=match):
        gpuimg.load(EXAMPLE4D, **{option: value})


def test_dataobj_image_directly():
    arr = np.arange(6.0).reshape(2, 3)
    img = gpuimg.DataobjImage.__new__(gpuimg.Nifti1Image)
    gpuimg.DataobjImage.__init__(img, arr, header=None)
    assert img.dataobj is arr
    assert img.shape == (2, 3) and img.ndim == 2
    assert img.get_fdata() is arr


# -- threads -----------------------------------------------------------------------------------------


def _read_concurrently(img, monkeypatch, threads: int = 8, **kwargs) -> tuple[list, list]:
    """Call ``img.get_fdata(**kwargs)`` from ``threads`` threads at once; the results and reads made."""
    reads = []
    real_read_to = gpuimg.ArrayProxy.read_to

    def slow_read_to(self, *args, **kw):
        reads.append(threading.get_ident())
        time.sleep(0.05)  # long enough for every thread to arrive while it runs
        return real_read_to(self, *args, **kw)

    # Every read of a proxy, host or device, goes through read_to.
    monkeypatch.setattr(gpuimg.ArrayProxy, "read_to", slow_read_to)
    start = threading.Barrier(threads)
    results = [None] * threads

    def work(k: int) -> None:
        start.wait()
        results[k] = img.get_fdata(**kwargs)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, reads


def test_concurrent_get_fdata_reads_once_and_returns_the_cached_object(proxy_img, monkeypatch):
    results, reads = _read_concurrently(proxy_img, monkeypatch)
    assert len(reads) == 1
    assert all(result is results[0] for result in results)
    assert proxy_img.get_fdata() is results[0]


def test_concurrent_device_get_fdata_reads_once(proxy_img, monkeypatch, double):
    results, reads = _read_concurrently(proxy_img, monkeypatch, dtype=np.float32, device="cuda")
    assert len(reads) == 1
    assert all(result is results[0] for result in results)


def test_images_with_their_cache_lock_still_copy_and_pickle(proxy_img):
    proxy_img.get_fdata()
    for clone in (copy.deepcopy(proxy_img), pickle.loads(pickle.dumps(proxy_img))):
        np.testing.assert_array_equal(clone.get_fdata(), proxy_img.get_fdata())
        assert clone.get_fdata() is clone.get_fdata()
