"""NIfTI-1 slice timing: the acquisition time of each slice from ``slice_code``, duration, start and end.

A mixin for :class:`~gpuimg.headers.nifti1.Nifti1Header` with nibabel's methods and errors:
``get_n_slices``, ``get_slice_duration`` / ``set_slice_duration``, ``get_slice_times`` /
``set_slice_times``. Slices before ``slice_start`` and after ``slice_end`` ("padding") have no time (None).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gpuimg.errors import HeaderDataError
from gpuimg.headers.codes import SLICE_ORDER_CODES


def acquisition_order(label: str, count: int) -> np.ndarray:
    """For each of ``count`` timed slices (in file order), its rank in time under the ``label`` scheme.

    Examples
    --------
    >>> acquisition_order('alternating increasing', 5).tolist()
    [0, 3, 1, 4, 2]
    """
    evens, odds = list(range(0, count, 2)), list(range(1, count, 2))
    down_from_last = list(range(count - 1, -1, -2))
    down_from_second_last = list(range(count - 2, -1, -2))
    slices_in_time_order = {
        "sequential increasing": list(range(count)),
        "sequential decreasing": list(range(count))[::-1],
        "alternating increasing": evens + odds,
        "alternating decreasing": down_from_last + down_from_second_last,
        "alternating increasing 2": odds + evens,
        "alternating decreasing 2": down_from_second_last + down_from_last,
    }.get(label)
    if slices_in_time_order is None:
        raise HeaderDataError(f"slice ordering {label!r} has no slice times")
    return np.argsort(slices_in_time_order)


class SliceTiming:
    """Slice-timing methods over a NIfTI-1 structured header (``dim_info``, ``slice_*`` fields)."""

    if TYPE_CHECKING:  # provided by the header class this is mixed into
        _structarr: np.ndarray

        def get_dim_info(self) -> tuple[int | None, int | None, int | None]: ...

        def get_data_shape(self) -> tuple[int, ...]: ...

    def _slice_axis(self) -> int:
        _, _, axis = self.get_dim_info()
        if axis is None:
            raise HeaderDataError(
                "slice dimension not set in header dim_info (set_dim_info(slice=))"
            )
        return axis

    def get_n_slices(self) -> int:
        """The number of slices: the data's length along the ``dim_info`` slice axis."""
        axis = self._slice_axis()
        shape = self.get_data_shape()
        if axis >= len(shape):
            raise HeaderDataError(f"slice dimension index ({axis}) outside shape tuple ({shape})")
        return shape[axis]

    def get_slice_duration(self) -> float:
        """Time to acquire one slice (needs the slice axis set in ``dim_info``)."""
        self._slice_axis()
        return float(self._structarr["slice_duration"])

    def set_slice_duration(self, duration: float) -> None:
        """Set the time to acquire one slice (needs the slice axis set in ``dim_info``)."""
        self._slice_axis()
        self._structarr["slice_duration"] = duration

    def get_slice_times(self) -> tuple[float | None, ...]:
        """Acquisition time of each slice in file order, from 0; None for padding slices."""
        count = self.get_n_slices()
        duration = self.get_slice_duration()
        label = SLICE_ORDER_CODES.label(int(self._structarr["slice_code"]))
        if label == "unknown":
            raise HeaderDataError('cannot get slice times when slice code is "unknown"')
        start, end = int(self._structarr["slice_start"]), int(self._structarr["slice_end"])
        if start < 0:
            raise HeaderDataError(f"slice_start is {start}, expected >= 0")
        end = count - 1 if end == 0 else end
        if end < start:
            raise HeaderDataError(f"slice_end is {end}, expected >= slice_start ({start})")
        times = acquisition_order(label, end - start + 1) * duration
        return (None,) * start + tuple(times.tolist()) + (None,) * (count - end - 1)

    def set_slice_times(self, slice_times: Sequence[float | None]) -> None:
        """Set ``slice_code``, ``slice_start``, ``slice_end`` and ``slice_duration`` from slice times.

        Raises
        ------
        HeaderDataError
            When the times are not one per slice, are all None or have None between times, are not
            evenly spaced, or fit no slice ordering scheme.
        """
        count = self.get_n_slices()
        if len(slice_times) != count:
            raise HeaderDataError(f"{len(slice_times)} slice times given for {count} slices")
        timed_at = [i for i, time in enumerate(slice_times) if time is not None]
        if not timed_at:
            raise HeaderDataError("not all slice times can be None")
        start, end = timed_at[0], timed_at[-1]
        timed = slice_times[start : end + 1]
        if len(timed_at) != len(timed):
            raise HeaderDataError("cannot have None in the middle of the slice times")
        steps = np.diff(np.sort(np.asarray(timed, dtype=np.float64)))
        if not np.allclose(np.diff(steps), 0):
            raise HeaderDataError("slice times are not compatible with a single slice duration")
        duration = np.mean(steps)
        ranks = np.round(np.array(timed) / duration)
        matching = [
            label
            for label in SLICE_ORDER_CODES.labels()
            if label != "unknown" and np.all(ranks == acquisition_order(label, len(timed)))
        ]
        if not matching:
            raise HeaderDataError(f"slice ordering of {ranks} fits with no known scheme")
        if len(matching) > 1:
            warnings.warn(
                f"Multiple slice orders satisfy: {', '.join(matching)}. Choosing the first one",
                stacklevel=2,
            )
        self._structarr["slice_start"] = start
        self._structarr["slice_end"] = end
        self._structarr["slice_duration"] = duration
        self._structarr["slice_code"] = SLICE_ORDER_CODES.code(matching[0])
