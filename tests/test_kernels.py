"""The optional numba kernel gives the numpy path's values bit for bit, or declines the work."""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import pytest

from gpuimg import kernels, scaling
from gpuimg.scaling import equivalent_narrow_plan, plan_scaling, scale_into, scale_transposed_into

pytest.importorskip("numba")

RAW_DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]
FACTORS = [
    (None, None),
    (1.25, -8.0),  # float32 arithmetic for 8/16-bit integers (equivalent_narrow_plan)
    (0.1, 3.3),
    (2.0, 0.0),
    (1.0, -1.5),
    (1e300, 0.0),  # past float32 and, for large values, float64: ±inf
]
SHAPE = (13, 6, 9)


def _raw(dtype: str, shape=SHAPE) -> np.ndarray:
    """Fortran-ordered values spanning the dtype: its ends, zeros, and for floats NaN, inf, -0.0."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(3)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        values.flat[:3] = [info.min, info.max, 0]
    else:
        values = (rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)).astype(dtype)
        tiny = np.finfo(dtype).smallest_subnormal
        values.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, tiny, np.finfo(dtype).max]
    return np.asfortranarray(values)


def _numpy_path(raw, plan, out, monkeypatch, share=(0, 1)):
    with monkeypatch.context() as patch:
        patch.setattr(scaling, "scale_reversed_into", lambda *args, **kwargs: False)
        return scale_transposed_into(raw, plan, out, share=share)


def _same_bits(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


# Every raw dtype into float32 (the loader's default), a few into float64: each pair compiles anew.
PAIRS = [(raw, np.float32) for raw in RAW_DTYPES] + [
    (raw, np.float64) for raw in ["i2", "u8", "f8"]
]


@pytest.mark.parametrize(("raw_dtype", "out_dtype"), PAIRS)
def test_kernel_matches_the_numpy_path(raw_dtype, out_dtype, monkeypatch):
    raw = _raw(raw_dtype)
    for slope, inter in FACTORS:
        plan = equivalent_narrow_plan(plan_scaling(raw.dtype, slope, inter, out_dtype))
        expected = _numpy_path(raw, plan, np.empty(SHAPE, out_dtype), monkeypatch)
        got = np.empty(SHAPE, out_dtype)
        if kernels.scale_reversed_into(raw, plan, got):
            _same_bits(got, expected)
        else:  # only where the work needs a float wider than float64
            assert plan.work_dtype == np.longdouble, (raw_dtype, slope, inter)


@pytest.mark.parametrize("raw_dtype", ["i2", "u1", "f4"])
def test_unscaled_natural_dtype_crops_pads_and_shares(raw_dtype, monkeypatch):
    raw = _raw(raw_dtype, (30, 11, 17))
    plan = plan_scaling(raw.dtype, None, None)  # no arithmetic, no cast: a transposition
    got = np.empty(raw.shape, raw.dtype)
    assert kernels.scale_reversed_into(raw, plan, got)
    _same_bits(got, np.ascontiguousarray(raw))
    # A crop of the disk-order data into a padded slot of a C-ordered batch, in three shares.
    plan = plan_scaling(raw.dtype, 0.5, 1.0, np.float32)
    part = raw[3:25, :, 2:]
    got, expected = np.zeros((2, 40, 11, 20), np.float32), np.zeros((2, 40, 11, 20), np.float32)
    for index in range(3):
        assert kernels.scale_reversed_into(part, plan, got[1, 5:27, :, 1:16], share=(index, 3))
    _numpy_path(part, plan, expected[1, 5:27, :, 1:16], monkeypatch)
    _same_bits(got, expected)


@pytest.mark.parametrize("tile_bytes", [1, 2 * 8 * 13 * 4, kernels.TILE_BYTES])
@pytest.mark.parametrize("depth", [1, 7, 8, 9, 16, 29])
def test_kernel_blocks_of_eight_rows_and_chunks_of_a_plane(depth, tile_bytes, monkeypatch):
    """Depths under, at and past a block of 8 rows; planes in chunks of 1 block, 2, or whole."""
    raw = _raw("i2", (13, 5, depth))
    plan = plan_scaling(raw.dtype, 1.25, -8.0, np.float32)
    expected = _numpy_path(raw, plan, np.empty(raw.shape, np.float32), monkeypatch)
    monkeypatch.setattr(kernels, "TILE_BYTES", tile_bytes)
    got = np.empty(raw.shape, np.float32)
    assert kernels.scale_reversed_into(raw, plan, got)
    _same_bits(got, expected)


def test_scale_into_threads_use_the_kernel_alike(monkeypatch):
    raw = _raw("i2", (128, 96, 96))  # above the size that threads share
    plan = plan_scaling(raw.dtype, 0.1, 3.3, np.float32)
    expected = _numpy_path(raw, plan, np.empty(raw.shape, np.float32), monkeypatch)
    calls = []
    kernel = kernels.scale_reversed_into

    def counted(*args, share):
        calls.append(share)
        return kernel(*args, share=share)

    monkeypatch.setattr(scaling, "scale_reversed_into", counted)
    _same_bits(scale_into(raw, plan, np.empty(raw.shape, np.float32), threads=2), expected)
    assert sorted(calls) == [(0, 2), (1, 2)]


@pytest.mark.parametrize(
    ("raw", "dtype", "out_order"),
    [
        (_raw("i2").astype(">i2"), np.float32, "C"),  # not native byte order
        (_raw("f4"), np.float16, "C"),  # float16 is not the kernel's
        (_raw("f8"), np.int16, "C"),  # float to integer: numpy leaves overflow undefined
        (_raw("i2", (4, 3, 2, 2)), np.float32, "C"),  # 4-D
        (np.ascontiguousarray(_raw("i2")), np.float32, "F"),  # the other way round
    ],
    ids=["big-endian", "float16", "float-to-int", "4-D", "C-to-F"],
)
def test_the_kernel_declines_what_it_does_not_do(raw, dtype, out_order):
    plan = plan_scaling(raw.dtype, None, None, dtype)
    out = np.zeros(raw.shape, plan.out_dtype, order=out_order)
    assert not kernels.scale_reversed_into(raw, plan, out)
    assert not out.any()  # nothing written


def test_without_numba_or_with_its_jit_off_numpy_does_the_work(monkeypatch):
    import numba

    raw = _raw("i2")
    plan = plan_scaling(raw.dtype, 1.25, -8.0, np.float32)
    expected = _numpy_path(raw, plan, np.empty(SHAPE, np.float32), monkeypatch)
    try:
        for patch in (
            lambda: monkeypatch.setitem(sys.modules, "numba", None),  # import fails
            lambda: monkeypatch.setattr(numba.config, "DISABLE_JIT", True),
        ):
            kernels.compiled_kernel.cache_clear()
            with monkeypatch.context():
                patch()
                assert kernels.compiled_kernel() is None
                out = np.empty(SHAPE, np.float32)
                assert not kernels.scale_reversed_into(raw, plan, out)
                _same_bits(scale_transposed_into(raw, plan, out), expected)
            monkeypatch.undo()
    finally:
        kernels.compiled_kernel.cache_clear()
    assert kernels.compiled_kernel() is not None


def test_without_a_cache_folder_the_kernel_compiles_uncached(monkeypatch):
    import numba

    real_njit = numba.njit

    def njit(*args, **options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function: no locator available")
        return real_njit(*args, **options)

    kernels.compiled_kernel.cache_clear()
    monkeypatch.setattr(numba, "njit", njit)
    try:
        raw = _raw("i2")
        plan = plan_scaling(raw.dtype, 1.25, -8.0, np.float32)
        out = np.empty(SHAPE, np.float32)
        assert kernels.scale_reversed_into(raw, plan, out)
        _same_bits(out, _numpy_path(raw, plan, np.empty(SHAPE, np.float32), monkeypatch))
    finally:
        kernels.compiled_kernel.cache_clear()


def _kernel_in_child(raw: np.ndarray, plan) -> bytes:
    out = np.empty(raw.shape, plan.out_dtype)
    assert kernels.scale_reversed_into(raw, plan, out)
    return out.tobytes()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_forked_children_run_the_kernel(monkeypatch):
    """A DataLoader worker forked after the parent compiled the kernel gets the same values."""
    raw = _raw("i2")
    plan = plan_scaling(raw.dtype, 1.25, -8.0, np.float32)
    expected = _kernel_in_child(raw, plan)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = [pool.apply_async(_kernel_in_child, (raw, plan)) for _ in range(2)]
        assert [job.get(timeout=60) for job in results] == [expected, expected]


@pytest.mark.parametrize(("raw_dtype", "out_dtype"), PAIRS)
@pytest.mark.parametrize("order", ["F", "C"])
def test_flat_kernel_matches_the_numpy_path(raw_dtype, out_dtype, order):
    raw = _raw(raw_dtype)
    raw = raw if order == "F" else np.ascontiguousarray(raw)
    for slope, inter in FACTORS:
        plan = equivalent_narrow_plan(plan_scaling(raw.dtype, slope, inter, out_dtype))
        expected = scale_into(raw, plan, np.empty(SHAPE, out_dtype, order=order), threads=1)
        got = np.empty(SHAPE, out_dtype, order=order)
        if kernels.scale_flat_into(raw, plan, got):
            _same_bits(got, expected)
        else:  # only where the work needs a float wider than float64
            assert plan.work_dtype == np.longdouble, (raw_dtype, slope, inter)


def test_the_flat_kernel_declines_other_layouts_and_dtypes():
    raw = _raw("i2")
    plan = plan_scaling(raw.dtype, 2.0, 1.0, np.float32)
    for out in (
        np.zeros(SHAPE, np.float32, order="C"),  # another order: a transposition
        np.zeros((26, 6, 9), np.float32, order="F")[::2],  # strided
    ):
        assert not kernels.scale_flat_into(raw, plan, out)
        assert not out.any()
    big_endian = raw.astype(">i2")
    out = np.zeros(SHAPE, np.float32, order="F")
    assert not kernels.scale_flat_into(
        big_endian, plan_scaling(big_endian.dtype, 2.0, 1.0, np.float32), out
    )
    assert not out.any()


def test_scale_into_runs_the_flat_kernel_on_ranges_of_a_block_or_more(monkeypatch):
    """A whole host read scales each chunk in one compiled pass; ranges under a block stay numpy."""
    calls = []
    kernel = kernels.scale_flat_into

    def counted(raw, plan, out):
        calls.append(raw.size)
        return kernel(raw, plan, out)

    plan = plan_scaling(np.dtype("i2"), 0.1, 3.3, np.float32)
    for size in (scaling.BLOCK_ELEMENTS - 1, 3 * scaling.BLOCK_ELEMENTS + 5):
        raw = _raw("i2", (size,))
        with monkeypatch.context() as patch:
            patch.setattr(scaling, "scale_flat_into", lambda *args: False)
            expected = scale_into(raw, plan, np.empty(size, np.float32), threads=1)
        monkeypatch.setattr(scaling, "scale_flat_into", counted)
        calls.clear()
        _same_bits(scale_into(raw, plan, np.empty(size, np.float32), threads=1), expected)
        assert calls == ([size] if size >= scaling.BLOCK_ELEMENTS else [])
