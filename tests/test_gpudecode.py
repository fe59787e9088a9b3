"""BGZF blocks decoded on the device by nvCOMP, run on the CuPy and nvCOMP test doubles.

The same reads run on a real GPU with real nvCOMP under the ``cuda`` marker (tests/test_device.py's
``xp`` fixture gives real CuPy there; nvCOMP is then the installed package)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import nvcomp_double
import pytest

import gpuimg
from gpuimg import device, gpuread
from gpuimg.errors import CompressedStreamError
from gpuimg.io.bgzf import BLOCK_DATA_SIZE
from gpuimg.loader import Loader

SHAPE = (40, 36, 24, 5)  # int16: about 1 block per volume


@pytest.fixture
def nvcomp(double) -> Iterator[ModuleType]:
    """The nvCOMP double, over the CuPy double."""
    with device.use_nvcomp_backend(nvcomp_double):
        yield nvcomp_double


def save_bgzf(path, dtype: str, *, scaled: bool, shape=SHAPE, high: int = 100) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, high, shape).astype(dtype)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    if scaled:
        img.header.set_slope_inter(0.5, 3.0)
    gpuimg.save(img, path, bgzf=True)


def compressed_payload(path) -> int:
    return path.stat().st_size


@pytest.mark.parametrize("dtype", ["<i2", ">i2", "<f4", ">f8", "u1"])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
def test_device_reads_decode_on_the_device_and_match_the_host(nvcomp, tmp_path, dtype, scaled):
    path = tmp_path / "x.nii.gz"
    save_bgzf(path, dtype, scaled=scaled)
    img = gpuimg.load(path)
    for slicer in [(), (..., 3), (slice(None), slice(None), slice(2, 9))]:
        for fdtype in (np.float32, np.float64):
            gpuread.reset_stats()
            on_device = img.dataobj.to_device(slicer, dtype=fdtype)
            assert isinstance(on_device, nvcomp.cupy_double.ndarray)
            host = np.asarray(img.dataobj[slicer], dtype=fdtype)
            np.testing.assert_array_equal(on_device.get(), host, strict=True)
            # Only compressed payloads crossed: fewer bytes than the raw values, no host fallback.
            counts = gpuread.stats()
            assert counts["reads"] == 1 and counts["host_fallbacks"] == 0
            assert counts["bytes_to_device"] < compressed_payload(path) + 16 * 64


def test_whole_int16_reads_move_the_compressed_bytes_only(nvcomp, tmp_path):
    path = tmp_path / "x.nii.gz"
    save_bgzf(path, "<i2", scaled=True, shape=(96, 96, 64), high=4)  # compresses several times
    raw_bytes = 96 * 96 * 64 * 2
    gpuread.reset_stats()
    gpuimg.load(path).get_fdata(dtype=np.float32, device="cuda")
    moved = gpuread.stats()["bytes_to_device"]
    assert moved < raw_bytes / 4
    assert moved <= compressed_payload(path)


def test_blocks_travel_through_several_pinned_buffers(nvcomp, tmp_path):
    path = tmp_path / "x.nii.gz"
    save_bgzf(path, "<i2", scaled=True, shape=(96, 96, 64))
    img = gpuimg.load(path)
    limits = device.default_pinned_pool().stats()
    device.set_pinned_pool_limits(buffer_size=1 << 16, max_buffers=2)
    try:
        np.testing.assert_array_equal(
            img.get_fdata(dtype=np.float32, device="cuda", caching="unchanged").get(),
            img.get_fdata(dtype=np.float32, caching="unchanged"),
        )
    finally:
        device.set_pinned_pool_limits(
            buffer_size=limits.buffer_size, max_buffers=limits.max_buffers
        )


@pytest.mark.parametrize(
    "case", ["no-nvcomp", "several-runs", "complex"], ids=lambda c: c.replace("-", "_")
)
def test_reads_nvcomp_cannot_serve_go_through_the_host(double, tmp_path, case):
    path = tmp_path / "x.nii.gz"
    save_bgzf(path, "c8" if case == "complex" else "<i2", scaled=False, shape=(64, 64, 32, 6))
    img = gpuimg.load(path)
    slicer = (..., slice(0, 6, 5)) if case == "several-runs" else ()  # volumes 0 and 5
    assert (len(img.dataobj.read_plan(slicer).runs) > 1) == (case == "several-runs")
    with device.use_nvcomp_backend(None if case == "no-nvcomp" else nvcomp_double):
        gpuread.reset_stats()
        on_device = img.dataobj.to_device(slicer, dtype=np.complex64 if case == "complex" else None)
    raw = img.dataobj.read_plan(slicer).nbytes
    assert gpuread.stats()["bytes_to_device"] >= raw  # the raw values (or the result) crossed
    np.testing.assert_array_equal(on_device.get(), np.asarray(img.dataobj[slicer]))


def test_a_block_decoding_to_another_size_raises_naming_the_file(nvcomp, tmp_path):
    path = tmp_path / "x.nii.gz"
    save_bgzf(path, "<i2", scaled=False)
    raw = bytearray(path.read_bytes())
    first = struct.unpack_from("<H", raw, 16)[0] + 1
    end = first + struct.unpack_from("<H", raw, first + 16)[0] + 1
    img = gpuimg.load(path)
    device.empty_cache()
    baseline = device.device_memory_used()
    for isize, message in [
        (BLOCK_DATA_SIZE + 16, "block 0 of this read decoded on the GPU to 65280 bytes, expected"),
        (BLOCK_DATA_SIZE - 16, "nvCOMP could not decode a block: output buffer 0 holds 65264"),
    ]:
        struct.pack_into("<I", raw, end - 4, isize)  # block 1's ISIZE
        path.write_bytes(bytes(raw))
        with pytest.raises(CompressedStreamError, match=f"x.nii.gz: {message}") as caught:
            img.dataobj.to_device((..., 1))  # volume 1 starts in block 1
        # freed while the caller still holds the exception (and so its traceback)
        assert caught.value.__traceback__ is not None
        assert device.device_memory_used() == baseline


def test_loader_batches_on_the_device_decode_with_nvcomp(nvcomp, tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"{k}.nii.gz")
        save_bgzf(paths[-1], "<i2", scaled=True)
    gpuread.reset_stats()
    with Loader(paths, batch_size=3, device="cuda", num_threads=1) as loader:
        (batch,) = list(loader)
    assert gpuread.stats()["bytes_to_device"] <= sum(map(compressed_payload, paths))
    expected = np.stack([gpuimg.load(p).get_fdata(dtype=np.float32) for p in paths])
    np.testing.assert_array_equal(batch.get(), expected)
