"""Tiled conversion between memory orders: every element once, the same values as a plain copy."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuimg import scaling
from gpuimg.scaling import plan_scaling, scale_into, scale_transposed_into
from gpuimg.transpose import TILE_ELEMENTS, convert_between_orders, fortran_blocks, order_of, tiles

SHAPES = [
    (1,),
    (7,),
    (5, 3),
    (7, 1, 5),
    (1, 1, 1),
    (3, 5, 7, 2),
    (17, 9, 13),
    (70, 33, 40),
    (300, 3, 90),
]
RAW_DTYPES = ["<i1", "<u1", "<i2", ">i2", "<u2", "<i4", ">u4", "<i8", "<f4", ">f4", "<f8"]
FACTORS = [(1.0, 0.0), (1.25, -8.0), (0.1, 3.3), (2.0, 0.0)]


@pytest.fixture(autouse=True)
def numpy_tiles(monkeypatch):
    """These tests are of numpy's tiles: the numba kernel (tests/test_kernels.py) stays out."""
    monkeypatch.setattr(scaling, "scale_reversed_into", lambda *args, **kwargs: False)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=4).map(tuple),
    elements=st.integers(1, 5000),
)
def test_tiles_cover_every_element_once(shape, elements):
    seen = np.zeros(shape, np.int8)
    for slicer in tiles(shape, elements):
        assert seen[slicer].size <= elements
        seen[slicer] += 1
    assert (seen == 1).all()


def test_tiles_of_a_volume_span_whole_first_and_last_axes():
    (first, *_) = tiles((160, 192, 160))
    assert first[0] == slice(0, 160) and first[-1] == slice(0, 160)
    assert 160 * 160 * (first[1].stop - first[1].start) <= TILE_ELEMENTS


def test_order_of():
    volume = np.zeros((4, 5, 6))
    assert order_of(volume) == "C" and order_of(np.asfortranarray(volume)) == "F"
    assert order_of(np.asfortranarray(volume)[1:3, ::2]) == "F" and order_of(volume[:, 0]) == "C"


def _raw(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = (
        rng.integers(-100, 100, shape) if np.dtype(dtype).kind in "iu" else rng.normal(0, 50, shape)
    )
    if np.dtype(dtype).kind == "u":
        values = np.abs(values)
    return np.asfortranarray(values.astype(dtype))


def _today(raw, plan):
    """The C-ordered result as the loader made it before tiling: scale in disk order, then copy."""
    scaled = scale_into(raw, plan, np.empty(raw.shape, plan.out_dtype, order="F"), threads=1)
    out = np.empty(raw.shape, plan.out_dtype)
    np.copyto(out, scaled)
    return out


def _same_bits(got, expected):
    assert got.dtype == expected.dtype
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("raw_dtype", RAW_DTYPES)
@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
def test_fortran_into_c_matches_copyto(shape, raw_dtype, out_dtype):
    raw = _raw(shape, raw_dtype)
    for slope, inter in FACTORS:
        plan = plan_scaling(raw.dtype, slope, inter, out_dtype)
        expected = _today(raw, plan)
        _same_bits(scale_into(raw, plan, np.empty(shape, out_dtype), threads=1), expected)
        _same_bits(scale_transposed_into(raw, plan, np.empty(shape, out_dtype)), expected)


@pytest.mark.parametrize("raw_dtype", ["<i2", ">i2", "<u1", "<f4"])
def test_unscaled_natural_dtype_and_strided_views(raw_dtype):
    raw = _raw((30, 11, 17, 3), raw_dtype, seed=1)
    plan = plan_scaling(raw.dtype, None, None)
    _same_bits(scale_into(raw, plan, np.empty(raw.shape, raw.dtype), threads=1), _today(raw, plan))
    # A crop of the disk-order data into a padded slot of a C-ordered batch.
    plan = plan_scaling(raw.dtype, 0.5, 1.0, np.float32)
    batch = np.zeros((2, 40, 11, 20, 3), np.float32)
    part = raw[3:25, :, 2:]
    scale_transposed_into(part, plan, batch[1, 5:27, :, 1:16])
    expected = np.zeros_like(batch)
    expected[1, 5:27, :, 1:16] = _today(np.asfortranarray(part), plan)
    _same_bits(batch, expected)


def test_threads_share_the_tiles():
    raw = _raw((128, 96, 96), "<i2", seed=2)  # above the size that threads share
    plan = plan_scaling(raw.dtype, 0.1, 3.3, np.float32)
    _same_bits(scale_into(raw, plan, np.empty(raw.shape, np.float32), threads=2), _today(raw, plan))


def test_convert_between_orders_stages_in_the_source_order():
    src = np.asfortranarray(np.arange(4 * 5 * 6, dtype=np.int32).reshape(4, 5, 6))
    layouts = []

    def negate(part, staged):
        layouts.append(order_of(staged) == order_of(part) and staged.shape == part.shape)
        np.negative(part, out=staged)

    dst = convert_between_orders(src, np.empty((4, 5, 6), np.int32), negate)
    np.testing.assert_array_equal(dst, -src)
    assert layouts and all(layouts)
    with pytest.raises(ValueError, match=r"dst has shape \(4, 5\), expected the source's"):
        convert_between_orders(src, np.empty((4, 5)), negate)


def test_no_full_size_copy_of_the_source():
    raw = _raw((64, 128, 128), "<i2", seed=3)  # 2 MiB raw, 4 MiB out
    plan = plan_scaling(raw.dtype, 1.25, -8.0, np.float32)
    out = np.empty(raw.shape, np.float32)
    scale_into(raw, plan, out, threads=1)  # warm the scratch pool
    tracemalloc.start()
    try:
        scale_into(raw, plan, out, threads=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < raw.nbytes // 4
    _same_bits(out, _today(raw, plan))


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 30), min_size=1, max_size=4).map(tuple),
    elements=st.integers(1, 3000),
)
def test_fortran_blocks_follow_the_fortran_flattening(shape, elements):
    values = np.arange(int(np.prod(shape))).reshape(shape, order="F")
    boxes = list(fortran_blocks(shape, elements))
    assert all(values[box].size <= elements for box in boxes)
    written = np.concatenate([values[box].reshape(-1, order="F") for box in boxes])
    np.testing.assert_array_equal(written, np.arange(values.size))
