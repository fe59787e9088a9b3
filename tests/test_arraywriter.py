"""Scaled writes: values never wrap or clip silently, header factors are honoured, NaN/inf as nibabel."""

from __future__ import annotations

import io

import numpy as np
import pytest

import gpuimg
from gpuimg.arraywriter import cast_block, data_range, plan_cast, plan_write
from gpuimg.errors import ScalingError, WriterError
from gpuimg.images.fileholders import FileHolder

nib = pytest.importorskip("nibabel")


def _round_trip(img):
    """Save ``img`` to memory; return the reloaded gpuimg image and nibabel's reading of the same bytes."""
    file_map = {name: FileHolder(fileobj=io.BytesIO()) for name, _ in img.files_types}
    img.to_file_map(file_map)
    ours = type(img).from_file_map(file_map)
    nib_class = getattr(nib, type(img).__name__)
    written = {name: holder.fileobj.getvalue() for name, holder in file_map.items()}
    theirs = nib_class.from_file_map(
        {  # nibabel's SPM images also look for a (here empty) .mat file
            name: nib.fileholders.FileHolder(fileobj=io.BytesIO(written.get(name, b"")))
            for name, _ in nib_class.files_types
        }
    )
    return ours, theirs


def _nib_data_bytes(data, dtype) -> bytes:
    """The data part of the single .nii file nibabel writes."""
    img = nib.Nifti1Image(data, np.eye(4), dtype=dtype)
    file_map = {
        name: nib.fileholders.FileHolder(fileobj=io.BytesIO()) for name, _ in img.files_types
    }
    img.to_file_map(file_map)
    return file_map["image"].fileobj.getvalue()[352:]


# -- 1. no silent wrap or clip ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "data"),
    [
        ("i8", np.random.default_rng(1).uniform(-1e6, 1e6, 24)),
        ("u8", np.random.default_rng(1).uniform(0, 1e6, 24)),
        ("u8", np.array([0.0, 1.5, float(np.iinfo(np.uint64).max)])),
    ],
    ids=["int64", "uint64", "uint64-max"],
)
def test_float64_top_values_do_not_wrap_in_64_bit_integers(out, data):
    img = gpuimg.Nifti1Image(data.reshape(-1, 1, 1), np.eye(4), dtype=np.dtype(out))
    ours, theirs = _round_trip(img)
    back = ours.get_fdata().ravel()
    np.testing.assert_allclose(back, data, rtol=1e-6, atol=float(ours.dataobj.slope))
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())


@pytest.mark.parametrize("cls", [gpuimg.Nifti1Image, gpuimg.Nifti2Pair, gpuimg.Spm99AnalyzeImage])
@pytest.mark.parametrize("out", [np.int16, np.uint8])
def test_ranges_beyond_float32_raise_scaling_error(tmp_path, cls, out):
    data = np.array([-1e45, 0.0, 1e45]).reshape(3, 1, 1)
    if out is np.uint8 and cls is gpuimg.Spm99AnalyzeImage:
        data = np.abs(
            data
        )  # a slope alone cannot take both signs to uint8 (a WriterError of its own)
    img = cls(data, np.eye(4), dtype=out)
    with pytest.raises(ScalingError, match="not finite|expected finite factors"):
        img.to_filename(tmp_path / f"big{cls.files_types[0][1]}")


def test_scaling_error_is_a_writer_error_and_a_value_error():
    assert issubclass(ScalingError, WriterError)
    assert issubclass(WriterError, gpuimg.GpuimgError)
    assert issubclass(WriterError, ValueError)


def test_analyze_refuses_float_data_needing_a_scale_factor(tmp_path):
    img = gpuimg.AnalyzeImage(np.array([[[0.5, 2.0]]]), np.eye(4), dtype=np.int16)
    with pytest.raises(WriterError, match="stores no scale factor"):
        img.to_filename(tmp_path / "a.img")


# -- 2. scale factors set on the header -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "factors"), [(gpuimg.Nifti1Image, (2.0, 10.0)), (gpuimg.Spm99AnalyzeImage, (2.0,))]
)
def test_header_factors_are_stored_and_the_data_written_cast(cls, factors):
    data = np.array([-40000.7, -1.4, 0.0, 0.6, 10.0, 40000.0, np.inf, np.nan]).reshape(8, 1, 1)
    img = cls(data, np.eye(4), dtype=np.int16)
    img.header.set_slope_inter(*factors)
    ours, theirs = _round_trip(img)
    slope, inter = factors[0], factors[1] if len(factors) > 1 else 0.0
    raw = np.array([-32768, -1, 0, 1, 10, 32767, 32767, 0])
    np.testing.assert_array_equal(ours.get_fdata().ravel(), raw * slope + inter)
    np.testing.assert_array_equal(theirs.get_fdata(), ours.get_fdata())
    # The image's own header keeps what the caller set.
    assert img.header.get_slope_inter()[0] == slope


def test_raw_zero_slope_set_on_the_header_means_unscaled():
    """nibabel's test_write_scaling: a raw slope of 0 is "set", so nothing is rescaled (read as 1)."""
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data[0, 0, 0], data[1, 0, 0] = 0.4, 0.6
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.header["scl_slope"], img.header["scl_inter"] = 0, 0
    img.header.set_data_dtype(np.uint8)
    ours, theirs = _round_trip(img)
    np.testing.assert_array_equal(ours.get_fdata(), np.round(data))
    np.testing.assert_array_equal(theirs.get_fdata(), np.round(data))


@pytest.mark.parametrize("cls", [gpuimg.Nifti1Image, gpuimg.Spm99AnalyzeImage])
def test_int_to_narrower_int_with_unit_factors_is_clipped(cls):
    """nibabel's test_int_int_scaling."""
    data = np.array([-1, 0, 256], dtype=np.int16)[:, None, None]
    img = cls(data, np.eye(4))
    img.set_data_dtype(np.uint8)
    img.header.set_slope_inter(1, 0 if img.header.has_data_intercept else None)
    ours, _ = _round_trip(img)
    np.testing.assert_array_equal(ours.get_fdata(), np.clip(data, 0, 255))


def test_spm_uint8_negative_and_positive_data_without_factors_raise(tmp_path):
    img = gpuimg.Spm99AnalyzeImage(np.array([[[-2.5, 3.0]]]), np.eye(4), dtype=np.uint8)
    with pytest.raises(WriterError, match="negative and positive"):
        img.to_filename(tmp_path / "spm.img")


def test_spm_uint8_all_negative_data_get_a_negative_slope():
    data = np.array([-300.0, -2.5, -0.25, 0.0]).reshape(4, 1, 1)
    img = gpuimg.Spm99AnalyzeImage(data, np.eye(4), dtype=np.uint8)
    ours, theirs = _round_trip(img)
    assert ours.dataobj.slope < 0
    np.testing.assert_allclose(ours.get_fdata(), data, atol=abs(ours.dataobj.slope))
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())


# -- 3. non-finite values -------------------------------------------------------------------------------


def test_no_finite_values_are_written_as_zeros():
    """nibabel's test_no_finite_values: ±inf and NaN only, written as int16, read back as 0."""
    data = np.zeros((2, 3, 4))
    data[:, 0], data[:, 1], data[:, 2] = np.nan, np.inf, -np.inf
    img = gpuimg.Nifti1Image(data, None, dtype=np.int16)
    ours, _ = _round_trip(img)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), 0)


def test_infinities_are_written_as_the_scaled_finite_extremes():
    data = np.array([-np.inf, -5.0, 0.0, 7.0, np.inf]).reshape(5, 1, 1)
    ours, _ = _round_trip(gpuimg.Nifti1Image(data, np.eye(4), dtype=np.int16))
    np.testing.assert_allclose(ours.get_fdata().ravel(), [-5, -5, 0, 7, 7], atol=1e-3)


@pytest.mark.parametrize("cls", [gpuimg.Nifti1Image, gpuimg.Spm99AnalyzeImage])
def test_nan_is_written_as_zero_when_the_range_excludes_zero(cls):
    """nibabel's test_nan2zero_range_ok: 0 joins the scaled range so NaN reads back as 0, not 1."""
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    data[0, 0, 0], data[1, 0, 0] = np.nan, 256
    img = cls(data, np.eye(4), dtype=np.uint8)
    ours, theirs = _round_trip(img)
    assert ours.get_fdata()[0, 0, 0] == 0
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())


# -- issue 11: bit for bit ------------------------------------------------------------------------------


def test_float32_data_scaled_to_int16_write_nibabel_bytes():
    data = (np.random.default_rng(11).standard_normal((16, 32, 32)) * 1234.5).astype(np.float32)
    img = gpuimg.Nifti1Image(data, np.eye(4), dtype=np.int16)
    file_map = {"image": FileHolder(fileobj=io.BytesIO())}
    img.to_file_map(file_map)
    assert file_map["image"].fileobj.getvalue()[352:] == _nib_data_bytes(data, np.int16)


@pytest.mark.parametrize("out", [np.uint8, np.uint16])
def test_mostly_negative_data_as_unsigned_get_nibabels_negative_slope(out):
    data = np.random.default_rng(5).uniform(-1000, 20, (4, 4, 4))
    img = gpuimg.Nifti1Image(data, np.eye(4), dtype=out)
    ours, theirs = _round_trip(img)
    assert ours.dataobj.slope < 0
    assert (ours.dataobj.slope, ours.dataobj.inter) == (theirs.dataobj.slope, theirs.dataobj.inter)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))


# -- the lossless re-save, and its limit ----------------------------------------------------------------


def test_resaving_a_proxy_keeps_raw_values_unless_the_header_factors_were_set(tmp_path):
    path = tmp_path / "scaled.nii"
    raw = np.array([-3, 0, 5, 32767], dtype=np.int16).reshape(4, 1, 1)
    theirs = nib.Nifti1Image(raw, np.eye(4))
    theirs.header.set_slope_inter(0.5, 100)
    nib.save(theirs, path)
    img = gpuimg.load(path)
    again, _ = _round_trip(img)
    np.testing.assert_array_equal(np.asanyarray(again.dataobj.get_unscaled()), raw)
    img.header.set_slope_inter(2, 0)
    reset, _ = _round_trip(img)
    # The scaled values (raw * 0.5 + 100) are cast, clipped and stored with the caller's factors.
    expected = np.clip(np.rint(raw * 0.5 + 100), -32768, 32767) * 2
    np.testing.assert_array_equal(reset.get_fdata(), expected)


# -- the plan: a pure decision and a per-block cast -------------------------------------------------------


def test_cast_blocks_concatenate_to_the_whole_cast():
    data = np.random.default_rng(2).standard_normal(1000) * 100
    data[::97] = np.nan
    plan = plan_write(
        data.dtype, np.dtype(np.int16), data_range(data), has_slope=True, has_inter=True
    )
    whole = cast_block(data, plan.cast)
    blocks = np.concatenate([cast_block(data[i : i + 64], plan.cast) for i in range(0, 1000, 64)])
    np.testing.assert_array_equal(blocks, whole)
    assert whole.dtype == np.int16
    assert np.all(whole[::97] == np.rint(-plan.inter / plan.slope))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_data_range_over_blocks_finds_the_finite_range_and_nans(monkeypatch, dtype):
    monkeypatch.setattr(gpuimg.scalefactors, "RANGE_BLOCK_ELEMENTS", 7)
    data = np.arange(60, dtype=dtype).reshape(3, 4, 5) - 20
    data.flat[[3, 11, 40]] = np.inf, -np.inf, np.nan
    data.flat[14:21] = np.nan  # a whole block without a finite value
    for view in (data, data[1:, ::2]):  # contiguous, strided
        rng = data_range(view)
        finite = view[np.isfinite(view)]
        expected = (finite.min(), finite.max(), bool(np.isnan(view).any()))
        assert (rng.low, rng.high, rng.has_nan) == expected


def test_data_range_without_finite_values():
    rng = data_range(np.array([np.inf, -np.inf]))
    assert (rng.has_finite, rng.has_nan, rng.empty) == (False, False, False)
    assert data_range(np.zeros((0, 3))).empty


def test_plan_cast_refuses_non_finite_factors():
    with pytest.raises(ScalingError, match="slope inf"):
        plan_cast(np.dtype(np.float64), np.dtype(np.int16), np.float32(np.inf), 0.0)
