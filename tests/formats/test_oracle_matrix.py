"""gpuimg reads every format x container x dtype x byte order x scaling exactly as nibabel does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpuimg
from gpuimg import device
from gpuimg.io.openers import available_gzip_backends, gzip_backend
from gpuimg.io.recompress import rewrite_as_bgzf
from tests.oracle import FORMATS, SHAPES, nib, write_with_nibabel

CASES = [
    pytest.param(
        fmt,
        dtype,
        id=f"{fmt.name}-{dtype.str if dtype.fields is None else 'rgb' + str(dtype.itemsize)}",
    )
    for fmt in FORMATS
    for dtype in fmt.dtypes
]


def _fdata_dtypes(dtype: np.dtype) -> tuple[type, ...]:
    return (np.complex128, np.complex64) if dtype.kind == "c" else (np.float64, np.float32)


def _assert_same(ours, theirs) -> None:
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), strict=True)


#: Each file is read as written (plain) or gzipped, once with every gzip backend installed here, and
#: once rewritten as BGZF (blocks gpuimg decodes on its own, whatever the backend).
BGZF = "bgzf"
CONTAINERS = [None, *available_gzip_backends(), BGZF]
#: Slices every shape in SHAPES supports: the last index of the last axis, the first axis reversed.
SLICERS = [(..., -1), (slice(None, None, -1),)]


@pytest.mark.parametrize(("fmt", "dtype"), CASES)
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
@pytest.mark.parametrize("backend", CONTAINERS, ids=lambda b: "plain" if b is None else f"gz-{b}")
def test_matches_nibabel(request, tmp_path, fmt, dtype, big_endian, scaled, backend):
    if scaled and dtype.fields is not None:
        pytest.skip("RGB data cannot carry scale factors")
    gz = backend is not None
    seed = len(dtype.str) + 3 * big_endian + 5 * scaled + 7 * gz + ord(fmt.name[-1])
    shape = SHAPES[seed % len(SHAPES)]
    path, _ = write_with_nibabel(
        tmp_path, fmt, dtype, shape, big_endian=big_endian, scaled=scaled, gz=gz, seed=seed
    )
    if backend == BGZF:
        for gz_file in tmp_path.glob("*.gz"):
            assert rewrite_as_bgzf(gz_file).rewritten
    theirs = nib.load(path)
    with gzip_backend(backend if gz and backend != BGZF else None):
        ours = gpuimg.load(path)
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.shape == theirs.shape
        assert ours.ndim == theirs.ndim
        assert ours.get_data_dtype() == theirs.get_data_dtype()
        np.testing.assert_array_equal(ours.affine, theirs.affine)
        assert gpuimg.is_proxy(ours.dataobj)
        _assert_same(np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj))
        for slicer in SLICERS:
            _assert_same(ours.dataobj[slicer], theirs.dataobj[slicer])
        if dtype.fields is not None:
            return
        for fdtype in _fdata_dtypes(dtype):
            _assert_same(ours.get_fdata(dtype=fdtype), theirs.get_fdata(dtype=fdtype))
    if backend == BGZF:
        _assert_device_reads_match(request.getfixturevalue("double"), ours, dtype)


def _assert_device_reads_match(xp, img, dtype: np.dtype) -> None:
    """Whole and sliced reads to the device (the CuPy double) equal the host reads."""
    if dtype.fields is not None or dtype.itemsize > 8 and dtype.kind == "f":
        return  # RGB and long double stay on the host (see gpuimg.scaling_kernel.kernel_spec)
    for fdtype in _fdata_dtypes(dtype):
        for slicer in [(), *SLICERS]:
            on_device = img.dataobj.to_device(slicer, dtype=fdtype)
            host = np.asarray(img.dataobj[slicer], dtype=device.device_dtype(fdtype))
            np.testing.assert_array_equal(xp.asnumpy(on_device), host, strict=True)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s)}d")
@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_every_dimensionality(tmp_path, fmt, shape):
    path, data = write_with_nibabel(
        tmp_path,
        fmt,
        np.dtype("i2"),
        shape,
        big_endian=False,
        scaled=True,
        gz=False,
        seed=len(shape),
    )
    ours = gpuimg.load(path)
    theirs = nib.load(path)
    assert ours.shape == shape
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    _assert_same(ours.get_fdata(), theirs.get_fdata())
    _assert_same(ours.get_fdata(dtype=np.float32), theirs.get_fdata(dtype=np.float32))


def test_complex_to_real_fdata_warns_like_nibabel(tmp_path):
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("c8"), (3, 4), big_endian=False, scaled=False, gz=False
    )
    with pytest.warns(np.exceptions.ComplexWarning):
        ours = gpuimg.load(path).get_fdata()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        theirs = nib.load(path).get_fdata()
    _assert_same(ours, theirs)
