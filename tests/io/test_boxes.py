"""Boxes of an array (the device sink's chunks into a strided ``out``): pure index maths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpuimg.io import boxes


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 12, 20, 60, 1000])
@pytest.mark.parametrize("shape", [(5, 4, 3), (1, 7), (6,), (2, 1, 3, 2)])
def test_box_ranges_cut_any_array_into_views(shape, limit) -> None:
    """Consecutive ranges cover every element once, each the box view of any strided array."""
    ranges = boxes.box_ranges(shape, limit)
    total = math.prod(shape)
    assert [start for start, _ in ranges] == [0] + [stop for _, stop in ranges[:-1]]
    assert ranges[-1][1] == total
    axis, inner = boxes.box_axis(shape, limit)
    assert all(stop - start <= max(limit, inner) for start, stop in ranges)
    values = np.arange(total).reshape(shape, order="F")
    strided = np.empty((2, *shape))[1]  # C order: F-order elements are not a flat range of it
    strided[...] = values
    for start, stop in ranges:
        view = boxes.box_view(strided, start, stop, limit)
        assert np.array_equal(view.ravel(order="F"), np.arange(start, stop))
