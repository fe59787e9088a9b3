"""Lazy array proxies over image files.

The proxy protocol (as nibabel defines it) is small:

* ``proxy.shape``, ``proxy.ndim`` and ``proxy.is_proxy`` (True);
* ``np.asarray(proxy)`` / ``np.asanyarray(proxy, dtype)`` reads and scales the whole array;
* ``proxy[slicer]`` reads, and scales, only what the slicer selects.

An :class:`ArrayProxy` keeps only the file's name (or the caller's open file object), the header facts it
needs (shape, on-disk dtype, offset, scale factors) and a file-handle manager. Reading a header never reads
data. Every read enters at :meth:`ArrayProxy.read_to` (:meth:`ArrayProxy.read` resolves its destination
first; the protocol's reads, :meth:`ArrayProxy.read_scaled_into` and :meth:`ArrayProxy.to_device` are
spelled through it): the caller says where the memory lives (the host or a GPU, and optionally its own
``out``), and that one method picks the sink and makes the read's decisions once. The bytes then go
through one loop, :mod:`gpuimg.io.pipeline` (source of raw bytes → chunks → sink).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal

import numpy as np

from gpuimg.destination import HOST, Destination, destination
from gpuimg.gpudecode import read_bgzf_to_device
from gpuimg.gpuread import DevicePlan, plan_device_read, stream_to_device
from gpuimg.hostread import read_into
from gpuimg.io.containers import compressed_suffix, container_for
from gpuimg.io.datablock import DataBlock
from gpuimg.io.handles import FileHandle
from gpuimg.io.pipeline import RawSink, byte_view, run
from gpuimg.io.slicing import ReadPlan, canonical_slicer, plan_read, selected_shape
from gpuimg.scaling import ScalePlan, apply_scaling, plan_scaling, scale_factor

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
        read as the Fortran array of the reversed shape, transposed; :meth:`read_plan` speaks
        of that on-disk layout.
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
        self._slope = scale_factor(slope, 1.0)
        self._inter = scale_factor(inter, 0.0)
        if isinstance(file_like, FileHandle):
            self._handle = file_like
            self._keep_file_open = file_like.keep_file_open
        else:
            self._handle = FileHandle(file_like, keep_file_open=self._keep_file_open)
        self._file_like = self._handle.target
        self._block = DataBlock(
            self._handle,
            self._offset,
            self._shape,
            self._dtype,
            compressed=self.is_compressed,
            container=container_for(self._file_like),
        )

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
    def slope(self) -> float | np.floating:
        """Scale factor applied on read (1.0 when unscaled)."""
        return self._slope

    @property
    def inter(self) -> float | np.floating:
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
            new._handle, new._block = self._handle, self._block
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
        self._block.check_holds_data(whole=True)
        return self._in_order(lambda _, __: self._read_whole_raw(), ())

    def get_scaled(self, dtype=None, slicer=()) -> np.ndarray:
        """Read ``self[slicer]`` scaled, as nibabel's ``ArrayProxy`` returns it.

        Parameters
        ----------
        dtype : numpy dtype, optional
            Result dtype; None keeps nibabel's natural dtype (the on-disk one when unscaled).
        slicer : index, optional
            Any basic numpy index; the default reads everything.
        """
        return self.read_to(HOST, slicer, dtype=dtype)

    def read(self, slicer=(), *, dtype=None, out=None, device=None):
        """Read ``self[slicer]`` scaled to ``dtype``, where the caller says: the one read entry point.

        Parameters
        ----------
        slicer : index, optional
            Any basic numpy index; the default reads everything.
        dtype : numpy dtype, optional, keyword only
            Result dtype; None keeps nibabel's natural dtype (the on-disk one when unscaled).
        out : numpy.ndarray or cupy.ndarray, optional, keyword only
            Where to write the result (see :meth:`read_to`); its memory says where the read goes
            when ``device`` is None.
        device : None, 'cpu', 'cuda', 'cuda:N', int or cupy.cuda.Device, keyword only
            Where a new result lives (see :func:`gpuimg.destination.destination`).

        Returns
        -------
        numpy.ndarray or cupy.ndarray
            ``out``, or a new array.
        """
        return self.read_to(destination(device=device, out=out), slicer, dtype=dtype, out=out)

    def read_to(self, where: Destination, slicer=(), *, dtype=None, out=None):
        """:meth:`read` to a resolved :class:`~gpuimg.destination.Destination`.

        The one place a read chooses between the host and the device: the scaling plan (and, for
        the device, the fused kernel) is made here once, and the sink that fits ``where`` is handed
        it, so nothing below plans or resolves again.

        Parameters
        ----------
        where : Destination
            The host or a GPU.
        slicer : index, optional
            Any basic numpy index; the default reads everything.
        dtype : numpy dtype, optional, keyword only
            As for :meth:`read`.
        out : numpy.ndarray or cupy.ndarray, optional, keyword only
            Writeable, of the shape of ``self[slicer]`` and the result's dtype, any strides, in
            ``where``'s memory. On the host, see :meth:`read_scaled_into`; on a GPU, see
            :meth:`to_device`.
        """
        plan = self.scale_plan(dtype)
        if where.device_id is None:
            if out is not None:
                self._check_host_out(out, slicer, plan.out_dtype)
            read_layout = functools.partial(self._layout_to_host, plan=plan)
        else:
            read_layout = functools.partial(
                self._layout_to_device, plan=plan_device_read(plan, where.device_id)
            )
        return self._in_order(read_layout, slicer, out)

    def read_scaled_into(self, out: np.ndarray, dtype=None, *, slicer=()) -> np.ndarray:
        """Read ``self[slicer]`` scaled to ``dtype`` straight into ``out`` (e.g. a slot of a batch).

        The read goes through :mod:`gpuimg.io.pipeline`. Into an ``out`` in the on-disk order (Fortran
        for an 'F' proxy), chunks are scaled straight into place: an uncompressed or BGZF file is cut
        into chunks that up to ``gpuimg.config.settings.threads`` threads read and scale
        independently; a gzip stream (or a file object) is read sequentially while a helper scales
        chunks already read (see :func:`gpuimg.config.claim_helpers`). Into any other layout (C order,
        a crop or pad), the raw bytes are staged and scaled and transposed in one pass.

        Parameters
        ----------
        out : numpy.ndarray
            Writeable, of the shape of ``self[slicer]`` and of ``self.scale_plan(dtype).out_dtype``;
            any strides.
        dtype : numpy dtype, optional
            As for :meth:`get_scaled`.
        slicer : index, optional, keyword only
            Any basic numpy index; the default reads everything.

        Returns
        -------
        numpy.ndarray
            ``out``.
        """
        self.read_to(HOST, slicer, dtype=dtype, out=out)
        return out

    def to_device(self, slicer=(), *, dtype=np.float32, device="cuda", out=None):
        """Read ``self[slicer]`` scaled to ``dtype`` straight into GPU memory (a CuPy array).

        Raw on-disk bytes are read into pinned host buffers, copied to the device, and scaled there; see
        :mod:`gpuimg.gpuread`. A BGZF file's compressed blocks are decoded on the device by nvCOMP
        when it is installed and the read fits its batch (see :mod:`gpuimg.gpudecode`).

        Parameters
        ----------
        slicer : index, optional
            Any basic numpy index; the default reads everything.
        dtype : numpy dtype, keyword only
            Result dtype.
        device : str, int or cupy.cuda.Device, keyword only
            Where the result lives.
        out : cupy.ndarray, optional, keyword only
            Where to write it instead of a new array (any strides, e.g. a slot of a batch); it is
            written on gpuimg's stream after the current stream's work queued so far.
        """
        return self.read(slicer, dtype=dtype, out=out, device=device)

    def _check_host_out(self, out: np.ndarray, slicer, dtype: np.dtype) -> None:
        shape = selected_shape(slicer, self.shape)
        if out.shape != shape or out.dtype != dtype or not out.flags.writeable:
            raise ValueError(
                f"{self.name}: out must be a writeable {dtype} array of shape {shape}, "
                f"found {out.dtype} {out.shape} (writeable={out.flags.writeable})"
            )

    def _layout_to_host(self, slicer, out: np.ndarray | None, *, plan: ScalePlan) -> np.ndarray:
        """A host read of the on-disk (Fortran) layout, into ``out`` or a new array."""
        whole = _selects_everything(slicer, self._shape)
        if out is None:
            self._block.check_holds_data(whole=whole)
            if not whole:
                return apply_scaling(self._read_slice_raw(slicer), plan)
            if plan.is_identity:
                return self._read_whole_raw()
            out = np.empty(self._shape, plan.out_dtype, order="F")
        return read_into(self._block, self.read_plan(slicer), plan, out, whole=whole)

    def _layout_to_device(self, slicer, out, *, plan: DevicePlan):
        """A device read of the on-disk (Fortran) layout, into ``out`` or a new array."""
        whole = _selects_everything(slicer, self._shape)
        self._block.check_holds_data(whole=whole)
        read = self.read_plan(slicer)
        with self._block.bgzf() as reader:
            if reader is not None:
                result = read_bgzf_to_device(reader, read, plan, name=self.name, out=out)
                if result is not None:
                    return result
        with self._block.source(read, whole=whole) as source:
            return stream_to_device(source, plan, name=self.name, out=out)

    # -- internals ----------------------------------------------------------------------------------
    def _in_order(self, read_layout, slicer, out=None):
        """``read_layout(layout slicer, layout out)``, given in the proxy's order.

        A C-order array is the transpose of the Fortran array of the reversed shape: its slicer is
        reversed (ints drop their axes either way), ``out`` and the result transposed, and new axes
        taken out of ``out`` and put back into the result.
        """
        if self._order == "F":
            return read_layout(slicer, out)
        canonical = canonical_slicer(slicer, self.shape)
        axes = tuple(item for item in canonical if item is not None)
        kept = tuple(
            None if i is None else slice(None) for i in canonical if not isinstance(i, int)
        )
        if out is not None:
            out = out[tuple(0 if i is None else i for i in kept)].T
        result = read_layout(axes[::-1], out).T
        return result if None not in canonical else result[kept]

    def _read_whole_raw(self) -> np.ndarray:
        if self._mmap is not None and self._can_mmap():
            with self._handle.open_descriptor() as fd:
                size = os.fstat(fd).st_size
                if size - self._offset < self._block.nbytes:
                    raise self._block.truncated(max(size - self._offset, 0))
                if self._block.nbytes == 0:
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
        self._read_raw(self.read_plan(), raw, whole=True)
        return raw

    def _read_slice_raw(self, slicer) -> np.ndarray:
        plan = self.read_plan(slicer)
        raw = np.empty(plan.raw_shape, self._dtype, order="F")
        self._read_raw(plan, raw, whole=False)
        return raw[plan.post_slicer]

    def _read_raw(self, plan: ReadPlan, raw: np.ndarray, *, whole: bool) -> None:
        """Read ``plan``'s raw block into ``raw`` (Fortran-contiguous) as it is on disk."""
        with self._block.source(plan, whole=whole) as source:
            run(source, RawSink(byte_view(raw), self._dtype.itemsize))

    def _can_mmap(self) -> bool:
        return isinstance(self._file_like, (str, os.PathLike)) and not self.is_compressed


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


def read_dataobj(obj: Any, where: Destination, *, dtype=None) -> Any:
    """``np.asanyarray(obj, dtype)`` in ``where``'s memory: a gpuimg proxy reads there
    (:meth:`ArrayProxy.read_to`), any other array or proxy is brought there as it is."""
    if isinstance(obj, ArrayProxy):
        return obj.read_to(where, dtype=dtype)
    return where.asarray(obj, dtype=dtype)


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
