"""Analyze 7.5 images (.hdr/.img pairs) and their SPM variants; the read/write logic NIfTI reuses."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, ClassVar

import numpy as np

from gpuimg import device as device_seam
from gpuimg.arrayproxy import is_proxy
from gpuimg.arraywriter import (
    CastPlan,
    plan_array_write,
    plan_cast,
    write_array,
)
from gpuimg.config import settings
from gpuimg.errors import HeaderDataError, ImageFileError
from gpuimg.headers.analyze import AnalyzeHeader
from gpuimg.headers.spm import Spm2AnalyzeHeader, SpmAnalyzeHeader
from gpuimg.images.filebased import AdoptedHeader
from gpuimg.images.fileholders import FileHolder
from gpuimg.images.spatial import SpatialImage
from gpuimg.io.atomic import AtomicFiles
from gpuimg.io.containers import max_uncompressed_size
from gpuimg.io.handles import FileHandle, OpenedFile


class AnalyzeImage(SpatialImage):
    """Analyze 7.5 image: header in ``.hdr``, data in ``.img``."""

    header_class: ClassVar[type[Any]] = AnalyzeHeader
    files_types: ClassVar[tuple[tuple[str, str], ...]] = (("image", ".img"), ("header", ".hdr"))
    valid_exts: ClassVar[tuple[str, ...]] = (".img", ".hdr")
    spatial_axes_first: ClassVar[bool] = True

    def __init__(self, dataobj, affine, header=None, extra=None, file_map=None, dtype=None) -> None:
        super().__init__(dataobj, affine, header, extra, file_map)
        # The offset and scale factors belong to the file just read; they are recomputed on save.
        self._header.set_data_offset(0)
        self._header.set_slope_inter(None, None)
        if dtype is not None:
            self.set_data_dtype(dtype)

    @classmethod
    def _header_and_image(cls, file_map) -> tuple[FileHolder, FileHolder]:
        return file_map["header"], file_map["image"]

    @classmethod
    def from_file_map(cls, file_map, *, mmap=True, keep_file_open=None):
        """Load an image from ``file_map``: reads the header only; the data stay behind a proxy.

        The header file is opened once; for a single file, that file (kept as ``keep_file_open``
        says, see :class:`~gpuimg.io.handles.FileHandle`) also serves the data's reads.
        """
        hdr_fh, img_fh = cls._header_and_image(file_map)
        name = hdr_fh.filename or "<fileobj>"
        # The holder's own file object, when it has one, holds the header (as nibabel reads it).
        target = hdr_fh.fileobj if hdr_fh.fileobj is not None else hdr_fh.filename
        if target is None:
            raise ImageFileError(f"{name}: the header has neither a file name nor a file object")
        keep = keep_file_open if hdr_fh.same_file_as(img_fh) else False
        handle = FileHandle(target, keep_file_open=keep)
        with ExitStack() as stack:
            try:
                header_file = stack.enter_context(OpenedFile.open(handle, start=hdr_fh.pos))
            except FileNotFoundError as error:
                raise ImageFileError(f"{name}: no such file") from error
            return cls.from_header_file(
                file_map, header_file, mmap=mmap, keep_file_open=keep_file_open
            )

    @classmethod
    def from_header_file(
        cls, file_map, header_file: OpenedFile, *, mmap=True, keep_file_open=None
    ) -> AnalyzeImage:
        """Load an image of ``file_map`` whose header file is open as ``header_file``.

        The header is read from ``header_file`` (its sniffed first bytes, then the rest), decoded,
        fixed and validated once, and becomes the image's own without a copy. When the header file is
        the data file, its handle is handed on to the proxy, so its reads need no other open. What
        :func:`gpuimg.load` calls once it has sniffed the file.
        """
        hdr_fh, img_fh = cls._header_and_image(file_map)
        header = cls.header_class.from_fileobj(header_file, filename=hdr_fh.filename or "<fileobj>")
        if img_fh.filename is not None:
            try:
                available = max_uncompressed_size(img_fh.filename)
            except OSError as error:
                raise ImageFileError(
                    f"{img_fh.filename}: cannot open image data: {error}"
                ) from error
            if available is not None:  # None: bzip2 and zstd bound nothing
                header.validate_data_fits(img_fh.filename, available)
        handle = header_file.handle
        same = hdr_fh.same_file_as(img_fh) and handle.target == img_fh.file_like
        data_file = handle if same else img_fh.file_like
        try:
            data = cls.ImageArrayProxy(data_file, header, mmap=mmap, keep_file_open=keep_file_open)
        except HeaderDataError as error:  # inconsistent scale factors: say which file has them
            raise HeaderDataError(f"{hdr_fh.filename or '<fileobj>'}: {error}") from error
        img = cls(data, None, AdoptedHeader(header), file_map=file_map)
        img._affine = img.header.get_best_affine()
        return img

    def to_file_map(self, file_map=None, dtype=None, *, bgzf: bool | None = None) -> None:
        """Write header and data to ``file_map`` (default: the image's own).

        Scale factors the caller set on the header (not NaN) are stored as they are and the data are
        written cast, unscaled; otherwise the write chooses them (see :mod:`gpuimg.scalefactors`).
        Each file replaces its target atomically and durably, only once everything was written (see
        :mod:`gpuimg.io.atomic`), so a failed save leaves existing files byte-identical. ``.gz`` files
        are written at ``gpuimg.config.settings.compresslevel``, as BGZF when ``bgzf`` is True (None:
        the ``bgzf`` setting; see :mod:`gpuimg.io.bgzf`), else as one gzip stream; ``.bz2`` and
        ``.zst`` files as one stream of their format (see :mod:`gpuimg.io.containers`).

        Raises
        ------
        WriterError
            When the data cannot be written as the on-disk type (:class:`ScalingError` when the factors
            they need are not finite in float32).
        """
        file_map = self.file_map if file_map is None else file_map
        self.update_header()
        header = self._header.copy()
        if dtype is not None:
            header.set_data_dtype(dtype)
        hdr_fh, img_fh = self._header_and_image(file_map)
        data, factors, cast = self._data_to_write(header, img_fh.filename or "<image>")
        if factors is not None:
            slope, inter = factors
            header.set_slope_inter(slope, inter if header.has_data_intercept else None)
        with _AtomicFiles(settings.bgzf if bgzf is None else bgzf) as files:
            hdr_file = files.open(hdr_fh)
            img_file = hdr_file if hdr_fh.same_file_as(img_fh) else files.open(img_fh)
            header.write_to(hdr_file)
            offset = header.get_data_offset()
            if img_file is hdr_file:
                img_file.write(b"\x00" * (offset - hdr_file.tell()))
            else:
                img_file.write(b"\x00" * offset)
            write_array(img_file, data, cast)
        self.file_map = file_map

    def _data_to_write(
        self, header: AnalyzeHeader, name: str
    ) -> tuple[Any, tuple[np.float32, np.float32] | None, CastPlan]:
        """The array to write to file ``name``, the factors to store (None: keep the header's), its cast.

        A proxy image whose on-disk type is kept is written losslessly: its raw values with its own scale
        factors, unless the caller set factors on the header. Anything else is written from its (scaled)
        values, with factors chosen for the on-disk type.
        """
        out_dtype = header.get_data_dtype()
        scale = _factors_unset(header)
        dataobj = self._dataobj
        if (
            scale
            and is_proxy(dataobj)
            and dataobj.dtype.newbyteorder("=") == out_dtype.newbyteorder("=")
        ):
            slope, inter = dataobj.slope, dataobj.inter
            if header.has_data_slope and (header.has_data_intercept or inter == 0.0):
                return dataobj.get_unscaled(), (slope, inter), plan_cast(out_dtype, out_dtype)
        # A CuPy array stays on the device: the write streams it to the file block by block.
        data = dataobj if device_seam.is_device_array(dataobj) else np.asanyarray(dataobj)
        plan = plan_array_write(
            data,
            out_dtype,
            has_slope=header.has_data_slope,
            has_inter=header.has_data_intercept,
            scale=scale,
            name=name,
        )
        return data, ((plan.slope, plan.inter) if scale else None), plan.cast


def _factors_unset(header) -> bool:
    """True when the scale factors the header stores are all NaN: the write chooses them."""
    fields = [
        name
        for name, stored in (
            ("scl_slope", header.has_data_slope),
            ("scl_inter", header.has_data_intercept),
        )
        if stored
    ]
    return all(np.isnan(float(header[name])) for name in fields)


class _AtomicFiles(AtomicFiles):
    """:class:`~gpuimg.io.atomic.AtomicFiles` that also writes into a holder's own file object."""

    def __init__(self, bgzf: bool) -> None:
        super().__init__()
        self._bgzf = bgzf

    def open(self, holder: FileHolder):
        if holder.fileobj is not None:
            holder.fileobj.seek(holder.pos)
            return holder.fileobj
        if holder.filename is None:
            raise ImageFileError("cannot save: the image has no filename; use to_filename()")
        return self.create(holder.filename, compresslevel=settings.compresslevel, bgzf=self._bgzf)


class Spm99AnalyzeImage(AnalyzeImage):
    """Analyze image with SPM99 extensions (scale factor in ``funused1``, voxel origin).

    nibabel also reads and writes a MATLAB ``.mat`` affine beside SPM images (with scipy); gpuimg keeps the
    affine's translation in the header's ``origin`` instead and ignores ``.mat`` files.
    """

    header_class = SpmAnalyzeHeader

    def _affine2header(self) -> None:
        super()._affine2header()
        self._header.set_origin_from_affine(self._affine)


class Spm2AnalyzeImage(Spm99AnalyzeImage):
    """Analyze image with SPM2 extensions; plain Analyze pairs load as this class, as in nibabel."""

    header_class = Spm2AnalyzeHeader
