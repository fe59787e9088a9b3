"""Where an array's bytes live in a file: which read-pipeline source reads them, and the gzip size check.

A :class:`DataBlock` knows the file (a :class:`~gpuimg.io.handles.FileHandle`), where the data block
starts, its shape and dtype. :meth:`DataBlock.source` opens the source of
:mod:`gpuimg.io.pipeline` that fits a read (positionless chunks of a plain file, BGZF blocks, a
gzip stream, or the byte runs of a slice through the handle), and
:meth:`DataBlock.check_holds_data` makes sure a gzip file can fill what its header promises before
anything is allocated for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from gpuimg.config import settings
from gpuimg.errors import TruncatedDataError
from gpuimg.io.bgzf import BgzfReader, is_bgzf_file
from gpuimg.io.buffers import default_pool
from gpuimg.io.containers import MAX_DEFLATE_RATIO, Container
from gpuimg.io.handles import FileHandle
from gpuimg.io.openers import SequentialGzipReader, gzip_uncompressed_size
from gpuimg.io.pipeline import BgzfSource, PlannedSource, PreadSource, StreamSource
from gpuimg.io.positioned import ReadableFile
from gpuimg.io.slicing import ReadPlan

__all__ = ["DataBlock"]


class DataBlock:
    """An array's bytes in a file: which source reads them, and whether the file can hold them.

    Parameters
    ----------
    handle : FileHandle
        The file (path or caller's file object).
    offset : int
        Where the data block starts in the (uncompressed) file.
    shape : tuple of int
        Shape of the array on disk (Fortran order).
    dtype : numpy.dtype
        On-disk dtype.
    compressed : bool
        True for a compressed file: gzip (or BGZF), bzip2 or zstd.
    container : Container, optional
        The stream container of a ``.bz2`` or ``.zst`` file (see :mod:`gpuimg.io.containers`).
    """

    def __init__(
        self,
        handle: FileHandle,
        offset: int,
        shape: tuple[int, ...],
        dtype: np.dtype,
        *,
        compressed: bool,
        container: Container | None = None,
    ) -> None:
        self._handle, self._offset, self._shape, self._dtype = handle, offset, shape, dtype
        self._nbytes = math.prod(shape) * dtype.itemsize
        self._compressed, self._container = compressed, container
        self._size_checked = False

    @property
    def nbytes(self) -> int:
        """Size of the data block."""
        return self._nbytes

    @property
    def name(self) -> str:
        """The data file's printable name."""
        return self._handle.name

    def truncated(self, found: int) -> TruncatedDataError:
        """The error for a data block that holds only ``found`` bytes."""
        return TruncatedDataError(
            f"{self.name}: data block holds {found} bytes after offset {self._offset}, "
            f"expected {self._nbytes} for shape {self._shape} of {self._dtype}"
        )

    @contextmanager
    def source(self, plan: ReadPlan, *, whole: bool) -> Iterator[PlannedSource]:
        """The source of ``plan``'s bytes; ``whole`` when the plan is the whole data block.

        A whole read of a plain file reads positionless chunks (``preadv``), of a BGZF file decodes
        blocks, of a gzip stream streams it with the fastest reader, all over the handle's descriptor
        (the kept file, when there is one); a slice goes through the handle's file, and for gzip its
        seek index.
        """
        if whole and self._handle.is_path and (self._compressed or hasattr(os, "preadv")):
            with self._handle.open_descriptor() as fd:
                if not self._compressed:
                    yield PreadSource(fd, self._offset, plan, self._dtype, self.truncated)
                elif self._container is None and is_bgzf_file(fd):
                    with self._bgzf_reader(fd) as reader:
                        yield BgzfSource(reader, self._offset, plan, self._dtype)
                else:
                    with self._open_stream(fd) as stream:
                        yield self._stream(stream, plan)
            return
        with self._handle.open() as fileobj:
            yield self._stream(fileobj, plan)

    @contextmanager
    def bgzf(self) -> Iterator[BgzfReader | None]:
        """A reader of the data file when it is BGZF (its first gzip member says so), else None."""
        if not self._compressed or self._container is not None:
            yield None
            return
        with self._handle.open_descriptor() as fd:
            if not is_bgzf_file(fd):
                yield None
                return
            with self._bgzf_reader(fd) as reader:
                yield reader

    def check_holds_data(self, *, whole: bool) -> None:
        """Before allocating for a gzip file, make sure it holds the data its header promises.

        The gzip trailer (ISIZE, the last member's size modulo 2**32) settles it for ordinary files. When
        it disagrees (several members, or a header claiming data that is not there), the stream is
        counted once, in a small buffer, so a hostile header never makes gpuimg allocate what the file
        cannot fill. A BGZF file's block headers give its size without decoding anything; a slice of
        one is not checked at all (its read decodes only the blocks it needs and raises
        :class:`~gpuimg.errors.TruncatedDataError` if they are missing, allocating only the slice).
        """
        if self._size_checked or not self._compressed:
            return
        end = self._offset + self._nbytes
        with self.bgzf() as reader:
            if reader is not None:
                if not whole:
                    return
                if reader.size() < end:
                    raise self.truncated(max(reader.size() - self._offset, 0))
                self._size_checked = True
                return
        with self._handle.open_descriptor() as fd:
            if self._container is None:
                hint = gzip_uncompressed_size(fd)
            else:  # bzip2, zstd: no size on record; trusted within deflate's bound, counted beyond
                hint = os.fstat(fd).st_size * MAX_DEFLATE_RATIO
            if not (hint >= end or hint == end % 2**32):
                self._count_stream(fd, end)
        self._size_checked = True

    def _count_stream(self, fd: int, end: int) -> None:
        found = 0
        with (
            self._open_stream(fd) as stream,
            default_pool.borrow(settings.pipeline_chunk_bytes) as scratch,
        ):
            while found < end:
                count = stream.readinto(scratch)
                if not count:
                    raise self.truncated(max(found - self._offset, 0))
                found += count

    def _open_stream(self, fd: int) -> Any:
        """A forward reader of the decompressed bytes of the file open as ``fd``."""
        if self._container is not None:
            return self._container.open_read(fd, name=self.name)
        return SequentialGzipReader(fd, name=self.name)

    def _bgzf_reader(self, fd: int) -> BgzfReader:
        """A reader of the BGZF data file open as ``fd``, sharing the handle's block table."""
        return BgzfReader(fd, name=self.name, index=self._handle.bgzf_index)

    def _stream(self, fileobj: ReadableFile, plan: ReadPlan) -> StreamSource:
        end = self._offset + self._nbytes if self._compressed else None
        return StreamSource(fileobj, plan, self._dtype, name=self.name, trailer_at=end)
