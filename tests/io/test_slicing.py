"""Tests for gpuimg.io.slicing: slicer canonicalisation and read plans."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuimg.errors import TruncatedDataError
from gpuimg.io.slicing import (
    DEFAULT_GAP_BYTES,
    ReadPlan,
    canonical_slicer,
    plan_read,
    read_plan_into,
)

DTYPES = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.float64}


class RecordingFile(io.BytesIO):
    """BytesIO that records seek targets and bytes read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.seeks: list[int] = []
        self.bytes_read = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self.seeks.append(pos)
        return super().seek(pos, whence)

    def readinto(self, buffer) -> int:
        n = super().readinto(buffer)
        self.bytes_read += n
        return n


@st.composite
def shape_and_slicer(draw):
    ndim = draw(st.integers(1, 7))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    items = []
    for size in shape:
        kind = draw(st.sampled_from(["int", "slice", "slice", "full"]))
        if kind == "int" and size > 0:
            items.append(draw(st.integers(-size, size - 1)))
        elif kind == "full":
            items.append(slice(None))
        else:
            bound = st.none() | st.integers(-size - 2, size + 2)
            step = draw(st.none() | st.integers(-3, 3).filter(bool))
            items.append(slice(draw(bound), draw(bound), step))
    n_keep = draw(st.integers(0, ndim))
    if draw(st.booleans()):  # replace a trailing or middle run of axes with Ellipsis
        start = draw(st.integers(0, n_keep))
        items = [*items[:start], Ellipsis, *items[n_keep:]] if n_keep < ndim else items
    else:
        items = items[:n_keep]
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    slicer = tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]
    return shape, slicer


def execute(plan: ReadPlan, data: bytes, dtype, chunks: int = 1) -> np.ndarray:
    """Read ``plan`` from ``data`` in ``chunks`` consecutive pieces; apply post_slicer."""
    fobj = RecordingFile(data)
    raw = np.zeros(plan.nbytes, np.uint8)
    bounds = np.linspace(0, plan.nbytes, chunks + 1).astype(int)
    for start, stop in itertools.pairwise(bounds):
        read_plan_into(fobj, plan, memoryview(raw[start:stop]), start)
    assert fobj.seeks == sorted(fobj.seeks)
    assert fobj.bytes_read == plan.nbytes
    result = raw.view(dtype).reshape(plan.raw_shape, order="F")[plan.post_slicer]
    if plan.direct:
        direct = raw.view(dtype).reshape(plan.out_shape, order="F")
        np.testing.assert_array_equal(direct, result)
    return result


@settings(max_examples=250, deadline=None)
@given(
    shape_and_slicer(),
    st.sampled_from(sorted(DTYPES)),
    st.integers(0, 40),
    st.sampled_from([0, 7, 64, DEFAULT_GAP_BYTES]),
    st.integers(1, 3),
)
def test_plan_matches_numpy(case, itemsize, offset, gap_bytes, chunks):
    shape, slicer = case
    dtype = DTYPES[itemsize]
    arr = np.arange(math.prod(shape), dtype=dtype).reshape(shape, order="F")
    expected = arr[slicer]
    data = b"\xa5" * offset + arr.tobytes(order="F")
    plan = plan_read(slicer, shape, itemsize, offset, gap_bytes=gap_bytes)

    assert plan.out_shape == expected.shape
    assert plan.nbytes == sum(n for _, n in plan.runs) == math.prod(plan.raw_shape) * itemsize
    ends = [o + n for o, n in plan.runs]
    assert all(
        end < nxt for end, (nxt, _) in zip(ends[:-1], plan.runs[1:], strict=True)
    )  # sorted and merged
    assert all(offset <= o and o + n <= len(data) for o, n in plan.runs)
    result = execute(plan, data, dtype, chunks)
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


@settings(max_examples=100, deadline=None)
@given(shape_and_slicer())
def test_canonical_slicer_is_equivalent_and_idempotent(case):
    shape, slicer = case
    arr = np.arange(math.prod(shape)).reshape(shape)
    canonical = canonical_slicer(slicer, shape)
    assert sum(item is not None for item in canonical) == len(shape)
    np.testing.assert_array_equal(arr[canonical], arr[slicer])
    assert arr[canonical].shape == arr[slicer].shape
    assert canonical_slicer(canonical, shape) == canonical
    per_axis = [item for item in canonical if item is not None]
    assert all(isinstance(i, slice) or 0 <= i < n for i, n in zip(per_axis, shape, strict=True))


def test_canonical_examples():
    assert canonical_slicer((), (2, 3)) == (slice(0, 2, 1), slice(0, 3, 1))
    assert canonical_slicer(-1, (4, 3)) == (3, slice(0, 3, 1))
    assert canonical_slicer(np.int64(1), (4,)) == (1,)
    assert canonical_slicer(slice(None, None, -1), (3,)) == (slice(2, None, -1),)
    assert canonical_slicer(slice(5, 1), (9,)) == (slice(0, 0, 1),)
    assert canonical_slicer((Ellipsis, None), (2,)) == (slice(0, 2, 1), None)


@pytest.mark.parametrize(
    "slicer", [[0, 1], np.array([0]), True, np.bool_(False), (slice(None), [1]), "a", 1.0]
)
def test_fancy_indexing_is_a_type_error(slicer):
    with pytest.raises(TypeError, match="not supported by the proxy"):
        canonical_slicer(slicer, (3, 3))


@pytest.mark.parametrize(
    "slicer", [3, -4, (0, 3), (0, 0, 0), (Ellipsis, 0, Ellipsis), (None, 0, 0, slice(None))]
)
def test_index_errors_like_numpy(slicer):
    arr = np.zeros((3, 3))
    with pytest.raises(IndexError):
        arr[slicer]
    with pytest.raises(IndexError):
        canonical_slicer(slicer, arr.shape)


def test_single_volume_reads_exactly_its_bytes():
    shape = (64, 64, 40, 10)
    vol = 64 * 64 * 40 * 2
    for t in (0, 3, -1):
        plan = plan_read((Ellipsis, t), shape, 2, 352)
        assert plan.runs == ((352 + (t % 10) * vol, vol),)
        assert plan.direct and plan.out_shape == shape[:3]


def test_big_4d_volume_and_time_series_read_little():
    shape = (256, 256, 256, 100)
    total = math.prod(shape) * 2
    vol = total // 100
    assert plan_read((slice(None), slice(None), slice(None), 42), shape, 2, 0).nbytes == vol
    slab = plan_read((slice(None), slice(None), slice(100, 110), 5), shape, 2, 0)
    assert slab.nbytes == vol * 10 // 256 and len(slab.runs) == 1
    series = plan_read((10, 20, 30), shape, 2, 0)
    assert series.nbytes < total / 10_000
    volumes = plan_read((Ellipsis, slice(10, 20)), shape, 2, 0)
    assert volumes.runs == ((10 * vol, 10 * vol),)


def test_strided_tiny_reads_merge_into_one():
    plan = plan_read((slice(None, None, 2), slice(1, 9, 3)), (10, 10), 4, 0)
    assert len(plan.runs) == 1
    reversed_plan = plan_read((Ellipsis, slice(None, None, -1)), (8, 8, 4), 2, 0)
    assert reversed_plan.runs == ((0, 8 * 8 * 4 * 2),)
    assert not reversed_plan.direct


def test_large_gaps_are_skipped():
    shape = (128, 128, 20)
    plan = plan_read((Ellipsis, slice(0, 20, 5)), shape, 4, 0, gap_bytes=1024)
    plane = 128 * 128 * 4
    assert plan.runs == tuple((k * plane, plane) for k in range(0, 20, 5))


def test_empty_selection_reads_nothing():
    plan = plan_read((slice(2, 2), 0), (5, 5), 8, 100)
    assert plan.runs == () and plan.nbytes == 0 and plan.out_shape == (0,)
    assert np.zeros(plan.raw_shape)[plan.post_slicer].shape == (0,)
    assert plan_read((), (3, 0, 2), 1, 0).out_shape == (3, 0, 2)


def test_zero_dimensional_array():
    plan = plan_read((), (), 8, 16)
    assert plan.runs == ((16, 8),) and plan.out_shape == () and plan.raw_shape == ()
    plan = plan_read(None, (), 8, 16)
    assert plan.out_shape == (1,)


def test_read_range_checks_and_truncation():
    plan = plan_read((), (4, 4), 2, 10)
    with pytest.raises(ValueError, match="outside the plan"):
        read_plan_into(io.BytesIO(bytes(100)), plan, memoryview(bytearray(4)), 30)
    short = io.BytesIO(bytes(20))
    short.name = "short.nii"
    with pytest.raises(TruncatedDataError, match="short.nii"):
        read_plan_into(short, plan, memoryview(bytearray(32)))
    read_plan_into(short, plan, memoryview(bytearray(0)), 32)  # empty range: no I/O


def test_zero_dimensional_integer_arrays_index_as_ints():
    assert canonical_slicer((np.array(1), np.array(-1, np.int8)), (3, 4)) == (1, 3)
    with pytest.raises(TypeError, match="not supported by the proxy"):
        canonical_slicer(np.array([1]), (3,))
