"""gpuimg.orientations and gpuimg.affines give nibabel's results (nibabel is the oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuimg import affines, orientations

nib = pytest.importorskip("nibabel")
nib_ornt = nib.orientations


@st.composite
def affines_(draw):
    """Affines from permutations, flips, zooms, small rotations, shears and dropped axes."""
    n_in = draw(st.integers(2, 4))
    n_out = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    matrix = np.zeros((n_out, n_in))
    for in_axis, out_axis in enumerate(rng.permutation(max(n_in, n_out))[:n_in]):
        if out_axis < n_out:
            matrix[out_axis, in_axis] = rng.choice([-1, 1]) * rng.uniform(0.5, 3)
    matrix += draw(st.sampled_from([0.0, 0.05, 0.4, 1.0])) * rng.normal(size=matrix.shape)
    if draw(st.booleans()):
        matrix[:, rng.integers(n_in)] = 0
    aff = np.zeros((n_out + 1, n_in + 1))
    aff[:n_out, :n_in] = matrix
    aff[n_out, n_in] = 1
    aff[:n_out, n_in] = rng.normal(size=n_out) * 10
    return aff


@settings(max_examples=300, deadline=None)
@given(affines_())
def test_io_orientation_and_axcodes_match_nibabel(aff):
    np.testing.assert_array_equal(orientations.io_orientation(aff), nib_ornt.io_orientation(aff))
    if aff.shape[0] - 1 <= 3:
        assert orientations.aff2axcodes(aff) == nib_ornt.aff2axcodes(aff)


def test_io_orientation_tol_drops_small_axes():
    aff = np.diag([1.0, 1.0, 1e-3, 1.0])
    aff[2, 2] = 0
    aff[2, 0] = 1e-9
    for tol in (None, 0.5):
        np.testing.assert_array_equal(
            orientations.io_orientation(aff, tol), nib_ornt.io_orientation(aff, tol)
        )


ALL_CODES = ["RAS", "LPI", "ASR", "PIL", "SRA", "ILP", "RPS", "LAI"]


@pytest.mark.parametrize("start", ALL_CODES)
@pytest.mark.parametrize("end", ALL_CODES[:4])
def test_axcodes_transform_apply_inverse_match_nibabel(start, end):
    start_ornt = orientations.axcodes2ornt(start)
    np.testing.assert_array_equal(start_ornt, nib_ornt.axcodes2ornt(start))
    assert orientations.ornt2axcodes(start_ornt) == nib_ornt.ornt2axcodes(start_ornt)
    end_ornt = orientations.axcodes2ornt(end)
    transform = orientations.ornt_transform(start_ornt, end_ornt)
    np.testing.assert_array_equal(transform, nib_ornt.ornt_transform(start_ornt, end_ornt))
    arr = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    ours = orientations.apply_orientation(arr, transform)
    np.testing.assert_array_equal(ours, nib_ornt.apply_orientation(arr, transform))
    assert np.shares_memory(ours, arr)  # a view, as nibabel's
    np.testing.assert_array_equal(
        orientations.inv_ornt_aff(transform, arr.shape),
        nib_ornt.inv_ornt_aff(transform, arr.shape),
    )


def test_custom_labels_and_dropped_axes_match_nibabel():
    labels = (("l", "r"), ("b", "f"), ("d", "u"))
    codes = ("r", None, "d")
    ornt = orientations.axcodes2ornt(codes, labels)
    np.testing.assert_array_equal(ornt, nib_ornt.axcodes2ornt(codes, labels))
    assert orientations.ornt2axcodes(ornt, labels) == nib_ornt.ornt2axcodes(ornt, labels)
    assert orientations.aff2axcodes(np.diag([-1, 2, 3, 1]), labels) == ("l", "f", "u")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: m.apply_orientation(np.zeros((2, 2)), [[0, 1], [1, 1], [2, 1]]), "fewer"),
        (lambda m: m.apply_orientation(np.zeros((2, 2)), [[0, 1], [np.nan, np.nan]]), "drop"),
        (lambda m: m.inv_ornt_aff([[0, 1], [np.nan, np.nan]], (2, 2)), "invert"),
    ],
)
def test_orientation_errors_as_nibabel(call, error):
    with pytest.raises(nib_ornt.OrientationError):
        call(nib_ornt)
    with pytest.raises(orientations.OrientationError, match=error):
        call(orientations)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.ornt_transform([[0, 1]], [[0, 1], [1, 1]]), "same shape"),
        (lambda m: m.ornt_transform([[0, 1], [1, 1]], [[0, 1], [2, 1]]), "Unable to find"),
        (lambda m: m.ornt2axcodes([[0.5, 1]]), "Non integer"),
        (lambda m: m.ornt2axcodes([[0, 2]]), "Direction"),
        (lambda m: m.axcodes2ornt("RAX"), "Not all axis codes"),
        (lambda m: m.axcodes2ornt("RA", (("R", "L"), ("A", "R"))), "Duplicate"),
    ],
)
def test_value_errors_as_nibabel(call, match):
    with pytest.raises(ValueError):
        call(nib_ornt)
    with pytest.raises(ValueError, match=match):
        call(orientations)


def test_apply_orientation_keeps_a_device_array_on_its_device(double):
    host = np.arange(24.0).reshape(2, 3, 4)
    ornt = orientations.axcodes2ornt("SLA")
    transform = orientations.ornt_transform(orientations.axcodes2ornt("RAS"), ornt)
    device_array = double.empty(host.shape, host.dtype)
    device_array.set(host)
    moved = orientations.apply_orientation(device_array, transform)
    assert isinstance(moved, double.ndarray)
    np.testing.assert_array_equal(moved.get(), nib_ornt.apply_orientation(host, transform))


@settings(max_examples=100, deadline=None)
@given(affines_(), st.integers(0, 2**32 - 1))
def test_affines_match_nibabel(aff, seed):
    points = np.random.default_rng(seed).normal(size=(5, 2, aff.shape[1] - 1))
    if aff.shape[0] == aff.shape[1]:
        np.testing.assert_array_equal(
            affines.apply_affine(aff, points), nib.affines.apply_affine(aff, points)
        )
        inplace = points.copy()
        returned = affines.apply_affine(aff, inplace, inplace=True)
        np.testing.assert_array_equal(returned, nib.affines.apply_affine(aff, points))
        assert np.shares_memory(returned, inplace)
    matrix, vector = affines.to_matvec(aff)
    for ours, theirs in zip((matrix, vector), nib.affines.to_matvec(aff), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        affines.from_matvec(matrix, vector), nib.affines.from_matvec(matrix, vector)
    )
    np.testing.assert_array_equal(affines.from_matvec(matrix), nib.affines.from_matvec(matrix))
    np.testing.assert_array_equal(affines.voxel_sizes(aff), nib.affines.voxel_sizes(aff))
