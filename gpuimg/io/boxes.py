"""Boxes of an array: Fortran-order element ranges that are each a view of any strided array.

A device read that writes into a strided ``out`` (a slot of the loader's C-ordered batch) cuts the
raw block into such boxes (:func:`box_ranges`), so each chunk it uploads lands in one view
(:func:`box_view`) of ``out``. Pure index maths, no backend.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["box_axis", "box_ranges", "box_view"]


def box_axis(shape: tuple[int, ...], limit: int) -> tuple[int, int]:
    """``(axis, inner)``: the first ``axis`` axes (``inner`` elements together) fit ``limit``, not one more."""
    inner, axis = 1, 0
    while axis < len(shape) and inner * shape[axis] <= limit:
        inner *= shape[axis]
        axis += 1
    return axis, inner


def box_ranges(shape: tuple[int, ...], limit: int) -> list[tuple[int, int]]:
    """Fortran-order element ranges, each a box of an array of ``shape``, of at most ``limit`` where possible.

    Each range is whole along the first axes (see :func:`box_axis`), a run of indices along the next
    one and a single index along the rest, so it is a view of any strided array (:func:`box_view`).
    """
    axis, inner = box_axis(shape, limit)
    total = math.prod(shape)
    if axis == len(shape):
        return [(0, total)] if total else []
    length, rows = shape[axis], max(1, limit // inner)
    return [
        (base + first * inner, base + min(first + rows, length) * inner)
        for base in range(0, total, inner * length)
        for first in range(0, length, rows)
    ]


def box_view(array: Any, first: int, stop: int, limit: int) -> Any:
    """The view of ``array`` holding Fortran-order elements ``[first, stop)`` of :func:`box_ranges`."""
    shape = tuple(array.shape)
    axis, inner = box_axis(shape, limit)
    if axis == len(shape):
        return array
    block = inner * shape[axis]
    outer = np.unravel_index(first // block, shape[axis + 1 :], order="F")
    row = first % block // inner
    rows = slice(row, row + (stop - first) // inner)
    return array[(slice(None),) * axis + (rows, *(int(i) for i in outer))]
