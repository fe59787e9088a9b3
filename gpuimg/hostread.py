"""Host reads: the read pipeline's sinks that scale into the caller's numpy array.

:func:`read_into` reads what a :class:`~gpuimg.io.slicing.ReadPlan` selects from a
:class:`~gpuimg.io.datablock.DataBlock` and scales it into ``out``: chunk by chunk straight into place
when ``out`` lies in the raw block's order (:class:`ScaleSink`), else through one staging buffer
that is scaled (and transposed) into ``out`` in cache-sized tiles.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from gpuimg.io.buffers import default_pool
from gpuimg.io.datablock import DataBlock
from gpuimg.io.pipeline import RawSink, byte_view, run
from gpuimg.io.slicing import ReadPlan
from gpuimg.scaling import ScalePlan, scale_into, scale_transposed_into

__all__ = ["ScaleSink", "read_into"]


class ScaleSink:
    """Scale each chunk of the raw block into its place in ``flat_out`` (the result, flat in its order).

    Chunks are read into pooled staging buffers small enough to stay in cache between the read and
    the scaling; any thread may scale any chunk.
    """

    parallel = True
    overlap = True

    def __init__(self, plan: ScalePlan, flat_out: np.ndarray) -> None:
        self._plan, self._flat_out = plan, flat_out
        self.itemsize = plan.raw_dtype.itemsize

    def chunk_bounds(self, nbytes: int) -> None:
        """The pipeline's own cuts."""

    @contextmanager
    def staging(self, start: int, nbytes: int) -> Iterator[np.ndarray]:
        with default_pool.borrow(nbytes) as buffer:
            yield buffer

    def put(self, start: int, raw: np.ndarray) -> None:
        values = raw.view(self._plan.raw_dtype)
        first = start // self.itemsize
        scale_into(values, self._plan, self._flat_out[first : first + values.size], threads=1)


def read_into(
    block: DataBlock, read: ReadPlan, plan: ScalePlan, out: np.ndarray, *, whole: bool
) -> np.ndarray:
    """Read the bytes ``read`` plans from ``block``, scale them by ``plan`` into ``out``; return ``out``.

    Parameters
    ----------
    block : DataBlock
        The data file.
    read : ReadPlan
        The selection (see :func:`gpuimg.io.slicing.plan_read`); ``whole`` when it is everything.
    plan : ScalePlan
        From :func:`gpuimg.scaling.plan_scaling` for the on-disk dtype.
    out : numpy.ndarray
        Writeable, of ``read.out_shape`` and ``plan.out_dtype``, any strides.
    """
    itemsize = plan.raw_dtype.itemsize
    if read.direct and out.flags.f_contiguous:
        # The raw block, in Fortran order, is the result: chunks go straight into place.
        flat = out.reshape(-1, order="F")
        sink = RawSink(byte_view(flat), itemsize) if plan.is_identity else ScaleSink(plan, flat)
        with block.source(read, whole=whole) as source:
            run(source, sink)
        return out
    with default_pool.borrow(read.nbytes) as staging:
        with block.source(read, whole=whole) as source:
            run(source, RawSink(staging, itemsize))
        raw = staging.view(plan.raw_dtype).reshape(read.raw_shape, order="F")[read.post_slicer]
        # Scaling into another layout (C order, a crop or pad) transposes in the same pass.
        scale_transposed_into(raw, plan, out)
    return out
