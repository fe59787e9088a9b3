"""Scaling plans reproduce nibabel's ArrayProxy dtype rules and values bit for bit."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuimg.errors import HeaderDataError
from gpuimg.scaling import (
    BLOCK_ELEMENTS,
    apply_scaling,
    equivalent_narrow_plan,
    plan_scaling,
    scale_into,
)

nib_arrayproxy = pytest.importorskip("nibabel.arrayproxy")

RAW_DTYPES = [
    "<i1",
    "<u1",
    "<i2",
    ">i2",
    "<u2",
    "<i4",
    ">u4",
    "<i8",
    ">u8",
    "<f4",
    ">f4",
    "<f8",
    "<c8",
    ">c16",
]
FACTORS = [
    (None, None),
    (1.0, 0.0),
    (2.5, 0.0),
    (1.0, -3.3),
    (0.1234567, 17.25),
    (float(np.float32(3.1e-5)), float(np.float32(-7.1))),
]
REQUESTS = [None, np.float32, np.float64, np.float16]


def _raw(dtype: np.dtype, shape=(5, 4, 3)) -> np.ndarray:
    rng = np.random.default_rng(abs(hash(dtype.str)) % 2**32)
    native = dtype.newbyteorder("=")
    if dtype.kind in "iu":
        info = np.iinfo(native)
        values = rng.integers(info.min, info.max, size=shape, dtype=native, endpoint=True)
    else:
        values = (rng.standard_normal(shape) * 1000).astype(native)
        if dtype.kind == "c":
            values = values + 1j * values[::-1]
    return np.asfortranarray(values.astype(dtype))


def _nibabel_read(raw: np.ndarray, slope, inter, request):
    proxy = nib_arrayproxy.ArrayProxy(
        io.BytesIO(raw.tobytes(order="F")),
        (raw.shape, raw.dtype, 0, 1.0 if slope is None else slope, 0.0 if inter is None else inter),
    )
    return np.asanyarray(proxy, dtype=request)


@pytest.mark.parametrize("dtype", RAW_DTYPES)
@pytest.mark.parametrize(("slope", "inter"), FACTORS)
@pytest.mark.parametrize("request_dtype", REQUESTS)
def test_matches_nibabel(dtype, slope, inter, request_dtype):
    raw = _raw(np.dtype(dtype))
    with warnings.catch_warnings():
        # complex -> float casts discard the imaginary part with a ComplexWarning, in both libraries;
        # float16 overflows to inf in both.
        warnings.simplefilter("ignore")
        expected = _nibabel_read(raw, slope, inter, request_dtype)
        got = apply_scaling(raw, plan_scaling(raw.dtype, slope, inter, request_dtype))
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("request_dtype", [np.float32, np.float64])
def test_results_past_the_dtype_range_are_inf_without_a_warning(request_dtype):
    # A valid header with a huge slope (found by the header fuzz test): nibabel's values, ±inf where
    # the scaled value leaves the requested dtype's range, and no RuntimeWarning from gpuimg.
    raw = np.asfortranarray(np.array([[-32768, -1, 0, 1, 32767]], dtype=np.int16))
    slope = 1e304 if request_dtype == np.float64 else 1e37
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel's own cast warns about the overflow
        expected = _nibabel_read(raw, slope, 1.0, request_dtype)
    got = apply_scaling(raw, plan_scaling(raw.dtype, slope, 1.0, request_dtype))
    assert np.isinf(got).sum() == 2
    np.testing.assert_array_equal(got, expected, strict=True)


def test_identity_plan_returns_raw_itself():
    raw = _raw(np.dtype(">i2"))
    plan = plan_scaling(raw.dtype, None, None)
    assert plan.is_identity
    assert apply_scaling(raw, plan) is raw
    assert plan.out_dtype == np.dtype(">i2")


def test_float32_request_scales_in_float64_like_nibabel():
    plan = plan_scaling(np.dtype("<i2"), 0.1, 3.0, np.float32)
    assert plan.work_dtype == np.float64
    assert plan.casts == (np.dtype(np.float32),)


def test_blocks_cover_arrays_larger_than_one_block():
    raw = np.asfortranarray(np.arange(3 * BLOCK_ELEMENTS + 7, dtype=np.int16).reshape(-1, 1))
    plan = plan_scaling(raw.dtype, 0.5, -1.0, np.float32)
    out = scale_into(raw, plan, np.empty(raw.shape, np.float32, order="F"))
    np.testing.assert_array_equal(out, (raw.astype(np.float64) * 0.5 - 1.0).astype(np.float32))


def test_c_ordered_input_is_scaled_in_its_own_order():
    raw = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    plan = plan_scaling(raw.dtype, 2.0, 0.0)
    np.testing.assert_array_equal(apply_scaling(raw, plan), raw * 2.0)


def test_shape_mismatch_is_rejected():
    plan = plan_scaling(np.dtype("<i2"), 2.0, 0.0)
    with pytest.raises(ValueError, match=r"output shape \(3,\) differs from the raw shape \(2,\)"):
        scale_into(np.zeros(2, np.int16), plan, np.empty(3))


@pytest.mark.parametrize(("slope", "inter"), [(np.nan, 0.0), (1.0, np.inf), (np.inf, 0.0)])
def test_non_finite_factors_raise(slope, inter):
    with pytest.raises(HeaderDataError, match="scale factors must be finite"):
        plan_scaling(np.dtype("<i2"), slope, inter)


def test_structured_data_cannot_be_scaled():
    rgb = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
    assert plan_scaling(rgb, None, None).is_identity
    with pytest.raises(HeaderDataError, match="cannot scale structured data"):
        plan_scaling(rgb, 2.0, 0.0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_scaling_is_identical(threads):
    raw = np.asfortranarray(
        np.random.default_rng(1).integers(-(2**15), 2**15, size=(130, 97, 90), dtype=np.int16)
    )
    plan = plan_scaling(raw.dtype, 0.123, -4.5, np.float32)
    expected = (raw.astype(np.float64) * 0.123 - 4.5).astype(np.float32)
    out = scale_into(raw, plan, np.empty(raw.shape, np.float32, order="F"), threads=threads)
    np.testing.assert_array_equal(out, expected)


def test_out_must_be_contiguous_and_of_the_plan_dtype():
    raw = np.zeros((4, 5), np.int16)
    plan = plan_scaling(raw.dtype, 2.0, 0.0, np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        scale_into(raw, plan, np.zeros((4, 10), np.float32)[:, :5])
    with pytest.raises(ValueError, match="plan produces float32"):
        scale_into(raw, plan, np.zeros((4, 5), np.float64))


# -- float32 arithmetic where it is provably exact ---------------------------------------------------

SMALL_INTS = ["<u1", "<i1", "<i2", ">i2", "<u2", ">u2"]
SHORT_FACTORS = [
    (1.25, -8.0),
    (2.0, None),
    (None, 0.5),
    (0.5, -1024.0),
    (-0.75, 100.25),
    (2**-20, 3.0),
]


def _every_value(dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1).astype(dtype)


def _wide_then_cast(raw: np.ndarray, slope, inter) -> np.ndarray:
    """nibabel's way: float64 arithmetic, then one cast to float32."""
    work = raw.astype(np.float64)
    if slope is not None:
        work = work * slope
    if inter is not None:
        work = work + inter
    return work.astype(np.float32)


@pytest.mark.parametrize("dtype", SMALL_INTS)
@pytest.mark.parametrize(("slope", "inter"), SHORT_FACTORS)
def test_float32_arithmetic_is_used_and_exact_on_every_value(dtype, slope, inter):
    raw = _every_value(np.dtype(dtype))
    plan = plan_scaling(raw.dtype, slope, inter, np.float32)
    assert equivalent_narrow_plan(plan).work_dtype == np.float32
    got = scale_into(raw, plan, np.empty(raw.shape, np.float32))
    expected = _wide_then_cast(raw, slope, inter)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize(
    ("dtype", "slope", "inter"),
    [
        ("<i2", 0.1, 0.0),  # 0.1 is not a float32
        ("<i2", float(np.float32(0.1234567)), 0.0),  # 24-bit significand: products round
        ("<u2", 257.0 / 256, 0.0),  # 9-bit significand times 16-bit data: 25 bits
        ("<i2", 2.0**-20, 2.0**40),  # sums span 2**-20 to 2**40: more than 53 bits
        ("<i4", 2.0, 1.0),  # 32-bit data
    ],
)
def test_float64_is_kept_where_float32_could_round_differently(dtype, slope, inter):
    plan = plan_scaling(np.dtype(dtype), slope, inter, np.float32)
    assert equivalent_narrow_plan(plan) is plan


def test_the_exactness_guard_matters():
    """A slope the guard refuses really does give other values when computed in float32."""
    raw = _every_value(np.dtype("<i2"))
    slope = float(np.float32(0.1234567))
    narrow = (raw.astype(np.float32) * np.float32(slope) + np.float32(3.3)).view(np.uint32)
    wide = _wide_then_cast(raw, slope, float(np.float32(3.3))).view(np.uint32)
    assert np.count_nonzero(narrow != wide) > 0


@settings(max_examples=150, deadline=None)
@given(
    dtype=st.sampled_from(SMALL_INTS),
    slope=st.tuples(st.integers(-300, 300), st.integers(-40, 20)),
    inter=st.tuples(st.integers(-(2**24), 2**24), st.integers(-40, 40)),
)
def test_float32_arithmetic_is_chosen_only_when_exact(dtype, slope, inter):
    slope_value, inter_value = math.ldexp(*slope), math.ldexp(*inter)
    raw = _every_value(np.dtype(dtype))
    plan = plan_scaling(raw.dtype, slope_value, inter_value, np.float32)
    got = scale_into(raw, plan, np.empty(raw.shape, np.float32))
    expected = _wide_then_cast(raw, plan.slope, plan.inter)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
