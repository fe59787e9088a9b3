"""Lazy array proxies over image files.

The proxy protocol (as nibabel defines it) is small:

* ``proxy.shape``, ``proxy.ndim`` and ``proxy.is_proxy`` (True);
* ``np.asarray(proxy)`` / ``np.asanyarray(proxy, dtype)`` reads and scales the whole array;
* ``proxy[slicer]`` reads, and scales, only what the slicer selects.

An :class:`ArrayProxy` keeps only the file's name (or the caller's open file object), the header facts it
needs (shape, on-disk dtype, offset, scale factors) and a file-handle manager. Reading a header never reads
data. Scaled reads go through :mod:`gpuimg.scaling` in blocks, writing straight into the output.
:meth:`ArrayProxy.read_raw_into` and :meth:`ArrayProxy.to_device` let callers choose where the memory lives.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import numpy as np

from gpuimg.config import claim_helpers, executor, parallel_for_each, settings
from gpuimg.errors import TruncatedDataError
from gpuimg.gpudecode import read_bgzf_to_device
from gpuimg.gpuread import read_to_device
from gpuimg.io.bgzf import BgzfReader, is_bgzf_file
from gpuimg.io.buffers import default_pool
from gpuimg.io.containers import MAX_DEFLATE_RATIO, compressed_suffix, container_for
from gpuimg.io.handles import FileHandle
from gpuimg.io.openers import SequentialGzipReader, gzip_uncompressed_size
from gpuimg.io.slicing import ReadPlan, canonical_slicer, plan_read, read_plan_into
from gpuimg.scaling import ScalePlan, apply_scaling, plan_scaling, scale_into

_MMAP_MODES: dict[bool | str, Literal["c", "r"] | None] = {
    True: "c",
    False: None,
    "c": "c",
    "r": "r",
}


def normalize_mmap(mmap: Any) -> Literal["c", "r"] | None:
    """Map nibabel's ``mmap`` argument to a numpy memmap mode (or None for no memory map)."""
    try:
        return _MMAP_MODES[mmap]
    except (KeyError, TypeError):
        raise ValueError(
            f"mmap should be one of {{True, False, 'c', 'r'}}, found {mmap!r}"
        ) from None


def normalize_keep_file_open(keep_file_open: Any) -> bool | None:
    """Validate nibabel's ``keep_file_open`` argument (None, True or False; 'auto' has expired)."""
    if keep_file_open is None or keep_file_open is True or keep_file_open is False:
        return keep_file_open
    raise ValueError(
        f"keep_file_open should be one of {{None, True, False}}, found {keep_file_open!r}"
        + (
            " ('auto' was deprecated in nibabel 2.4.1 and removed)"
            if keep_file_open == "auto"
            else ""
        )
    )


class ArrayProxy:
    """Lazy, thread-safe and picklable view of an image's data array on disk.

    Parameters
    ----------
    file_like : str, os.PathLike, file object or FileHandle
        Where the data live. A file object is used as given and never closed by the proxy. A
        :class:`~gpuimg.io.handles.FileHandle` (how :func:`gpuimg.load` hands on the file it opened)
        is used as given too, with its own ``keep_file_open``.
    spec : header or tuple
        A header (with ``get_data_shape``, ``get_data_dtype``, ``get_data_offset`` and
        ``get_slope_inter``) or a tuple ``(shape, dtype, offset, slope, inter)`` whose last entries may be
        left out (offset 0, slope 1, inter 0). Read once here: the proxy keeps no reference to it.
    mmap : {True, False, 'c', 'r'}, optional, keyword only
        Memory-map uncompressed files for whole-array unscaled reads (True means 'c').
    order : {None, 'F', 'C'}, optional, keyword only
        Layout of the array on disk: 'F' (NIfTI and Analyze) or 'C'; None takes the class's
        ``_default_order`` ('F'; a subclass may set 'C', as in nibabel). A 'C' proxy is
        read as the Fortran array of the reversed shape, transposed; :meth:`read_plan` and
        :meth:`read_raw_into` speak of that on-disk layout.
    keep_file_open : {None, True, False}, optional, keyword only
        True keeps one open handle (and, for gzip, its seek index) for the proxy's lifetime.
    """

    def __init__(self, file_like, spec, *, mmap=True, order=None, keep_file_open=None) -> None:
        if order not in (None, "F", "C"):
            raise ValueError(f"order should be one of {{None, 'C', 'F'}}, found {order!r}")
        self._order = order or self._default_order
        self._mmap = normalize_mmap(mmap)
        self._keep_file_open = normalize_keep_file_open(keep_file_open)
        if isinstance(spec, tuple):
            if not 2 <= len(spec) <= 5:
                raise TypeError(
                    "spec tuple should be (shape, dtype[, offset[, slope[, inter]]]), "
                    f"found {len(spec)} entries"
                )
            # Entries left out take their defaults: offset 0, slope 1, inter 0.
            shape, dtype, offset, slope, inter = tuple(spec) + (0, 1.0, 0.0)[len(spec) - 2 :]
        else:
            shape, dtype, offset = (
                spec.get_data_shape(),
                spec.get_data_dtype(),
                spec.get_data_offset(),
            )
            slope, inter = spec.get_slope_inter()
        # The shape of the on-disk (Fortran) layout: reversed for a C-order array.
        self._shape = tuple(int(n) for n in shape)[:: -1 if self._order == "C" else 1]
        self._dtype = np.dtype(dtype)
        self._offset = int(offset)
        self._slope = 1.0 if slope is None else float(slope)
        self._inter = 0.0 if inter is None else float(inter)
        if isinstance(file_like, FileHandle):
            self._handle = file_like
            self._keep_file_open = file_like.keep_file_open
        else:
            self._handle = FileHandle(file_like, keep_file_open=self._keep_file_open)
        self._file_like = self._handle.target
        self._gzip_size_checked = False

    #: The layout used when ``order`` is None (nibabel's hook for subclasses).
    _default_order = "F"

    # -- the proxy protocol -------------------------------------------------------------------------
    @property
    def is_proxy(self) -> bool:
        """Always True: this object follows the array proxy protocol."""
        return True

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return self._shape[:: -1 if self._order == "C" else 1]

    @property
    def order(self) -> str:
        """Layout of the array on disk: 'F' (Fortran, column-major) or 'C' (row-major)."""
        return self._order

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._shape)

    @property
    def dtype(self) -> np.dtype:
        """On-disk dtype (with its byte order)."""
        return self._dtype

    @property
    def offset(self) -> int:
        """Byte offset of the data in the (uncompressed) file."""
        return self._offset

    @property
    def slope(self) -> float:
        """Scale factor applied on read (1.0 when unscaled)."""
        return self._slope

    @property
    def inter(self) -> float:
        """Intercept added on read (0.0 when unscaled)."""
        return self._inter

    @property
    def file_like(self):
        """The filename or file object the data are read from."""
        return self._file_like

    @property
    def name(self) -> str:
        """A printable name of the data file, for messages."""
        return self._handle.name

    @property
    def is_compressed(self) -> bool:
        """True when the data file is compressed (gzip, bzip2 or zstd)."""
        return bool(compressed_suffix(self._file_like))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.get_scaled(dtype=dtype)

    def __getitem__(self, slicer) -> np.ndarray:
        return self.get_scaled(slicer=slicer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} shape={self._shape} dtype={self._dtype}>"

    # -- reads --------------------------------------------------------------------------------------
    def scale_plan(self, dtype=None) -> ScalePlan:
        """The :class:`~gpuimg.scaling.ScalePlan` of a read returning ``dtype`` (None: natural dtype)."""
        return plan_scaling(self._dtype, self._slope, self._inter, dtype)

    def read_plan(self, slicer=()) -> ReadPlan:
        """Which bytes a read of ``slicer`` needs (see :func:`gpuimg.io.slicing.plan_read`)."""
        return plan_read(slicer, self._shape, self._dtype.itemsize, self._offset)

    def reshape(self, shape) -> ArrayProxy:
        """A proxy of the same data with another shape (one entry may be -1), in the same order."""
        size = int(np.prod(self._shape, dtype=object))
        shape = tuple(int(n) for n in shape)
        unknown = [axis for axis, n in enumerate(shape) if n == -1]
        if len(unknown) > 1:
            raise ValueError(f"can only specify one unknown dimension, found shape {shape}")
        if unknown:
            known = -int(np.prod(shape, dtype=object))
            fill = size // known if known else 0
            shape = shape[: unknown[0]] + (fill,) + shape[unknown[0] + 1 :]
        if int(np.prod(shape, dtype=object)) != size:
            raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
        return self._with_shape(shape)

    def copy(self) -> ArrayProxy:
        """A new proxy of the same file and parameters (nibabel's ``ArrayProxy.copy``).

        The copy of a proxy of an open file object shares its file handle, and so its lock: reads
        through the two never interleave their seeks. The copy of a proxy of a path has its own.
        """
        new = self._with_shape(self.shape)
        if not isinstance(self._file_like, (str, os.PathLike)):
            new._handle = self._handle
        return new

    def _with_shape(self, shape: tuple[int, ...]) -> ArrayProxy:
        """A proxy of the same data and options, with ``shape`` (in this proxy's order)."""
        return type(self)(
            self._file_like,
            (shape, self._dtype, self._offset, self._slope, self._inter),
            mmap=self._mmap or False,
            order=self._order,
            keep_file_open=self._keep_file_open,
        )

    def get_unscaled(self) -> np.ndarray:
        """Read the whole array in its on-disk dtype, without scaling."""
        self._check_gzip_holds_data()
        return self._in_order(lambda _: self._read_whole_raw(), ())

    def get_scaled(self, dtype=None, slicer=()) -> np.ndarray:
        """Read ``self[slicer]`` scaled, as nibabel's ``ArrayProxy`` returns it.

        Parameters
        ----------
        dtype : numpy dtype, optional
            Result dtype; None keeps nibabel's natural dtype (the on-disk one when unscaled).
        slicer : index, optional
            Any basic numpy index; the default reads everything.
        """
        return self._in_order(
            lambda layout_slicer: self._get_layout_scaled(dtype, layout_slicer), slicer
        )

    def _get_layout_scaled(self, dtype, slicer) -> np.ndarray:
        """:meth:`get_scaled` of the on-disk (Fortran) layout."""
        plan = self.scale_plan(dtype)
        self._check_gzip_holds_data(slicer)
        if _selects_everything(slicer, self._shape):
            if plan.is_identity:
                return self._read_whole_raw()
            out = np.empty(self._shape, plan.out_dtype, order="F")
            return self._read_layout_scaled_into(out, dtype)
        raw = self._read_slice_raw(slicer)
        return apply_scaling(raw, plan)

    def read_scaled_into(self, out: np.ndarray, dtype=None) -> np.ndarray:
        """Read the whole array scaled to ``dtype`` straight into ``out`` (e.g. a slot of a batch).

        An uncompressed file is cut into chunks that up to ``gpuimg.config.settings.threads`` threads read
        and scale independently; so is a BGZF file, at block boundaries, each thread decoding its
        chunk's blocks (see :mod:`gpuimg.io.bgzf`). A gzip stream (or a file object) is read sequentially: when a core is
        free, this thread and a helper share the work, one reading (decompression releases the GIL) while
        the other scales chunks already read. Reads running at the same time share the thread budget (see
        :func:`gpuimg.config.claim_helpers`). Chunks live in pooled, reused staging buffers, so nothing
        but ``out`` is allocated.

        Parameters
        ----------
        out : numpy.ndarray
            Of the proxy's shape and of ``self.scale_plan(dtype).out_dtype``; contiguous in the proxy's
            order (Fortran for 'F', C for 'C').
        dtype : numpy dtype, optional
            As for :meth:`get_scaled`.

        Returns
        -------
        numpy.ndarray
            ``out``.
        """
        self._read_layout_scaled_into(out.T if self._order == "C" else out, dtype)
        return out

    def _read_layout_scaled_into(self, out: np.ndarray, dtype) -> np.ndarray:
        """:meth:`read_scaled_into` for ``out`` in the on-disk (Fortran) layout."""
        plan = self.scale_plan(dtype)
        if out.shape != self._shape or out.dtype != plan.out_dtype or not out.flags.f_contiguous:
            raise ValueError(
                f"out must be a Fortran-contiguous {plan.out_dtype} array of shape {self._shape}, "
                f"found {out.dtype} {out.shape} (f_contiguous={out.flags.f_contiguous})"
            )
        flat_out = out.reshape(-1, order="F")
        if self._data_nbytes() == 0:
            return out
        if self._can_mmap() and hasattr(os, "preadv"):
            self._scale_in_parallel(plan, flat_out)
            return out
        with self._open_bgzf() as reader:
            if reader is not None:
                self._scale_bgzf(reader, plan, flat_out)
                return out
        self._scale_pipelined(plan, flat_out)
        return out

    def _chunk_starts(self) -> range:
        """Byte offsets (in the data block) of the chunks a whole-array read is cut into."""
        itemsize = self._dtype.itemsize
        chunk = max(itemsize, settings.pipeline_chunk_bytes // itemsize * itemsize)
        return range(0, self._data_nbytes(), chunk)

    def _scale_in_parallel(self, plan: ScalePlan, flat_out: np.ndarray) -> None:
        """Uncompressed file: each thread reads (``preadv``, no shared file position) and scales chunks."""
        starts, total = self._chunk_starts(), self._data_nbytes()
        bounds = [(start, min(start + starts.step, total)) for start in starts]
        with self._handle.open_descriptor() as fd:
            self._scale_chunks(plan, flat_out, bounds, functools.partial(self._pread_exactly, fd))

    def _pread_exactly(self, fd: int, start: int, target: np.ndarray) -> None:
        """Fill ``target`` with the data block's bytes from ``start``."""
        filled = 0
        while filled < target.size:
            count = os.preadv(fd, [target[filled:]], self._offset + start + filled)
            if count == 0:
                raise self._truncated(start + filled)
            filled += count

    def _scale_bgzf(self, reader: BgzfReader, plan: ScalePlan, flat_out: np.ndarray) -> None:
        """BGZF file: each thread decodes runs of whole blocks and scales them into place."""
        bounds = reader.chunk_bounds(self._offset, self._data_nbytes(), self._dtype.itemsize)

        def read_at(start: int, target: np.ndarray) -> None:
            reader.read_at(self._offset + start, target)

        self._scale_chunks(plan, flat_out, bounds, read_at)

    def _scale_chunks(
        self,
        plan: ScalePlan,
        flat_out: np.ndarray,
        bounds: list[tuple[int, int]],
        read_at: Callable[[int, np.ndarray], None],
    ) -> None:
        """Read each ``(start, stop)`` range of the data block and scale it into ``flat_out``, in parallel.

        ``read_at(start, target)`` fills ``target`` with the data block's bytes from ``start``; the
        threads share the ranges (see :func:`gpuimg.config.parallel_for_each`), each in a pooled
        staging buffer small enough to stay in cache between the read and the scaling.
        """
        itemsize = self._dtype.itemsize
        largest = max(stop - start for start, stop in bounds)

        def work(number: int) -> None:
            start, stop = bounds[number]
            with default_pool.borrow(largest) as staging:
                target = staging[: stop - start]
                read_at(start, target)
                raw = target.view(self._dtype)
                first = start // itemsize
                scale_into(raw, plan, flat_out[first : first + raw.size], threads=1)

        parallel_for_each(work, len(bounds))

    def _scale_pipelined(self, plan: ScalePlan, flat_out: np.ndarray) -> None:
        """Sequential stream (gzip, file objects): read chunk by chunk and scale each into place."""
        bounds = self._ramped_chunks()
        itemsize = self._dtype.itemsize
        read_plan = self.read_plan()
        with claim_helpers(1) as helpers:
            slots = settings.pipeline_slots if helpers else 1
            slot_bytes = max(stop - start for start, stop in bounds)
            with (
                default_pool.borrow(slots * slot_bytes) as staging,
                self._open_whole() as fileobj,
            ):

                def read(index: int, slot: int) -> np.ndarray:
                    start, stop = bounds[index]
                    target = staging[slot * slot_bytes : slot * slot_bytes + stop - start]
                    read_plan_into(
                        fileobj, read_plan, memoryview(target), start=start, name=self.name
                    )
                    return target.view(self._dtype)

                def scale(index: int, raw: np.ndarray) -> None:
                    first = bounds[index][0] // itemsize
                    scale_into(raw, plan, flat_out[first : first + raw.size], threads=1)

                _ReadScalePipeline(read, scale, len(bounds), slots).run(helpers)
                self._finish_stream(fileobj)

    def _ramped_chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` byte ranges of a sequential read: small at both ends, whole chunks between.

        The first chunks grow from 1/8 chunk, so scaling starts soon after the read does; the last
        whole chunk is cut in halves, so little is left to scale after the read ends; whole chunks
        keep the per-chunk overhead small in between.
        """
        itemsize, total = self._dtype.itemsize, self._data_nbytes()
        smallest = max(itemsize, settings.pipeline_chunk_bytes // 8 // itemsize * itemsize)
        largest = max(itemsize, settings.pipeline_chunk_bytes // itemsize * itemsize)
        bounds, start, size = [], 0, smallest
        while start < total:
            bounds.append((start, min(start + size, total)))
            start, size = bounds[-1][1], min(2 * size, largest)
        if bounds:
            start, stop = bounds.pop()
            while stop - start > 2 * smallest:
                half = (stop - start) // 2 // itemsize * itemsize
                bounds.append((start, start + half))
                start += half
            bounds.append((start, stop))
        return bounds

    def read_raw_into(self, plan: ReadPlan, out: memoryview, start: int = 0) -> None:
        """Fill ``out`` with bytes ``[start, start + len(out))`` of the raw block that ``plan`` reads.

        A read of the whole data block streams forward (:meth:`_open_whole`: for gzip the fastest
        decompressor, building no seek index); any other seeks through the file handle, which keeps
        a gzip file's index for the next read.
        """
        whole = (
            start == 0
            and plan.runs == ((self._offset, self._data_nbytes()),)
            and memoryview(out).nbytes == plan.nbytes
        )
        with (self._open_whole if whole else self._handle.open)() as fileobj:
            self._read_plan_part(fileobj, plan, out, start)

    def _read_plan_part(self, fileobj, plan: ReadPlan, out: memoryview, start: int) -> None:
        """:func:`read_plan_into`; a read that ends at the data block's end checks the gzip trailer."""
        read_plan_into(fileobj, plan, out, start=start, name=self.name)
        if plan.runs and start + memoryview(out).nbytes == plan.nbytes:
            offset, length = plan.runs[-1]
            if offset + length == self._offset + self._data_nbytes():
                self._finish_stream(fileobj)

    def to_device(self, slicer=(), *, dtype=np.float32, device="cuda"):
        """Read ``self[slicer]`` scaled to ``dtype`` straight into GPU memory (a CuPy array).

        Raw on-disk bytes are read into pinned host buffers, copied to the device, and scaled there; see
        :mod:`gpuimg.gpuread`. A BGZF file's compressed blocks are decoded on the device by nvCOMP
        when it is installed and the read fits its batch (see :mod:`gpuimg.gpudecode`).
        """
        return self._in_order(
            lambda layout_slicer: self._layout_to_device(layout_slicer, dtype, device), slicer
        )

    def _layout_to_device(self, slicer, dtype, device):
        """:meth:`to_device` of the on-disk (Fortran) layout."""
        self._check_gzip_holds_data(slicer)
        read, plan = self.read_plan(slicer), self.scale_plan(dtype)
        with self._open_bgzf() as reader:
            if reader is not None:
                result = read_bgzf_to_device(reader, read, plan, device=device, name=self.name)
                if result is not None:
                    return result
        # A whole-array read streams forward; a slice seeks, and keeps the gzip index for the next one.
        opener = self._open_whole if _selects_everything(slicer, self._shape) else self._handle.open
        with _ProxyRawSource(self, read, opener) as source:
            return read_to_device(source, plan, device=device, name=self.name)

    # -- internals ----------------------------------------------------------------------------------
    def _in_order(self, read_layout, slicer):
        """``read_layout(layout slicer)``, given in the proxy's order.

        A C-order array is the transpose of the Fortran array of the reversed shape: its slicer is
        reversed (ints drop their axes either way), the result transposed, and new axes put back.
        """
        if self._order == "F":
            return read_layout(slicer)
        canonical = canonical_slicer(slicer, self.shape)
        axes = tuple(item for item in canonical if item is not None)
        result = read_layout(axes[::-1]).T
        if None not in canonical:
            return result
        return result[
            tuple(None if i is None else slice(None) for i in canonical if not isinstance(i, int))
        ]

    def _check_gzip_holds_data(self, slicer=()) -> None:
        """Before allocating for a gzip file, make sure it holds the data its header promises.

        The gzip trailer (ISIZE, the last member's size modulo 2**32) settles it for ordinary files. When
        it disagrees (several members, or a header claiming data that is not there), the stream is
        counted once, in a small buffer, so a hostile header never makes gpuimg allocate what the file
        cannot fill. A BGZF file's block headers give its size without decoding anything; a slice of
        one is not checked at all (its read decodes only the blocks it needs and raises
        :class:`~gpuimg.errors.TruncatedDataError` if they are missing, allocating only the slice).
        """
        if self._gzip_size_checked or not self.is_compressed:
            return
        end = self._offset + self._data_nbytes()
        with self._open_bgzf() as reader:
            if reader is not None:
                if not _selects_everything(slicer, self._shape):
                    return
                if reader.size() < end:
                    raise self._truncated(max(reader.size() - self._offset, 0))
                self._gzip_size_checked = True
                return
        with self._handle.open_descriptor() as fd:
            if container_for(self._file_like) is None:
                hint = gzip_uncompressed_size(fd)
            else:  # bzip2, zstd: no size on record; trusted within deflate's bound, counted beyond
                hint = os.fstat(fd).st_size * MAX_DEFLATE_RATIO
        if not (hint >= end or hint == end % 2**32):
            found = 0
            with (
                self._open_whole() as stream,
                default_pool.borrow(settings.pipeline_chunk_bytes) as scratch,
            ):
                while found < end:
                    count = stream.readinto(scratch)
                    if not count:
                        raise self._truncated(max(found - self._offset, 0))
                    found += count
        self._gzip_size_checked = True

    def _data_nbytes(self) -> int:
        return int(np.prod(self._shape, dtype=object)) * self._dtype.itemsize

    def _truncated(self, found: int) -> TruncatedDataError:
        return TruncatedDataError(
            f"{self.name}: data block holds {found} bytes after offset {self._offset}, "
            f"expected {self._data_nbytes()} for shape {self._shape} of {self._dtype}"
        )

    def _read_whole_raw(self) -> np.ndarray:
        nbytes = self._data_nbytes()
        if self._mmap is not None and self._can_mmap():
            with self._handle.open_descriptor() as fd:
                size = os.fstat(fd).st_size
                if size - self._offset < nbytes:
                    raise self._truncated(max(size - self._offset, 0))
                if nbytes == 0:
                    return np.empty(self._shape, self._dtype, order="F")
                with open(fd, "rb", closefd=False) as fileobj:
                    return np.memmap(
                        fileobj,
                        self._dtype,
                        mode=self._mmap,
                        offset=self._offset,
                        shape=self._shape,
                        order="F",
                    )
        raw = np.empty(self._shape, self._dtype, order="F")
        with self._open_bgzf() as reader:
            if reader is not None:
                # Blocks decode in parallel straight into the result: no staging, nothing to scale.
                flat = _bytes_view(raw)
                bounds = reader.chunk_bounds(self._offset, nbytes, self._dtype.itemsize)

                def decode(number: int) -> None:
                    start, stop = bounds[number]
                    reader.read_at(self._offset + start, flat[start:stop])

                parallel_for_each(decode, len(bounds))
                return raw
        with self._open_whole() as fileobj:
            read_plan_into(fileobj, self.read_plan(), _bytes_view(raw), name=self.name)
            self._finish_stream(fileobj)
        return raw

    @contextmanager
    def _open_whole(self):
        """A file for one forward pass over the whole array.

        A gzip path gets the fastest streaming reader (no seek index is needed to read everything), a
        BGZF file its block reader, both over the handle's descriptor (the kept file, when there is
        one); anything else goes through the proxy's file handle.
        """
        if not self.is_compressed:
            with self._handle.open() as fileobj:
                yield fileobj
            return
        with self._handle.open_descriptor() as fd:
            if (container := container_for(self._file_like)) is not None:
                opener = functools.partial(container.open_read, name=self.name)
            elif is_bgzf_file(fd):
                opener = self._bgzf_reader
            else:
                opener = functools.partial(SequentialGzipReader, name=self.name)
            with opener(fd) as stream:
                yield stream

    def _bgzf_reader(self, fd: int) -> BgzfReader:
        """A reader of the BGZF data file open as ``fd``, sharing the handle's block table."""
        return BgzfReader(fd, name=self.name, index=self._handle.bgzf_index)

    @contextmanager
    def _open_bgzf(self) -> Iterator[BgzfReader | None]:
        """A reader of the data file when it is BGZF (its first gzip member says so), else None."""
        if not self.is_compressed:
            yield None
            return
        with self._handle.open_descriptor() as fd:
            if not is_bgzf_file(fd):
                yield None
                return
            with self._bgzf_reader(fd) as reader:
                yield reader

    def _finish_stream(self, fileobj) -> None:
        """After a read reaching the end of a gzip file's data, read on so its CRC and length are checked."""
        if self.is_compressed:
            fileobj.read(1)

    def _read_slice_raw(self, slicer) -> np.ndarray:
        plan = self.read_plan(slicer)
        raw = np.empty(plan.raw_shape, self._dtype, order="F")
        if plan.nbytes:
            self.read_raw_into(plan, _bytes_view(raw))
        return raw[plan.post_slicer]

    def _can_mmap(self) -> bool:
        return isinstance(self._file_like, (str, os.PathLike)) and not self.is_compressed


class _ReadScalePipeline:
    """Chunks of one sequential stream: read in order, one thread at a time; scaled by any thread.

    Every thread (the caller and its helpers) loops: read the next chunk if no one is reading and a
    staging slot is free (the stream is the bottleneck, so reading comes first), else scale a chunk
    that is ready, else wait. While decompression is slow, one thread reads and the other scales;
    where it is fast (runs of zeros), chunks pile up in the slots and both threads scale them, so
    neither core idles and no backlog is left for the end.

    Parameters
    ----------
    read : callable
        ``read(index, slot)`` reads chunk ``index`` into staging slot ``slot`` and returns its raw values.
    scale : callable
        ``scale(index, raw)`` scales chunk ``index`` into place.
    count : int
        Number of chunks.
    slots : int
        Staging slots: how many chunks can be read and not yet scaled.
    """

    def __init__(self, read, scale, count: int, slots: int) -> None:
        self._read, self._scale, self._count = read, scale, count
        self._free_slots = list(range(slots))
        self._ready: list[tuple[int, int, np.ndarray]] = []
        self._next_read = 0
        self._scaled = 0
        self._reading = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()

    def run(self, helpers: int) -> None:
        """Work on this thread and ``helpers`` pool threads until every chunk is scaled (or one fails)."""
        jobs = [executor().submit(self._work) for _ in range(helpers)]
        try:
            self._work()
        finally:
            for job in jobs:
                job.result()
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while (task := self._next_task()) is not None:
            try:
                if task[0] == "read":
                    _, index, slot = task
                    raw = self._read(index, slot)
                    with self._changed:
                        self._ready.append((index, slot, raw))
                        self._reading = False
                        self._changed.notify_all()
                else:
                    _, index, slot, raw = task
                    self._scale(index, raw)
                    with self._changed:
                        self._free_slots.append(slot)
                        self._scaled += 1
                        self._changed.notify_all()
            except BaseException as error:  # raised again by run() on the calling thread
                with self._changed:
                    self._error = self._error or error
                    self._changed.notify_all()
                return

    def _next_task(self) -> tuple | None:
        with self._changed:
            while True:
                if self._error is not None or self._scaled == self._count:
                    return None
                if not self._reading and self._free_slots and self._next_read < self._count:
                    self._reading = True
                    self._next_read += 1
                    return ("read", self._next_read - 1, self._free_slots.pop())
                if self._ready:
                    return ("scale", *self._ready.pop(0))
                self._changed.wait()


class _ProxyRawSource:
    """The raw-block source protocol of :func:`gpuimg.gpuread.read_to_device`, over one open handle."""

    def __init__(self, proxy: ArrayProxy, plan: ReadPlan, opener) -> None:
        self._proxy = proxy
        self._plan = plan
        self._opener = opener
        self._stack = ExitStack()
        self._fileobj = None
        self.dtype = proxy.dtype
        self.raw_shape = plan.raw_shape
        self.post_slicer = plan.post_slicer
        self.out_shape = plan.out_shape
        self.nbytes = plan.nbytes

    def __enter__(self) -> _ProxyRawSource:
        self._fileobj = self._stack.enter_context(self._opener())
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def readinto(self, start: int, out: memoryview) -> None:
        self._proxy._read_plan_part(self._fileobj, self._plan, out, start)


def _bytes_view(array: np.ndarray) -> memoryview:
    """A writable flat byte view of a contiguous array (Fortran or C)."""
    flat = array.reshape(-1, order="F" if array.flags.f_contiguous else "C")
    return memoryview(flat.view(np.uint8))


def _selects_everything(slicer, shape: tuple[int, ...]) -> bool:
    """True when ``slicer`` is the identity index for ``shape`` (no new axes, every axis whole)."""
    if isinstance(slicer, tuple) and len(slicer) == 0:
        return True
    canonical = canonical_slicer(slicer, shape)
    return len(canonical) == len(shape) and all(
        isinstance(s, slice) and s.start == 0 and s.step == 1 and s.stop in (n, None)
        for s, n in zip(canonical, shape, strict=True)
    )


def is_proxy(obj: Any) -> bool:
    """True when ``obj`` follows the array proxy protocol (``obj.is_proxy`` is True)."""
    try:
        return obj.is_proxy is True
    except AttributeError:
        return False


def reshape_dataobj(obj: Any, shape: tuple[int, ...]) -> Any:
    """``obj`` reshaped: by its own ``reshape`` when it has one (a proxy stays a proxy), else numpy's."""
    return obj.reshape(shape) if hasattr(obj, "reshape") else np.reshape(obj, shape)


def get_obj_dtype(obj: Any) -> np.dtype:
    """The dtype ``np.asarray(obj)`` would have; a proxy reads (and scales) one value to find it."""
    if is_proxy(obj):
        return obj[(0,) * len(obj.shape)].dtype
    if hasattr(obj, "dtype"):
        return np.dtype(obj.dtype)
    return np.asanyarray(obj).dtype
