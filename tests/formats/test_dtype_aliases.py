"""NIfTI's dynamic dtype aliases 'compat' and 'smallest' resolve as nibabel resolves them."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg import device

ALIASES = ["compat", "smallest"]
DTYPES = [
    "u1",
    "i1",
    "u2",
    "i2",
    "u4",
    "i4",
    "u8",
    "i8",
    "f4",
    "f8",
    "c8",
]  # float16: no NIfTI type


def _arrays(dtype: str) -> list[np.ndarray]:
    """Random data of ``dtype`` with extremes at and past each alias' limits, NaN and infinities."""
    rng = np.random.default_rng(sum(map(ord, dtype)))
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        tops = [info.max, 127, 255, 32767, 32768, 65535, 2**31 - 1, 2**31, 2**32]
        bottoms = [info.min, 0, -1, -129, -32769, -(2**31) - 1]
        arrays = []
        for low in bottoms:
            for high in tops:
                if info.min <= low <= high <= info.max:
                    values = rng.integers(low, high, (3, 4, 2), dtype=dt, endpoint=True)
                    values.flat[:2] = low, high
                    arrays.append(values)
        return arrays
    finite = rng.normal(0, 1e3, (3, 4, 2)).astype(dt)
    near_float32_max = rng.uniform(-3.4e38, 3.4e38, (3, 4, 2)).astype(dt)
    arrays = [finite, near_float32_max, np.full((2, 2), 1e39 if dt.itemsize > 4 else 1)]
    for special in (np.nan, np.inf, -np.inf):
        odd = finite.copy()
        odd[0, 0, 0] = special
        arrays.append(odd)
    return [a.astype(dt) for a in arrays]


def _outcome(image) -> object:
    try:
        return image.get_data_dtype(finalize=True)
    except ValueError:
        return ValueError


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_finalize_chooses_nibabels_dtype(alias, dtype):
    for data in _arrays(dtype):
        ours = gpuimg.Nifti1Image(data, np.eye(4), dtype=alias)
        theirs = nib.Nifti1Image(data, np.eye(4), dtype=alias)
        assert ours.get_data_dtype() == theirs.get_data_dtype() == alias
        expected = _outcome(theirs)
        assert _outcome(ours) == expected, (data.dtype, data.min(), data.max())
        assert ours.get_data_dtype() == (alias if expected is ValueError else expected)


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("image_class", [gpuimg.Nifti1Image, gpuimg.Nifti2Pair])
def test_save_writes_the_resolved_dtype_and_keeps_the_alias(tmp_path, alias, image_class):
    data = np.arange(24, dtype=np.int64).reshape(2, 3, 4) * 100  # up to 2300: int16 either way
    img = image_class(data, np.eye(4), dtype=alias)
    name = tmp_path / ("a.nii" if image_class is gpuimg.Nifti1Image else "a.img")
    img.to_filename(name)
    assert img.get_data_dtype() == alias  # resolved for the write only, as nibabel
    expected = {"compat": np.int32, "smallest": np.int16}[alias]
    assert nib.load(name).get_data_dtype() == expected
    np.testing.assert_array_equal(nib.load(name).get_fdata(), data)


def test_a_proxy_resolves_from_its_scaled_values(tmp_path):
    name = tmp_path / "scaled.nii"
    stored = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    stored.header.set_slope_inter(2.0, 1.0)
    nib.save(stored, name)
    for alias in ALIASES:
        ours, theirs = gpuimg.load(name), nib.load(name)
        ours.set_data_dtype(alias)
        theirs.set_data_dtype(alias)
        assert _outcome(ours) == _outcome(theirs)


def test_a_device_array_resolves_as_its_host_copy(xp):
    data = np.arange(-3, 21, dtype=np.int32).reshape(2, 3, 4)
    for alias in ALIASES:
        for values in (data, data.astype(np.float64), data * 1e6):
            ours = gpuimg.Nifti1Image(device.to_device(values), np.eye(4), dtype=alias)
            theirs = nib.Nifti1Image(values, np.eye(4), dtype=alias)
            assert _outcome(ours) == _outcome(theirs)
