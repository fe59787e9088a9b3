"""Quaternion maths against nibabel.quaternions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nibabel import quaternions as nq

from gpuimg.errors import HeaderDataError
from gpuimg.headers.quaternions import fill_positive, mat_to_quat, quat_to_mat

unit = st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: 0.1 < np.linalg.norm(q))


@settings(max_examples=100, deadline=None)
@given(q=unit)
def test_round_trips_match_nibabel(q):
    q = np.asarray(q) / np.linalg.norm(q)
    np.testing.assert_array_equal(quat_to_mat(q), nq.quat2mat(q))
    rotation = nq.quat2mat(q)
    np.testing.assert_array_equal(mat_to_quat(rotation), nq.mat2quat(rotation))
    bcd = np.float32(q[1:] * np.sign(q[0] or 1))
    threshold = np.finfo(np.float32).eps * 3
    np.testing.assert_array_equal(fill_positive(bcd, threshold), nq.fillpositive(bcd, threshold))


def test_edge_cases():
    np.testing.assert_array_equal(quat_to_mat([0, 0, 0, 0]), np.eye(3))
    assert fill_positive([1, 0, 0], 1e-6)[0] == 0
    assert mat_to_quat(np.diag([1.0, -1, -1]))[0] >= 0
    with pytest.raises(HeaderDataError, match="norm > 1"):
        fill_positive([1, 1, 0], 1e-6)
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        fill_positive([0, 0], 1e-6)
