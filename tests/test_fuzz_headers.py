"""Hostile headers: random byte edits of a valid file load or fail with gpuimg's errors, never otherwise."""

from __future__ import annotations

import gzip
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import gpuimg
from gpuimg.errors import GpuimgError

nib = pytest.importorskip("nibabel")

#: What a bad file may raise: gpuimg's errors (which also subclass OSError, ValueError or MemoryError).
ALLOWED = (GpuimgError,)


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "valid.nii"
    img = nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), np.eye(4))
    img.header.set_slope_inter(0.5, 1.0)
    nib.save(img, path)
    return path.read_bytes()


edits = st.lists(st.tuples(st.integers(0, 351), st.integers(0, 255)), min_size=1, max_size=6)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=edits, gz=st.booleans())
@example(edits=[(115, 125)], gz=False)  # scl_slope ≈ 1e37: float32 results overflow to inf
def test_mutated_headers_fail_cleanly(tmp_path, valid_bytes, edits, gz):
    content = bytearray(valid_bytes)
    for position, value in edits:
        content[position] = value
    path = tmp_path / ("fuzz.nii.gz" if gz else "fuzz.nii")
    path.write_bytes(gzip.compress(bytes(content)) if gz else bytes(content))
    tracemalloc.start()
    try:
        try:
            img = gpuimg.load(path)
            img.get_fdata(dtype=np.float32)
            if img.ndim:
                img.dataobj[..., :1]
        except ALLOWED as error:
            assert str(path) in str(error) or "fuzz" in str(error), error
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak} bytes allocated for a {len(content)}-byte file"
