"""Reads scaled by a header's factors come out in nibabel's dtype and values, whatever the factors' type.

nibabel's SPM99 header gives its slope as the 0-d float32 header field, SPM2 and NIfTI-1 give floats;
nibabel's ``ArrayProxy`` and ``data_from_fileobj`` scale in what numpy makes of the data and that factor
(int32 data with a float32 slope: float64). nibabel is the oracle for both read paths.
"""

from __future__ import annotations

import io
import warnings

import nibabel as nib
import numpy as np
import pytest

from gpuimg.arrayproxy import ArrayProxy
from gpuimg.headers import Nifti1Header, Spm2AnalyzeHeader, Spm99AnalyzeHeader

HEADERS = [
    (Spm99AnalyzeHeader, nib.Spm99AnalyzeHeader),
    (Spm2AnalyzeHeader, nib.Spm2AnalyzeHeader),
    (Nifti1Header, nib.Nifti1Header),
]


def _reads(header_class, proxy_class, raw: np.ndarray, slope: float) -> list[np.ndarray]:
    hdr = header_class()
    hdr.set_data_dtype(raw.dtype)
    hdr.set_data_shape(raw.shape)
    hdr.set_data_offset(0)
    hdr.set_slope_inter(slope, 0.0)
    block = raw.tobytes(order="F")
    reads = [
        np.asarray(proxy_class(io.BytesIO(block), hdr.copy()), dtype=d)
        for d in (None, np.float32, np.float64)
    ]
    return [*reads, hdr.data_from_fileobj(io.BytesIO(block))]


@pytest.mark.parametrize("pair", HEADERS, ids=lambda p: p[0].__name__)
@pytest.mark.parametrize("raw_dtype", ["<u1", ">i2", "<i4", ">i4", "<f4", ">f8"])
@pytest.mark.parametrize("slope", [2.0, float(np.float32(3.1416))])
def test_scaled_reads_match_nibabels_dtype_and_values(pair, raw_dtype: str, slope: float) -> None:
    ours_class, theirs_class = pair
    raw = (np.arange(24) * 1_000_003 % 250).astype(raw_dtype).reshape(2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = _reads(theirs_class, nib.arrayproxy.ArrayProxy, raw, slope)
    ours = _reads(ours_class, ArrayProxy, raw, slope)
    for got, expected in zip(ours, theirs, strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
