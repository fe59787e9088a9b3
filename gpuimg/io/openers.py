"""Opening image files: plain, or gzip (a seekable reader, one forward pass, or a writer).

* :func:`open_image_file` opens plain files buffered, and ``.gz`` files as a
  :class:`~gpuimg.io.gzipseek.GzipReader` (reading; a :class:`~gpuimg.io.bgzf.BgzfReader` for BGZF
  files) or a gzip writer (writing: one ISA-L stream, or BGZF blocks).
* :func:`open_sequential` opens a file for one forward pass (whole-array reads): gzip streams
  decompress straight into the caller's buffer with the fastest streaming backend available
  (:mod:`gpuimg.io.gzipstream`).

The gzip readers live in :mod:`gpuimg.io.gzipstream` (backends, sequential reader) and
:mod:`gpuimg.io.gzipseek` (seekable reader and its checkpoint index); their public names are
importable from here too.
"""

from __future__ import annotations

import gzip
import os
from typing import Any, Literal, overload

from isal import igzip

from gpuimg.io.bgzf import BgzfReader, BgzfWriter, is_bgzf_file
from gpuimg.io.containers import container_for
from gpuimg.io.gzipseek import GzipIndex, GzipReader
from gpuimg.io.gzipstream import (
    SequentialGzipReader,
    available_gzip_backends,
    get_gzip_backend,
    gzip_backend,
    gzip_uncompressed_size,
    set_gzip_backend,
)
from gpuimg.io.positioned import ReadableFile, WritableFile, file_identity

__all__ = [
    "GzipIndex",
    "GzipReader",
    "SequentialGzipReader",
    "available_gzip_backends",
    "file_identity",
    "get_gzip_backend",
    "gzip_backend",
    "gzip_uncompressed_size",
    "is_gzip_path",
    "open_image_file",
    "open_sequential",
    "set_gzip_backend",
]

_ISAL_LEVELS = range(0, 4)  # ISA-L's levels; other zlib levels go to the stdlib


def is_gzip_path(file_like: Any) -> bool:
    """True when ``file_like`` is a filename ending in ``.gz`` (any case).

    File objects are read through as given, so they are never gzip paths.
    """
    if isinstance(file_like, (str, os.PathLike)):
        return os.fspath(file_like).lower().endswith(".gz")
    return False


def open_sequential(path: str | os.PathLike[str], *, name: str | None = None) -> ReadableFile:
    """Open an image file for one forward pass: a :class:`SequentialGzipReader` or a plain file.

    ``.bz2`` and ``.zst`` files get a :class:`~gpuimg.io.containers.StreamReader`.
    """
    if (container := container_for(path)) is not None:
        return container.open_read(path, name=name)
    if is_gzip_path(path):
        return SequentialGzipReader(path, name=name)
    return open(path, "rb")  # noqa: SIM115 - returned to the caller


class _GzipWriter(gzip.GzipFile):
    """Deterministic gzip writer (no file name, mtime 0 in the header), owning its file if it opened it."""

    def __init__(
        self, path: str | os.PathLike[str], compresslevel: int, fileobj: WritableFile | None = None
    ) -> None:
        self._owned = open(path, "wb") if fileobj is None else None  # noqa: SIM115 - see close()
        try:
            super().__init__(
                filename="",
                mode="wb",
                compresslevel=compresslevel,
                fileobj=self._owned or fileobj,
                mtime=0,
            )
        except BaseException:
            if self._owned is not None:
                self._owned.close()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._owned is not None:
                self._owned.close()


class _IGzipWriter(_GzipWriter, igzip.IGzipFile):
    """ISA-L flavour of :class:`_GzipWriter`."""


@overload
def open_image_file(
    path: str | os.PathLike[str],
    mode: Literal["rb"] = "rb",
    *,
    compresslevel: int = 1,
    bgzf: bool = False,
    fileobj: WritableFile | None = None,
) -> ReadableFile: ...
@overload
def open_image_file(
    path: str | os.PathLike[str],
    mode: Literal["wb"],
    *,
    compresslevel: int = 1,
    bgzf: bool = False,
    fileobj: WritableFile | None = None,
) -> WritableFile: ...
def open_image_file(
    path: str | os.PathLike[str],
    mode: str = "rb",
    *,
    compresslevel: int = 1,
    bgzf: bool = False,
    fileobj: WritableFile | None = None,
) -> ReadableFile | WritableFile:
    """Open an image file, decompressing or compressing ``.gz``, ``.bz2`` and ``.zst`` files.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a ``.gz`` suffix (any case) means gzip.
    mode : {'rb', 'wb'}
        Read or write, binary.
    compresslevel : int, optional
        gzip level 0-9 for writing; 0-3 use ISA-L (several times faster than
        zlib, output readable by any gzip reader), 4-9 use zlib (libdeflate for
        BGZF).
    bgzf : bool, optional
        Writing ``.gz``: BGZF blocks compressed in parallel (see
        :mod:`gpuimg.io.bgzf`) instead of one gzip stream.
        ``.bz2`` and ``.zst`` files are one stream (see :mod:`gpuimg.io.containers`).
    fileobj : binary file object, optional
        Writing only: where the bytes go instead of ``path`` (which still picks
        the format). It is not closed; a plain ``path`` returns it as is.

    Returns
    -------
    file object
        Reading: a buffered file, a :class:`GzipReader`, or a
        :class:`~gpuimg.io.bgzf.BgzfReader` when the first gzip member is a
        BGZF block. Writing: a buffered file, or a gzip writer with no file
        name and mtime 0 in its header (same bytes in, same file out).
    """
    if mode not in ("rb", "wb"):
        raise ValueError(f"{os.fspath(path)}: mode is {mode!r}, expected 'rb' or 'wb'")
    if fileobj is not None and mode != "wb":
        raise ValueError(f"{os.fspath(path)}: fileobj is for writing, found mode {mode!r}")
    if (container := container_for(path)) is not None:
        if mode == "rb":
            return container.open_read(path)
        return container.open_write(path, compresslevel=compresslevel, fileobj=fileobj)
    if not is_gzip_path(path):
        return fileobj or open(path, mode)  # noqa: SIM115 - returned to the caller
    if mode == "rb":
        return BgzfReader(path) if is_bgzf_file(path) else GzipReader(path)
    if bgzf:
        return BgzfWriter(path, compresslevel, fileobj=fileobj)
    if compresslevel not in range(10):
        raise ValueError(
            f"{os.fspath(path)}: compresslevel is {compresslevel}, expected an int in 0-9"
        )
    writer = _IGzipWriter if compresslevel in _ISAL_LEVELS else _GzipWriter
    return writer(path, compresslevel, fileobj)
