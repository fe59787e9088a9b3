"""An optional compiled kernel: scale, cast and transpose a 3-D volume in one pass (numba).

gpuimg has no compiled core of its own. When `numba <https://numba.pydata.org>`_ is installed
(``pip install "gpuimg[fast]"``), scaling a Fortran-ordered volume into a C-ordered one (the
default layout of :class:`gpuimg.Loader` batches) runs in a kernel compiled on first use: each plane
of the volume is read once in its own order, eight rows at a time, converted and interleaved into a
scratch block that stays in cache, and written from there in the destination's order. numpy has no
blocked transposition, so without numba
the same pass is made of numpy calls on cache-sized tiles (:func:`gpuimg.transpose.convert_between_orders`),
with the same values: the kernel does nibabel's arithmetic in the same dtypes, one rounding per step,
and takes only the plans where that is so (:func:`scale_reversed_into` says False otherwise).

The kernel is compiled once per process for each combination of dtypes and memory layouts, and
kept in numba's on-disk cache, so later processes load it instead (``NUMBA_CACHE_DIR`` moves the
cache). It releases the GIL, so worker threads run it in parallel, and it starts no threads of its
own, so it is safe in forked processes (a ``DataLoader`` worker). ``NUMBA_DISABLE_JIT=1`` makes
gpuimg use the numpy path.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from gpuimg.io.buffers import default_pool
from gpuimg.transpose import order_of

if TYPE_CHECKING:
    from gpuimg.scaling import ScalePlan

__all__ = ["compiled_kernel", "kernel_steps", "scale_flat_into", "scale_reversed_into"]

#: Bytes of the scratch blocks: whole planes of a 256x256 float32 volume, inside a core's L2.
TILE_BYTES = 256 * 1024

#: Rows of a plane the transposing kernel interleaves at once: one 256-bit vector of float32.
LANES = 8


def scale_reversed_into(
    raw: np.ndarray, plan: ScalePlan, out: np.ndarray, *, share: tuple[int, int] = (0, 1)
) -> bool:
    """Scale Fortran-ordered 3-D ``raw`` into C-ordered ``out`` with the compiled kernel, if it can.

    Parameters
    ----------
    raw : numpy.ndarray
        Raw values, first axis fastest in memory (any strides otherwise).
    plan : ScalePlan
        The plan to apply, already narrowed (:func:`gpuimg.scaling.equivalent_narrow_plan`).
    out : numpy.ndarray
        Writeable output of ``raw.shape`` and ``plan.out_dtype``, last axis fastest in memory.
    share : (int, int)
        ``(index, count)``: fill only share ``index`` of ``count`` equal shares (ranges of the
        second axis), for a caller that splits the work between threads.

    Returns
    -------
    bool
        False, with nothing written, when numba is missing or the arrays or the plan are not the
        kernel's (see :func:`kernel_steps`); True when ``out`` (its share) is filled.
    """
    steps = kernel_steps(raw, plan, out)
    kernel = compiled_kernel() if steps is not None else None
    if kernel is None or steps is None:
        return False
    index, count = share
    per_share = -(-raw.shape[1] // count)
    start, stop = index * per_share, min((index + 1) * per_share, raw.shape[1])
    if start >= stop:
        return True
    work = steps[0]
    slope = work.type(1 if plan.slope is None else plan.slope)
    inter = work.type(0 if plan.inter is None else plan.inter)
    width = raw.shape[0]
    block_bytes = LANES * width * work.itemsize
    blocks = max(1, min(-(-raw.shape[2] // LANES), TILE_BYTES // block_bytes))
    scale, shift = plan.slope is not None, plan.inter is not None
    with default_pool.borrow(blocks * block_bytes) as scratch:
        tile = scratch.view(work).reshape(blocks, LANES * width)
        kernel(raw.T, out, slope, inter, scale, shift, tile, start, stop)
    return True


def kernel_steps(raw: np.ndarray, plan: ScalePlan, out: np.ndarray) -> tuple[np.dtype, ...] | None:
    """``(tile dtype, out dtype)`` when the kernel gives numpy's values for ``plan``, else None.

    The transposing kernel takes 3-D Fortran-ordered ``raw`` and C-ordered ``out`` of one shape, and
    the plans :func:`_dtype_steps` accepts.
    """
    if raw.ndim != 3 or out.ndim != 3 or raw.shape != out.shape or raw.size == 0:
        return None
    if not (order_of(raw) == "F" and order_of(out) == "C" and out.flags.writeable):
        return None
    return _dtype_steps(raw.dtype, plan, out.dtype)


def _dtype_steps(
    raw_dtype: np.dtype, plan: ScalePlan, out_dtype: np.dtype
) -> tuple[np.dtype, ...] | None:
    """``(scratch dtype, out dtype)`` when a kernel gives numpy's values for ``plan``, else None.

    numpy applies the plan as: cast the raw values to the work dtype, multiply, add (each rounded
    in the work dtype), then cast to each dtype of ``plan.casts`` in turn. The kernels do the same
    with one intermediate dtype (their scratch) and the output's, so they take plans of at most
    two dtype steps; native-endian integer or float (32 or 64 bit) data; and no float-to-integer
    cast, whose out-of-range results numpy does not define.
    """
    work = (plan.work_dtype,) if plan.work_dtype is not None else ()
    steps = (*work, *plan.casts) or (raw_dtype,)
    if len(steps) > 2 or steps[-1] != out_dtype:
        return None
    chain = (raw_dtype, *steps)
    if not all(_kernel_dtype(dtype) for dtype in chain):
        return None
    if any(a.kind == "f" and b.kind in "iu" for a, b in itertools.pairwise(chain)):
        return None
    return steps[0], steps[-1]


def scale_flat_into(raw: np.ndarray, plan: ScalePlan, out: np.ndarray) -> bool:
    """Scale ``raw`` into ``out`` of the same memory order with a compiled loop, if it can.

    One pass over memory, where numpy makes one per operation (1.7 ms against 3.7 for an int16
    160x192x160 volume into float32), with numpy's values (the plans of :func:`_dtype_steps`).

    Parameters
    ----------
    raw : numpy.ndarray
        Raw values, C- or Fortran-contiguous.
    plan : ScalePlan
        The plan to apply, already narrowed (:func:`gpuimg.scaling.equivalent_narrow_plan`).
    out : numpy.ndarray
        Writeable output of ``raw.shape`` and ``plan.out_dtype``, contiguous in ``raw``'s order.

    Returns
    -------
    bool
        False, with nothing written, when numba is missing or the arrays or the plan are not the
        kernel's; True when ``out`` is filled.
    """
    order = order_of(raw)
    if raw.shape != out.shape or raw.size == 0 or not out.flags.writeable:
        return False
    if not all(a.flags.f_contiguous if order == "F" else a.flags.c_contiguous for a in (raw, out)):
        return False
    steps = _dtype_steps(raw.dtype, plan, out.dtype)
    if steps is None:
        return False
    kernel = compiled_kernel("scale_flat")
    if kernel is None:
        return False
    work = steps[0]
    slope = work.type(1 if plan.slope is None else plan.slope)
    inter = work.type(0 if plan.inter is None else plan.inter)
    flat_raw, flat_out = raw.reshape(-1, order=order), out.reshape(-1, order=order)
    cell = np.empty(1, work)
    kernel(flat_raw, flat_out, slope, inter, plan.slope is not None, plan.inter is not None, cell)
    return True


def _kernel_dtype(dtype: np.dtype) -> bool:
    native = dtype.byteorder in "=|" or dtype.isnative
    return native and (dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize in (4, 8)))


@functools.cache
def compiled_kernel(name: str = "reverse_planes") -> Callable[..., None] | None:
    """A kernel of this module (``'reverse_planes'`` or ``'scale_flat'``), compiled lazily per
    signature; None without numba (or with its JIT off)."""
    try:
        import numba
    except ImportError:
        return None
    if getattr(numba.config, "DISABLE_JIT", False):  # set at run time from NUMBA_DISABLE_JIT
        return None
    function = _KERNELS[name]
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # numba finds no writable cache folder: compile in every process instead
        return numba.njit(nogil=True)(function)


def _reverse_planes(src: Any, dst: Any, slope, inter, scale, shift, tile, start, stop) -> None:
    """``dst[x, y, z] = (tile dtype(src[z, y, x]) * slope + inter)`` for ``start <= y < stop``.

    ``src`` is the source seen in its memory order (last axis fastest); ``tile`` holds blocks of
    ``LANES`` (8) rows of a plane, one block per row of ``tile``. For each plane ``y``, eight rows of
    ``src`` at a time are read contiguously and interleaved into a block (``block[8 * x + j]`` is row
    ``j``'s value ``x``): with the eight rows written out as separate arrays, the compiler vectorises
    this loop as an 8x8 transposition in registers. The multiply and add then run over the block, as
    separate roundings, as numpy's. Last, each row ``x`` of the output plane is written contiguously,
    eight values of a block at a time. A last block of fewer than eight rows repeats its last row.
    """
    depth, _, width = src.shape
    rows = tile.shape[0] * 8
    for y in range(start, stop):
        for first in range(0, depth, rows):
            count = min(rows, depth - first)
            last = first + count - 1
            for b in range(-(-count // 8)):
                block = tile[b]
                k = first + 8 * b
                r0, r1, r2, r3 = (
                    src[k, y],
                    src[min(k + 1, last), y],
                    src[min(k + 2, last), y],
                    src[min(k + 3, last), y],
                )
                r4, r5, r6, r7 = (
                    src[min(k + 4, last), y],
                    src[min(k + 5, last), y],
                    src[min(k + 6, last), y],
                    src[min(k + 7, last), y],
                )
                for x in range(width):
                    block[8 * x] = r0[x]
                    block[8 * x + 1] = r1[x]
                    block[8 * x + 2] = r2[x]
                    block[8 * x + 3] = r3[x]
                    block[8 * x + 4] = r4[x]
                    block[8 * x + 5] = r5[x]
                    block[8 * x + 6] = r6[x]
                    block[8 * x + 7] = r7[x]
                if scale:
                    for i in range(8 * width):
                        block[i] = block[i] * slope
                if shift:
                    for i in range(8 * width):
                        block[i] = block[i] + inter
            whole = count // 8
            for x in range(width):
                target = dst[x, y, first:]
                for b in range(whole):
                    # Loaded before any store, so the compiler may move them as one vector.
                    lane = tile[b, 8 * x :]
                    v0, v1, v2, v3 = lane[0], lane[1], lane[2], lane[3]
                    v4, v5, v6, v7 = lane[4], lane[5], lane[6], lane[7]
                    k = 8 * b
                    target[k], target[k + 1], target[k + 2], target[k + 3] = v0, v1, v2, v3
                    target[k + 4], target[k + 5], target[k + 6], target[k + 7] = v4, v5, v6, v7
                for k in range(8 * whole, count):
                    target[k] = tile[whole, 8 * x + k - 8 * whole]


def _scale_flat(src: Any, dst: Any, slope, inter, scale, shift, cell) -> None:
    """``dst[i] = (cell dtype(src[i]) * slope + inter)`` over flat ``src`` and ``dst``.

    Storing into ``cell`` converts to its dtype as numpy's cast does; the multiply and add are then
    operations of that dtype, rounded one at a time (numba contracts nothing into a fused
    multiply-add without ``fastmath``), as numpy's. The compiler keeps ``cell`` in a register.
    """
    for i in range(src.size):
        cell[0] = src[i]
        value = cell[0]
        if scale:
            value = value * slope
        if shift:
            value = value + inter
        dst[i] = value


_KERNELS: dict[str, Callable[..., None]] = {
    "reverse_planes": _reverse_planes,
    "scale_flat": _scale_flat,
}
