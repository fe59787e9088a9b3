"""Slicer → byte-run maths for Fortran-ordered arrays on disk.

Pure functions and one frozen dataclass; the only I/O is
:func:`read_plan_into`, which executes a plan against a file object.

A read is planned in two parts:

1. ``runs``: the byte ranges to read from the file, in increasing offset.
   Their concatenation is a Fortran-ordered array of shape ``raw_shape``.
2. ``post_slicer``: a basic numpy index that turns that raw array into exactly
   ``full_array[slicer]``.

Axes are split at a *cut* ``c``.  Axes ``0 .. c-2`` are read whole, axis
``c-1`` as the bounding box of its selection, so one run covers all of them;
axes ``c ..`` are read one selected index at a time, one run each.  The cut is
the one minimising ``bytes read + runs * gap_bytes``: a run is charged as much
as reading ``gap_bytes`` more, so tiny strided reads merge into one read while
a single volume of a 4D series reads exactly that volume's bytes.

>>> plan = plan_read((Ellipsis, 2), (4, 5, 6, 3), 2, 352)
>>> plan.runs
((832, 240),)
>>> plan.raw_shape, plan.out_shape
((4, 5, 6, 1), (4, 5, 6))
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from gpuimg.errors import TruncatedDataError

__all__ = [
    "DEFAULT_GAP_BYTES",
    "ReadPlan",
    "canonical_slicer",
    "is_direct",
    "plan_read",
    "read_plan_into",
    "selected_shape",
]

#: Cost of one extra run, in bytes of extra reading (see :func:`plan_read`).
DEFAULT_GAP_BYTES = 256 * 1024

Slicer = Any  # int | slice | None | Ellipsis | tuple of those


class _ReadableSeekable(Protocol):
    def seek(self, pos: int, whence: int = 0, /) -> int: ...
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _as_index(obj: object) -> int | None:
    """Return ``obj`` as a Python int if numpy would treat it as an integer index."""
    if isinstance(obj, (bool, np.bool_)):
        return None
    if isinstance(obj, (int, np.integer)):
        return operator.index(obj)
    if isinstance(obj, np.ndarray) and obj.ndim == 0 and obj.dtype.kind in "iu":
        return int(obj)  # numpy indexes with a 0-d integer array as with its value
    return None


def _normalise_slice(sl: slice, size: int) -> slice:
    """Return the canonical slice selecting the same elements, in the same order.

    Canonical: ``start`` and ``step`` are ints, ``stop`` is one step past the
    last element (``None`` when that is before index 0); empty selections are
    ``slice(0, 0, 1)``.
    """
    rng = range(*sl.indices(size))
    if len(rng) == 0:
        return slice(0, 0, 1)
    stop = rng[-1] + rng.step
    return slice(rng.start, stop if stop >= 0 else None, rng.step)


def canonical_slicer(slicer: Slicer, shape: Sequence[int]) -> tuple[Any, ...]:
    """Expand a basic numpy index into one entry per axis (plus any ``None``).

    Parameters
    ----------
    slicer : int, slice, None, Ellipsis or tuple of these
        A basic numpy index.
    shape : sequence of int
        Shape of the array being indexed.

    Returns
    -------
    tuple
        One entry per axis of ``shape`` in order, with ``None`` (new axes)
        kept where they were: non-negative ints and canonical slices
        (``start``/``step`` ints, ``stop`` one step past the last element or
        ``None``; empty selections as ``slice(0, 0, 1)``).

    Raises
    ------
    TypeError
        For fancy indices (lists, arrays, booleans), which the proxy does not
        support.
    IndexError
        For more indices than axes, several ellipses, or out-of-range ints.

    Examples
    --------
    >>> canonical_slicer((Ellipsis, -1), (4, 5, 6))
    (slice(0, 4, 1), slice(0, 5, 1), 5)
    >>> canonical_slicer((None, slice(None, None, -2)), (5,))
    (None, slice(4, None, -2))
    """
    items = slicer if isinstance(slicer, tuple) else (slicer,)
    for item in items:
        if item is None or item is Ellipsis or isinstance(item, slice):
            continue
        if _as_index(item) is None:
            raise TypeError(
                f"index {item!r} of type {type(item).__name__} is not supported by the proxy: "
                "only ints, slices, None and Ellipsis (basic indexing) are"
            )
    n_ellipsis = sum(item is Ellipsis for item in items)
    if n_ellipsis > 1:
        raise IndexError(f"an index can only have a single ellipsis ('...'), found {n_ellipsis}")
    n_real = sum(item is not None and item is not Ellipsis for item in items)
    if n_real > len(shape):
        raise IndexError(
            f"too many indices: array is {len(shape)}-dimensional, but {n_real} were indexed"
        )
    if n_ellipsis == 0:
        items = (*items, Ellipsis)
    out: list[Any] = []
    axis = 0
    for item in items:
        if item is None:
            out.append(None)
        elif item is Ellipsis:
            for _ in range(len(shape) - n_real):
                out.append(slice(0, shape[axis], 1))
                axis += 1
        elif isinstance(item, slice):
            out.append(_normalise_slice(item, shape[axis]))
            axis += 1
        else:
            index, size = operator.index(item), shape[axis]  # an int index: checked above
            if not -size <= index < size:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size {size}")
            out.append(index + size if index < 0 else index)
            axis += 1
    return tuple(out)


@dataclass(frozen=True)
class ReadPlan:
    """The bytes to read for one slicer, and how to finish the result.

    Attributes
    ----------
    runs : tuple of (int, int)
        ``(file_offset, nbytes)`` in increasing offset, adjacent runs merged.
    raw_shape : tuple of int
        Fortran-order shape of the concatenated bytes of ``runs``.
    post_slicer : tuple
        Basic numpy index that turns the raw array into ``full[slicer]``.
    out_shape : tuple of int
        Shape of the result.
    nbytes : int
        Total bytes read (the sum of the run lengths).
    direct : bool
        True when the raw block, reshaped to ``out_shape`` in Fortran order,
        already is the result (``post_slicer`` only drops or adds unit axes),
        so it can be read straight into the destination.
    """

    runs: tuple[tuple[int, int], ...]
    raw_shape: tuple[int, ...]
    post_slicer: tuple[Any, ...]
    out_shape: tuple[int, ...]
    nbytes: int
    direct: bool

    @cached_property
    def _run_starts(self) -> list[int]:
        """Position of each run's first byte within the raw block."""
        return list(itertools.accumulate((n for _, n in self.runs), initial=0))[:-1]


def _selection(item: Any) -> tuple[int, int, int]:
    """Return ``(first, count, step)`` of one canonical per-axis entry."""
    if isinstance(item, slice):
        count = len(range(item.start, -1 if item.stop is None else item.stop, item.step))
        return item.start, count, item.step
    return item, 1, 1


def selected_shape(slicer: Slicer, shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of ``full_array[slicer]`` for a basic numpy index.

    >>> selected_shape((None, Ellipsis, 2), (4, 5, 6))
    (1, 4, 5)
    """
    return _selected_shape(canonical_slicer(slicer, shape))


def _selected_shape(canonical: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(
        1 if item is None else _selection(item)[1]
        for item in canonical
        if not isinstance(item, int)
    )


def _box(first: int, count: int, step: int) -> tuple[int, int]:
    """Bounding box ``[lo, hi)`` of a non-empty selection."""
    last = first + (count - 1) * step
    return min(first, last), max(first, last) + 1


def _choose_cut(
    sels: list[tuple[int, int, int]], shape: Sequence[int], itemsize: int, gap_bytes: int
) -> int:
    """Pick the cut minimising ``bytes + runs * gap_bytes`` (ties: fewer runs)."""
    ndim = len(shape)
    best_cut, best_cost = 0, math.inf
    below = itemsize  # bytes of one index step along the current axis
    for cut in range(ndim + 1):
        if cut == 0:
            run = itemsize
        else:
            lo, hi = _box(*sels[cut - 1])
            run = below * (hi - lo)
            below *= shape[cut - 1]
        n_runs = math.prod(count for _, count, _ in sels[cut:])
        cost = n_runs * (run + gap_bytes)
        if cost <= best_cost:
            best_cut, best_cost = cut, cost
    return best_cut


def _run_offsets(
    sels: list[tuple[int, int, int]], shape: Sequence[int], itemsize: int, cut: int, base: int
) -> np.ndarray:
    """File offsets of the runs, one per selected index of the outer axes, ascending."""
    strides = itemsize * np.cumprod((1, *shape[:-1]), dtype=np.int64) if shape else ()
    offsets = np.array([base], dtype=np.int64)
    for axis in range(cut, len(shape)):
        first, count, step = sels[axis]
        lo, _ = _box(first, count, step)
        indices = lo + abs(step) * np.arange(count, dtype=np.int64)
        # Fortran order: earlier (inner) axes vary fastest.
        offsets = (offsets[:, None] + indices[None, :] * strides[axis]).ravel(order="F")
    return offsets


def _merge_runs(offsets: np.ndarray, run: int) -> tuple[tuple[int, int], ...]:
    """Merge equal-length runs at ascending ``offsets`` where they touch."""
    if offsets.size == 0:
        return ()
    breaks = np.flatnonzero(np.diff(offsets) != run) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [offsets.size]))
    return tuple(
        (int(offsets[s]), int(e - s) * run)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    )


def plan_read(
    slicer: Slicer,
    shape: Sequence[int],
    itemsize: int,
    offset: int,
    *,
    gap_bytes: int = DEFAULT_GAP_BYTES,
) -> ReadPlan:
    """Plan the file reads for ``full_array[slicer]`` of a Fortran-ordered array.

    Parameters
    ----------
    slicer : int, slice, None, Ellipsis or tuple of these
        A basic numpy index (see :func:`canonical_slicer`).
    shape : sequence of int
        Shape of the array on disk.
    itemsize : int
        Bytes per element.
    offset : int
        File offset of the array's first byte.
    gap_bytes : int, optional
        Cost of one extra run, counted in bytes: runs separated by less than
        this are read as one (reading the gap), larger gaps are skipped.

    Returns
    -------
    ReadPlan
        An empty selection gives a plan with no runs.

    Examples
    --------
    >>> plan = plan_read((slice(1, 3), 0), (4, 3), 1, 0)
    >>> plan.runs, plan.raw_shape, plan.post_slicer
    (((1, 2),), (2, 1), (slice(0, 2, 1), 0))
    """
    shape = tuple(int(n) for n in shape)
    canonical = canonical_slicer(slicer, shape)
    per_axis = [item for item in canonical if item is not None]
    sels = [_selection(item) for item in per_axis]
    out_shape = _selected_shape(canonical)
    if any(count == 0 for _, count, _ in sels):
        return ReadPlan((), out_shape, (), out_shape, 0, True)

    cut = _choose_cut(sels, shape, itemsize, gap_bytes)
    raw_shape: list[int] = []
    post_axes: list[Any] = []
    base = offset
    stride = itemsize
    for axis, (item, (first, count, step)) in enumerate(zip(per_axis, sels, strict=True)):
        if axis < cut - 1:  # read whole
            raw_shape.append(shape[axis])
            post_axes.append(item)
        elif axis == cut - 1:  # read its bounding box
            lo, hi = _box(first, count, step)
            base += lo * stride
            raw_shape.append(hi - lo)
            if isinstance(item, int):
                post_axes.append(item - lo)
            else:
                stop = first - lo + count * step
                post_axes.append(slice(first - lo, stop if stop >= 0 else None, step))
        else:  # one run per selected index, in increasing order
            raw_shape.append(count)
            if isinstance(item, int):
                post_axes.append(0)
            else:
                post_axes.append(slice(None, None, -1 if step < 0 else 1))
        stride *= shape[axis]
    run = itemsize * math.prod(raw_shape[:cut])
    runs = _merge_runs(_run_offsets(sels, shape, itemsize, cut, base), run)

    post_iter = iter(post_axes)
    post_slicer = tuple(None if item is None else next(post_iter) for item in canonical)
    return ReadPlan(
        runs=runs,
        raw_shape=tuple(raw_shape),
        post_slicer=post_slicer,
        out_shape=out_shape,
        nbytes=sum(n for _, n in runs),
        direct=is_direct(post_slicer, tuple(raw_shape)),
    )


def is_direct(post_slicer: tuple[Any, ...], raw_shape: tuple[int, ...]) -> bool:
    """True when ``raw[post_slicer]`` holds every value of ``raw`` in its order, so only unit axes change.

    Then the raw block, reshaped to the result's shape in Fortran order, is the result, and can be
    read straight into it (see :attr:`ReadPlan.direct`).

    >>> is_direct((slice(0, 4, 1), 0, None), (4, 1)), is_direct((slice(None, None, -1),), (4,))
    (True, False)
    """
    axes = [p for p in post_slicer if p is not None]
    if len(axes) > len(raw_shape) or Ellipsis in axes:
        return False
    axes += [slice(None)] * (len(raw_shape) - len(axes))
    return all(
        (isinstance(p, int) and n == 1)
        or (isinstance(p, slice) and p.step in (None, 1) and len(range(*p.indices(n))) == n)
        for p, n in zip(axes, raw_shape, strict=True)
    )


def read_plan_into(
    fileobj: _ReadableSeekable,
    plan: ReadPlan,
    out: memoryview,
    start: int = 0,
    *,
    name: str | None = None,
) -> None:
    """Read bytes ``[start, start + len(out))`` of a plan's raw block into ``out``.

    Seeks only when the next run does not follow the current position, so a
    plan read in order, in one call or in consecutive chunks, only ever seeks
    forward (cheap for gzip readers).

    Parameters
    ----------
    fileobj : file object
        Binary file with ``seek`` and ``readinto``.
    plan : ReadPlan
        The plan whose raw block is read.
    out : memoryview
        Writable, C-contiguous destination; its byte length sets how much is read.
    start : int, optional
        Position within the raw block of the first byte to read.
    name : str, optional
        File name for error messages (default: ``fileobj.name`` if any).

    Raises
    ------
    ValueError
        If the requested range is outside the raw block.
    TruncatedDataError
        If the file ends before a run does.
    """
    dest = memoryview(out).cast("B")
    stop = start + dest.nbytes
    if start < 0 or stop > plan.nbytes:
        raise ValueError(
            f"byte range [{start}, {stop}) is outside the plan's raw block of {plan.nbytes} bytes"
        )
    if start == stop:
        return
    starts = plan._run_starts
    run_index = bisect.bisect_right(starts, start) - 1
    filled = 0
    position = None
    while filled < dest.nbytes:
        file_offset, run_bytes = plan.runs[run_index]
        skip = start + filled - starts[run_index]
        want = min(run_bytes - skip, dest.nbytes - filled)
        target = file_offset + skip
        if position != target:
            fileobj.seek(target)
        _readinto_exactly(fileobj, dest[filled : filled + want], target, name)
        filled += want
        position = target + want
        run_index += 1


def _readinto_exactly(
    fileobj: _ReadableSeekable, dest: memoryview, file_offset: int, name: str | None
) -> None:
    """Fill ``dest`` from ``fileobj``, looping over short reads."""
    got = 0
    while got < dest.nbytes:
        n = fileobj.readinto(dest[got:])
        if not n:
            name = name or getattr(fileobj, "name", repr(fileobj))
            raise TruncatedDataError(
                f"{name}: data end at byte {file_offset + got}, "
                f"expected {dest.nbytes - got} more bytes up to {file_offset + dest.nbytes}"
            )
        got += n
