"""Converting an array into one of another memory order, in cache-sized tiles.

NIfTI data are Fortran-ordered on disk while most arrays in memory are C-ordered, and every read or
write that crosses between them converts values too (scaling, casting). A plain ``np.copyto`` from
a Fortran-ordered array into a C-ordered one walks one of them with strides of whole planes, which
costs about five times the copy itself. :func:`convert_between_orders` does the conversion in tiles
that fit in the core's cache: each tile is converted in the source's own order into a small
scratch buffer (contiguous runs in, contiguous runs out), then transposed from there into the
destination, where its strided accesses hit cache rather than memory.

Tiles span whole runs of the first axis (contiguous in Fortran order) and of the last axis
(contiguous in C order) when they fit, and as many indices of the axes between as the tile's size
allows, so the transposition of each tile reads and writes whole cache lines.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

from gpuimg.io.buffers import default_pool

__all__ = ["TILE_ELEMENTS", "convert_between_orders", "fortran_blocks", "order_of", "tiles"]

#: Elements per tile: 64 Ki float32 values (256 KiB) leave room in a 512 KiB L2 for the source.
TILE_ELEMENTS = 1 << 16

#: Longest run of the first axis in a tile when the whole axis does not fit with the last one.
_MAX_FIRST_RUN = 256


def tiles(shape: tuple[int, ...], elements: int = TILE_ELEMENTS) -> Iterator[tuple[slice, ...]]:
    """Slicers of tiles of at most ``elements`` that cover an array of ``shape`` once each.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array (at least one axis).
    elements : int
        Most elements per tile (a tile has at least one element).

    Yields
    ------
    tuple of slice
        One slice per axis.

    Examples
    --------
    >>> [t for t in tiles((4, 3, 2), elements=16)]  # doctest: +NORMALIZE_WHITESPACE
    [(slice(0, 4, None), slice(0, 2, None), slice(0, 2, None)),
     (slice(0, 4, None), slice(2, 3, None), slice(0, 2, None))]
    """
    sizes = [1] * len(shape)
    first = min(shape[0], max(1, min(_MAX_FIRST_RUN, elements)))
    sizes[0] = first
    room = max(1, elements // first)
    if len(shape) > 1:
        sizes[-1] = min(shape[-1], room)
        room = max(1, room // sizes[-1])
    for axis in range(1, len(shape) - 1):
        sizes[axis] = min(shape[axis], room)
        room = max(1, room // sizes[axis])
    starts = [range(0, length, size) for length, size in zip(shape, sizes, strict=True)]
    # The last axis varies slowest: consecutive tiles are neighbours in Fortran order.
    for corner in itertools.product(*reversed(starts)):
        yield tuple(
            slice(start, min(start + size, length))
            for start, size, length in zip(reversed(corner), sizes, shape, strict=True)
        )


def convert_between_orders(
    src: np.ndarray,
    dst: np.ndarray,
    convert: Callable[[np.ndarray, np.ndarray], None],
    *,
    tile_slicers: Iterator[tuple[slice, ...]] | None = None,
) -> np.ndarray:
    """Fill ``dst`` with ``convert(src)``, tile by tile, where the two have different memory orders.

    Parameters
    ----------
    src : numpy.ndarray
        Source values, any strides (typically Fortran-ordered).
    dst : numpy.ndarray
        Destination of ``src``'s shape, any strides (typically C-ordered); its dtype is what
        ``convert`` produces.
    convert : callable
        ``convert(src_tile, out_tile)`` writes the converted values of ``src_tile`` into
        ``out_tile``, an array of the same shape laid out in ``src``'s order (so that both are walked
        contiguously). It must be elementwise: any tiling gives the same result.
    tile_slicers : iterator of tuple of slice, optional
        The tiles, of at most :data:`TILE_ELEMENTS` each (default :func:`tiles` of ``src.shape``),
        e.g. a share of them for one thread.

    Returns
    -------
    numpy.ndarray
        ``dst``.
    """
    if src.shape != dst.shape:
        raise ValueError(f"dst has shape {dst.shape}, expected the source's {src.shape}")
    if src.size == 0:
        return dst
    order = order_of(src)
    tile_slicers = tiles(src.shape) if tile_slicers is None else tile_slicers
    with default_pool.borrow(TILE_ELEMENTS * dst.dtype.itemsize) as scratch:
        flat = scratch.view(dst.dtype)
        for slicer in tile_slicers:
            part = src[slicer]
            staged = flat[: part.size].reshape(part.shape, order=order)
            convert(part, staged)
            np.copyto(dst[slicer], staged)
    return dst


def order_of(array: np.ndarray) -> Literal["C", "F"]:
    """'F' when ``array``'s first axis varies fastest in memory, else 'C' (for any strides)."""
    if array.ndim > 1 and abs(array.strides[0]) < abs(array.strides[-1]):
        return "F"
    return "C"


def fortran_blocks(shape: tuple[int, ...], elements: int) -> Iterator[tuple[slice, ...]]:
    """Boxes of at most ``elements`` that follow one another in the Fortran-order flattening.

    Each box spans whole leading axes, a range of one axis, and single indices of the axes after
    it, so writing the boxes one after another in Fortran order writes the whole array in Fortran
    order (the order of NIfTI data on disk).

    Parameters
    ----------
    shape : tuple of int
        Shape of the array.
    elements : int
        Most elements per box (at least 1).

    Yields
    ------
    tuple of slice
        One slice per axis.

    Examples
    --------
    >>> list(fortran_blocks((2, 3, 2), elements=4))  # doctest: +NORMALIZE_WHITESPACE
    [(slice(0, 2, None), slice(0, 2, None), slice(0, 1, None)),
     (slice(0, 2, None), slice(2, 3, None), slice(0, 1, None)),
     (slice(0, 2, None), slice(0, 2, None), slice(1, 2, None)),
     (slice(0, 2, None), slice(2, 3, None), slice(1, 2, None))]
    """
    whole, inner = 0, 1
    while whole < len(shape) and inner * shape[whole] <= elements:
        inner *= shape[whole]
        whole += 1
    if whole == len(shape):
        yield tuple(slice(0, n) for n in shape)
        return
    step = max(1, elements // inner)
    leading = tuple(slice(0, n) for n in shape[:whole])
    for outer in itertools.product(*(range(n) for n in reversed(shape[whole + 1 :]))):
        trailing = tuple(slice(i, i + 1) for i in reversed(outer))
        for start in range(0, shape[whole], step):
            yield (*leading, slice(start, min(start + step, shape[whole])), *trailing)
