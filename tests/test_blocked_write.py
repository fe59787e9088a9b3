"""The blocked writer: the bytes of one whole-array cast, from any layout, host or device, in bounded memory."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest

import gpuimg
from gpuimg import arraywriter, device
from gpuimg.arraywriter import (
    blocked_data_range,
    cast_block,
    data_range,
    plan_cast,
    plan_write,
    write_array,
)
from gpuimg.io.buffers import default_pool

SHAPES = [(1,), (37,), (9, 7), (13, 6, 11), (5, 1, 7, 3)]
CASES = [  # (source dtype, on-disk dtype)
    ("f4", "i2"),
    ("f8", "u1"),
    ("f4", "f4"),
    ("f8", "f4"),
    ("i2", "i2"),
    ("i2", ">i2"),
    ("i4", "u1"),
    ("u2", "f8"),
    ("c16", "c8"),
]


def _data(shape, dtype, rng):
    values = rng.normal(0, 300, shape)
    if np.dtype(dtype).kind == "c":
        return (values + 1j * rng.normal(0, 3, shape)).astype(dtype)
    if np.dtype(dtype).kind in "iu":
        return np.abs(values).astype(dtype)
    values = values.astype(dtype)
    if values.size > 3:
        values.flat[:3] = [np.nan, np.inf, -np.inf]
    return values


def _plan(data, out):
    return plan_write(
        data.dtype, np.dtype(out), data_range(data), has_slope=True, has_inter=True
    ).cast


def _whole_cast(data, plan) -> bytes:
    """What the writer wrote before it went block by block: one cast of the Fortran flattening."""
    return cast_block(np.asarray(data).reshape(-1, order="F"), plan).tobytes()


def _layouts(data):
    yield "C", np.ascontiguousarray(data)
    yield "F", np.asfortranarray(data)
    padded = np.zeros((*data.shape[:-1], 2 * data.shape[-1]), data.dtype)
    padded[..., ::2] = data
    yield "strided", padded[..., ::2]


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 50 values, so that small arrays cross many of them."""
    monkeypatch.setattr(arraywriter, "WRITE_BLOCK_ELEMENTS", 50)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("source", "out"), CASES, ids=lambda c: str(c))
def test_blocks_write_the_whole_cast_from_every_layout(small_blocks, shape, source, out):
    data = _data(shape, source, np.random.default_rng(len(shape)))
    plan = _plan(data, out)
    expected = _whole_cast(data, plan)
    for name, laid_out in _layouts(data):
        written = io.BytesIO()
        write_array(written, laid_out, plan)
        assert written.getvalue() == expected, name


def test_a_plain_copy_is_recognised_once_per_write_not_per_block(small_blocks, monkeypatch):
    """Each block asking whether the plan is a plain copy cost a scan of the plan's fields."""
    checks = []
    real_check = arraywriter._is_plain_copy
    monkeypatch.setattr(
        arraywriter, "_is_plain_copy", lambda *args: checks.append(args) or real_check(*args)
    )
    data = np.asfortranarray(np.arange(1000, dtype=np.int16).reshape(10, 10, 10))
    written = io.BytesIO()
    write_array(written, data, plan_cast(data.dtype, data.dtype))
    assert written.getvalue() == data.tobytes(order="F")  # 20 blocks, straight from the array
    assert len(checks) == 1


def test_a_zero_dimensional_array_is_one_value():
    written = io.BytesIO()
    write_array(written, np.array(2.5), _plan(np.array([2.5]), "f8"))
    assert written.getvalue() == np.float64(2.5).tobytes()


def _peak_of(function) -> int:
    default_pool.clear()  # the worst case: no pooled buffer to reuse
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("out", ["f4", "i2"])
def test_saving_a_c_ordered_array_holds_one_block_beyond_the_data(tmp_path, out):
    data = np.random.default_rng(0).normal(0, 100, (64, 128, 512)).astype(np.float32)  # 16 MiB
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.set_data_dtype(np.dtype(out))
    path = tmp_path / "c.nii"
    peak = _peak_of(lambda: img.to_filename(path))
    block = arraywriter.WRITE_BLOCK_ELEMENTS * np.dtype(out).itemsize
    # One block, cache-sized scratch and the saved file's 1 MiB write buffer.
    assert peak <= block + (3 << 20), (peak, block)
    plan = _plan(data, out)
    written = path.read_bytes()[352:]
    assert written == _whole_cast(data, plan)


def _device_image(xp, data):
    on_device = device.to_device(data)
    assert isinstance(on_device, xp.ndarray) and on_device.flags.c_contiguous
    return gpuimg.Nifti1Image(on_device, np.eye(4))


@pytest.mark.parametrize("out", ["f4", "i2"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_device_image_streams_to_the_file(xp, tmp_path, out, suffix):
    data = np.random.default_rng(1).normal(0, 100, (128, 128, 128)).astype(np.float32)  # 8 MiB
    data[3, 4, 5] = np.nan
    device.set_pinned_pool_limits(buffer_size=64 << 10)  # boxes of 64 KiB
    img = _device_image(xp, data)
    img.set_data_dtype(np.dtype(out))
    host_img = gpuimg.Nifti1Image(data, np.eye(4))
    host_img.set_data_dtype(np.dtype(out))
    peak = _peak_of(lambda: img.to_filename(tmp_path / f"device{suffix}"))
    host_img.to_filename(tmp_path / f"host{suffix}")
    assert peak < data.nbytes // 4  # the host never held the whole array
    on_device = gpuimg.load(tmp_path / f"device{suffix}")
    assert on_device.header.get_slope_inter() == host_img.header.get_slope_inter()
    expected = np.asarray(gpuimg.load(tmp_path / f"host{suffix}").dataobj.get_unscaled())
    np.testing.assert_array_equal(on_device.dataobj.get_unscaled(), expected, strict=True)


def test_device_data_range_is_the_host_range(xp):
    data = np.random.default_rng(2).normal(0, 10, (20, 30, 40)).astype(np.float32)
    data[0, 0, 0], data[1, 2, 3] = np.nan, -np.inf
    device.set_pinned_pool_limits(buffer_size=4096)
    assert blocked_data_range(device.to_device(data)) == data_range(data)
    empty = device.to_device(np.zeros((0, 3), np.float32))
    assert blocked_data_range(empty).empty
