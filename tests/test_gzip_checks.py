"""Every whole-array read of a .nii.gz checks the gzip trailer (CRC32 and length): host, device, loader."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.errors import CompressedStreamError, GpuimgError
from gpuimg.io.openers import available_gzip_backends, gzip_backend
from gpuimg.loader import Loader

SHAPE = (20, 24, 16, 3)


@pytest.fixture(autouse=True, params=available_gzip_backends())
def backend(request):
    """Each streaming backend: some check the trailer as soon as the last data byte is out, some not."""
    with gzip_backend(request.param):
        yield request.param


@pytest.fixture(params=[-8, -4], ids=["crc", "length"])
def bad_trailer(request, tmp_path):
    """A .nii.gz whose data decompress fine but whose trailer's CRC32 (or ISIZE) is wrong."""
    data = np.random.default_rng(0).integers(0, 1000, SHAPE).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, 1.0)
    path = tmp_path / "bad.nii.gz"
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    raw[request.param] ^= 0x5A
    path.write_bytes(bytes(raw))
    return str(path)


def _raises(path: str):
    return pytest.raises(CompressedStreamError, match=re.escape(path))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_whole_reads(bad_trailer, dtype):
    with _raises(bad_trailer):
        gpuimg.load(bad_trailer).get_fdata(dtype=dtype)
    with _raises(bad_trailer):
        gpuimg.load(bad_trailer).dataobj.get_unscaled()


@pytest.mark.parametrize("keep_file_open", [False, True])
def test_device_whole_reads(bad_trailer, double, keep_file_open):
    img = gpuimg.load(bad_trailer, keep_file_open=keep_file_open)
    with _raises(bad_trailer):
        img.get_fdata(dtype=np.float32, device="cuda")
    with _raises(bad_trailer):
        img.dataobj.to_device(dtype=np.float32, device="cuda")


@pytest.mark.parametrize("order", ["C", "F"])
def test_loader_on_the_host(bad_trailer, order):
    loader = Loader([bad_trailer], batch_size=1, order=order, shape=SHAPE)
    with pytest.raises(GpuimgError, match=re.escape(bad_trailer)) as caught:
        list(loader)
    assert "gzip" in str(caught.value)


def test_loader_on_the_device(bad_trailer, double):
    loader = Loader([bad_trailer], batch_size=1, device="cuda", shape=SHAPE)
    with pytest.raises(GpuimgError, match=re.escape(bad_trailer)) as caught:
        list(loader)
    assert "gzip" in str(caught.value)
