"""Images on the GPU: get_fdata(device=...), separate device caches, uncache frees device memory,
CuPy-array images, and clear errors without CuPy or a GPU. Runs on the CuPy test double (``xp``) in CI
and on real CuPy under the ``cuda`` marker."""

from __future__ import annotations

import gc
import sys

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg import device
from gpuimg.errors import DeviceUnavailableError
from tests.oracle import FORMATS, write_with_nibabel


@pytest.fixture
def proxy_path(tmp_path):
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("i2"), (6, 5, 4, 3), big_endian=True, scaled=True, gz=True
    )
    return path


def _used(xp) -> int:
    # Let queued device work finish first: the accounting is then the same on CuPy and the double.
    xp.cuda.get_current_stream().synchronize()
    gc.collect()
    return xp.get_default_memory_pool().used_bytes()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("dtype", ["u1", "i2", "u2", "i4", "f4", "f8", "i8"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
def test_device_fdata_is_bit_identical_to_host(xp, tmp_path, fmt, dtype, big_endian, scaled):
    if np.dtype(dtype) not in fmt.dtypes:
        pytest.skip(f"{fmt.name} cannot store {dtype}")
    path, _ = write_with_nibabel(
        tmp_path, fmt, np.dtype(dtype), (5, 4, 3), big_endian=big_endian, scaled=scaled, gz=False
    )
    img = gpuimg.load(path)
    for fdtype in (np.float32, np.float64):
        on_device = img.get_fdata(dtype=fdtype, device="cuda", caching="unchanged")
        assert isinstance(on_device, xp.ndarray)
        assert on_device.dtype == fdtype
        host = img.get_fdata(dtype=fdtype, caching="unchanged")
        np.testing.assert_array_equal(xp.asnumpy(on_device), host, strict=True)


def test_device_cache_fill_unchanged_and_separate_from_host(xp, proxy_path):
    img = gpuimg.load(proxy_path)
    assert not img.in_memory
    unchanged = img.get_fdata(device="cuda", caching="unchanged")
    assert not img.in_memory
    assert img.get_fdata(device="cuda", caching="unchanged") is not unchanged
    filled = img.get_fdata(device="cuda")
    assert img.in_memory
    assert img.get_fdata(device="cuda") is filled
    assert img.get_fdata(device=0, caching="unchanged") is filled
    # The device cache never fills or serves the host cache, and vice versa.
    host = img.get_fdata(caching="unchanged")
    assert isinstance(host, np.ndarray)
    assert img.get_fdata(caching="unchanged") is not host
    host_filled = img.get_fdata()
    assert img.get_fdata(device="cuda") is filled
    assert img.get_fdata() is host_filled
    # Another float dtype re-reads.
    other = img.get_fdata(device="cuda", dtype=np.float32)
    assert other.dtype == np.float32 and other is not filled


def test_uncache_frees_device_memory(xp, proxy_path):
    img = gpuimg.load(proxy_path)
    gc.collect()
    before = _used(xp)
    data = img.get_fdata(device="cuda")
    nbytes = data.nbytes
    assert _used(xp) >= before + nbytes
    del data
    assert _used(xp) >= before + nbytes, "the cache still holds the array"
    img.uncache()
    gc.collect()
    assert _used(xp) == before
    assert not img.in_memory
    gpuimg.empty_device_cache()
    assert (
        xp.get_default_memory_pool().total_bytes()
        <= xp.get_default_memory_pool().used_bytes()
        + (0 if xp.__name__ == "cupy_double" else 1 << 20)
    )


def test_uncache_while_the_caller_holds_a_reference(xp, proxy_path):
    img = gpuimg.load(proxy_path)
    gc.collect()
    before = _used(xp)
    data = img.get_fdata(device="cuda")
    img.uncache()
    gc.collect()
    assert _used(xp) >= before + data.nbytes, "memory stays while the caller holds the array"
    del data
    gc.collect()
    assert _used(xp) == before


def test_slice_straight_to_the_device(xp, proxy_path):
    img = gpuimg.load(proxy_path)
    host = img.get_fdata(dtype=np.float32)
    for slicer in [(..., 1), (slice(None, None, -2), 3, slice(1, 3)), (0,), (..., None, 2)]:
        got = img.dataobj.to_device(slicer, dtype=np.float32, device="cuda")
        np.testing.assert_array_equal(xp.asnumpy(got), host[slicer], strict=True)


def test_cupy_array_images(xp, tmp_path):
    values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    on_device = device.to_device(values)
    img = gpuimg.Nifti1Image(on_device, np.eye(4))
    host = img.get_fdata()
    assert isinstance(host, np.ndarray) and host.dtype == np.float64
    np.testing.assert_array_equal(host, values)
    gpu = img.get_fdata(device="cuda", dtype=np.float32)
    assert isinstance(gpu, xp.ndarray)
    np.testing.assert_array_equal(xp.asnumpy(gpu), values)
    path = tmp_path / "from_device.nii.gz"
    img.to_filename(path)
    np.testing.assert_array_equal(gpuimg.load(path).get_fdata(), values)


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_float32_subnormals_survive_a_device_read(xp, tmp_path, big_endian):
    """CuPy compiles with -ftz=true; the device read still keeps every float32 bit, as the host does."""
    values = np.array([1e-40, -1e-45, 1.1e-38, 2.5, -0.0, -3e-39], dtype=np.float32)
    header = nib.Nifti1Header(endianness=">" if big_endian else "<")
    nib.save(nib.Nifti1Image(values.reshape(3, 2, 1), np.eye(4), header), tmp_path / "tiny.nii")
    img = gpuimg.load(tmp_path / "tiny.nii")
    for fdtype in (np.float64, np.float32):  # float64: the default get_fdata
        got = device.to_host(img.get_fdata(dtype=fdtype, device="cuda", caching="unchanged"))
        assert got.tobytes() == img.get_fdata(dtype=fdtype, caching="unchanged").tobytes()


def read_cached_on_another_stream(cupy, img) -> np.ndarray:
    """Fill ``img``'s device cache on one stream, read the cached array back on another."""
    first, second = (cupy.cuda.Stream(non_blocking=True) for _ in range(2))
    with first:
        filled = img.get_fdata(device="cuda")
    with second:
        cached = img.get_fdata(device="cuda")
        host = cached.get(stream=second, order="F")
    assert cached is filled
    return host


def test_a_cached_device_array_is_ready_on_the_callers_stream(double, proxy_path):
    img = gpuimg.load(proxy_path)
    # Raises the double's RaceError unless the second stream is ordered after the read.
    np.testing.assert_array_equal(read_cached_on_another_stream(double, img), img.get_fdata())


def test_cpu_device_values_mean_numpy(proxy_path):
    img = gpuimg.load(proxy_path)
    assert isinstance(img.get_fdata(device="cpu"), np.ndarray)
    assert img.get_fdata(device=None) is img.get_fdata(device="cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", 1.5, "tpu:0"])
def test_bad_device_argument(proxy_path, bad):
    with pytest.raises(ValueError, match="device"):
        gpuimg.load(proxy_path).get_fdata(device=bad)


def test_without_cupy_a_device_read_says_how_to_install(proxy_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    img = gpuimg.load(proxy_path)
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'gpuimg\[cuda12\]'"):
        img.get_fdata(device="cuda")
    assert isinstance(img.get_fdata(), np.ndarray)


def test_real_cupy_without_a_gpu(proxy_path):
    cupy = pytest.importorskip("cupy")
    try:
        has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present")
    with pytest.raises(DeviceUnavailableError, match="CUDA"):
        gpuimg.load(proxy_path).get_fdata(device="cuda")
    assert device.resolve_device("cpu") is None
