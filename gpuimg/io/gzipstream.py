"""Streaming gzip: the backends (ISA-L, zlib-ng, zlib), one forward pass, the trailer's size.

* :func:`available_gzip_backends`, :func:`get_gzip_backend`, :func:`set_gzip_backend` and the
  :func:`gzip_backend` context manager choose the engine (``gpuimg.config.settings.gzip_backend``).
* :class:`SequentialGzipReader` decompresses a whole file in one forward pass straight into the
  caller's buffers (whole-array reads).
* :func:`gzip_uncompressed_size` reads the trailer's ISIZE hint.

Every corrupt or truncated gzip stream raises :class:`~gpuimg.errors.CompressedStreamError` naming
the file.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, BinaryIO

from isal import igzip, isal_zlib

from gpuimg.config import configure, settings
from gpuimg.io.positioned import ForwardStream


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:  # optional: zlib-ng is only a faster engine
        return None


gzip_ng = _optional_module("zlib_ng.gzip_ng")
zlib_ng = _optional_module("zlib_ng.zlib_ng")

__all__ = [
    "SequentialGzipReader",
    "available_gzip_backends",
    "get_gzip_backend",
    "gzip_backend",
    "gzip_uncompressed_size",
    "set_gzip_backend",
]

_STREAM_ERRORS: tuple[type[BaseException], ...] = (
    EOFError,
    gzip.BadGzipFile,
    zlib.error,
    isal_zlib.error,
) + ((zlib_ng.error,) if zlib_ng is not None else ())


_SEQUENTIAL_OPENERS: dict[str, Callable[..., io.BufferedIOBase]] = {"isal": igzip.IGzipFile}
if gzip_ng is not None:
    _SEQUENTIAL_OPENERS["zlib-ng"] = gzip_ng.GzipNGFile
_SEQUENTIAL_OPENERS["zlib"] = gzip.GzipFile


#: The C readers isal's and zlib-ng's GzipFile classes are built on. Their ``readinto`` (through
#: ``io.BufferedReader``, which hands large reads straight to it) decompresses into the caller's buffer;
#: GzipFile's own ``readinto`` (io.BufferedIOBase's) reads a new bytes object and copies it. They are
#: not public API, so each is used only where present, with the GzipFile class as the fallback.
_DIRECT_READERS: dict[str, Callable[[BinaryIO, int], Any]] = {
    name: reader
    for name, module in (("isal", isal_zlib), ("zlib-ng", zlib_ng))
    if (reader := getattr(module, "_GzipReader", None)) is not None
}
_DIRECT_READ_BUFFER = 512 * 1024  # compressed bytes per file read: what both GzipFile classes use


def available_gzip_backends() -> tuple[str, ...]:
    """Names of the streaming gzip backends importable here, fastest first.

    Measured here (a 32 MiB int16 volume gzipped at level 1, read sequentially in 1 MiB ``readinto``
    calls, page cache warm, one core): ISA-L and zlib-ng about equal and fastest, stdlib zlib about half
    their speed. libdeflate decodes faster still into one whole buffer, but it needs the whole output as a
    temporary and cannot overlap with scaling; streaming in chunks lets gpuimg scale chunk k while
    decompressing chunk k+1, which wins on every machine with two cores or more.
    """
    return tuple(_SEQUENTIAL_OPENERS)


def get_gzip_backend() -> str:
    """The backend :func:`open_sequential` uses now."""
    return settings.gzip_backend or available_gzip_backends()[0]


def set_gzip_backend(name: str | None) -> None:
    """Force the gzip backend by name (see :func:`available_gzip_backends`); None: fastest.

    The setting is process-wide (``gpuimg.config.settings.gzip_backend``). It also picks
    :class:`GzipReader`'s engine when the named backend can stream with checkpoints ('zlib' or
    'zlib-ng').
    """
    settings.gzip_backend = name


@contextmanager
def gzip_backend(name: str | None) -> Iterator[None]:
    """Context manager form of :func:`set_gzip_backend` (restores the previous one)."""
    with configure(gzip_backend=name):
        yield


class SequentialGzipReader(ForwardStream):
    """Forward reading of a whole gzip file with the fastest streaming backend.

    For whole-array reads, where no seek index is wanted: ``readinto`` decompresses straight into the
    caller's buffer. Every member's CRC and size are checked at its end; corrupt or truncated streams
    raise :class:`~gpuimg.errors.CompressedStreamError` naming the file. ``path`` may be an open
    descriptor, read from its start and left open.
    """

    format_name = "gzip"
    _errors = _STREAM_ERRORS

    def __init__(self, path: str | os.PathLike[str] | int, *, name: str | None = None) -> None:
        self._open_raw(path, name)
        backend = get_gzip_backend()
        if backend in _DIRECT_READERS:
            direct = _DIRECT_READERS[backend](self._raw, _DIRECT_READ_BUFFER)
            self._reader = io.BufferedReader(direct)
        else:
            self._reader = _SEQUENTIAL_OPENERS[backend](fileobj=self._raw, mode="rb")


def _stream_engine() -> ModuleType:
    """zlib-compatible module whose decompressors support ``copy()``, fastest allowed."""
    if settings.gzip_backend == "zlib" or zlib_ng is None:
        return zlib
    return zlib_ng


def gzip_uncompressed_size(path: str | os.PathLike[str] | int) -> int:
    """The gzip trailer's ISIZE: a hint of the decompressed size.

    Only a hint: it is the last member's size modulo 2**32, and a corrupt or
    hostile file can say anything, so cap any allocation made from it.
    Returns 0 for files too short to hold a gzip member. ``path`` may be an open descriptor (read
    with ``pread``, its position unchanged).
    """
    if not isinstance(path, int):
        with open(path, "rb") as raw:
            return gzip_uncompressed_size(raw.fileno())
    size = os.fstat(path).st_size
    if size < 18:  # 10-byte header + 8-byte trailer
        return 0
    return int.from_bytes(os.pread(path, 4, size - 4), "little")
