"""Compressed containers besides gzip: bzip2 and Zstandard, as nibabel opens them.

nibabel reads and writes ``.bz2`` files (the standard library's :mod:`bz2`) and ``.zst`` files
(``compression.zstd`` from Python 3.14, else the ``backports.zstd`` package when it is installed);
gpuimg does the same. Both are read as streams: forwards, decompressing from the start of the file (a
backward seek starts again), which serves whole reads and slices alike; the gzip files gpuimg indexes
and decodes in parallel are :mod:`gpuimg.io.openers`'. Corrupt or truncated streams raise
:class:`~gpuimg.errors.CompressedStreamError` naming the file.

>>> container_for("t1.nii.bz2").format_name, container_for("T1.IMG.ZST").suffix
('bzip2', '.zst')
>>> container_for("t1.nii.gz") is None  # gzip has its own readers
True
"""

from __future__ import annotations

import bz2
import importlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpuimg.io.positioned import ForwardStream
from gpuimg.optional import import_optional

__all__ = [
    "COMPRESSED_SUFFIXES",
    "MAX_DEFLATE_RATIO",
    "Container",
    "StreamReader",
    "compressed_suffix",
    "container_for",
    "max_uncompressed_size",
    "signature_mismatch",
]

#: Every compression suffix gpuimg reads and writes (nibabel's), gzip's first.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst")

#: The most deflate expands data (about 1032:1): a gzip file's data cannot exceed its size times this.
#: bzip2 and zstd expand runs far more, so their files' sizes bound nothing.
MAX_DEFLATE_RATIO = 1032

#: First bytes of a file of each compression suffix, and the format's name (nibabel's table).
_SIGNATURES = {
    ".gz": (b"\x1f\x8b", "gzip"),
    ".bz2": (b"BZh", "bzip2"),
    ".zst": (b"\x28\xb5\x2f\xfd", "zstd"),
}


def compressed_suffix(file_like: Any) -> str:
    """The compression suffix ``file_like`` ends with (any case, returned lower case), or ''.

    File objects are read through as given, so they have none.
    """
    if not isinstance(file_like, (str, os.PathLike)):
        return ""
    name = os.fspath(file_like).lower()
    return next((suffix for suffix in COMPRESSED_SUFFIXES if name.endswith(suffix)), "")


def max_uncompressed_size(path: str | os.PathLike[str]) -> int | None:
    """The most bytes ``path`` can hold once decompressed: its size, deflate's bound for gzip.

    None for bzip2 and zstd files, whose expansion has no useful bound.
    """
    size = os.path.getsize(path)
    suffix = compressed_suffix(path)
    if not suffix:
        return size
    return size * MAX_DEFLATE_RATIO + (1 << 16) if suffix == ".gz" else None


def signature_mismatch(path: str) -> str:
    """nibabel's message when a compressed file's first bytes are not its suffix's format, else ''.

    A file that cannot be read is reported too (``"Could not read file: ..."``).
    """
    suffix = compressed_suffix(path)
    if not suffix:
        return ""
    signature, format_name = _SIGNATURES[suffix]
    try:
        with open(path, "rb") as fileobj:
            found = fileobj.read(len(signature))
    except OSError:
        return f"Could not read file: {path}"
    return "" if found == signature else f"File {path} is not a {format_name} file"


def _zstd_module(name: str) -> Any:
    """The Zstandard module nibabel uses: ``compression.zstd``, else ``backports.zstd``."""
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:  # before Python 3.14
        return import_optional(
            "backports.zstd",
            package="backports.zstd",
            hint=f"{name}: zstd files need it before Python 3.14: pip install backports.zstd",
        )


def _open_bz2(fileobj: Any, mode: str, level: int, name: str) -> io.BufferedIOBase:
    bz2_mode: Any = mode  # "rb" or "wb"
    return bz2.BZ2File(fileobj, bz2_mode, compresslevel=max(level, 1))  # bzip2's levels are 1-9


def _open_zstd(fileobj: Any, mode: str, level: int, name: str) -> io.BufferedIOBase:
    zstd = _zstd_module(name)
    if mode.startswith("r"):
        return zstd.ZstdFile(fileobj, mode)
    # zstd's level 0 is its default level (3), which nibabel writes. Frames carry a checksum of their
    # content, so a reader sees corruption (nibabel's frames have none).
    options = {
        zstd.CompressionParameter.compression_level: level,
        zstd.CompressionParameter.checksum_flag: 1,
    }
    return zstd.ZstdFile(fileobj, mode, options=options)


def _no_errors(name: str) -> tuple[type[BaseException], ...]:
    return ()


def _zstd_errors(name: str) -> tuple[type[BaseException], ...]:
    return (_zstd_module(name).ZstdError,)


@dataclass(frozen=True)
class Container:
    """A compression format read and written as one stream.

    Attributes
    ----------
    suffix : str
        The file suffix that selects it (``'.bz2'``).
    format_name : str
        Its name, for messages.
    opener : callable
        ``opener(file, 'rb' or 'wb', level, name)``: the library's file object over ``file`` (a path
        or an open file object); ``name`` is the file to name in messages.
    errors : callable
        ``errors(name)``: the exceptions, besides ``OSError`` and ``EOFError``, that mean a corrupt
        stream.
    """

    suffix: str
    format_name: str
    opener: Callable[[Any, str, int, str], io.BufferedIOBase]
    errors: Callable[[str], tuple[type[BaseException], ...]]

    def open_write(
        self, path: str | os.PathLike[str], *, compresslevel: int = 1, fileobj: Any = None
    ) -> io.BufferedIOBase:
        """A compressing writer to ``path``, opened and owned, or to ``fileobj`` (left open) instead.

        ``compresslevel`` 0-9 is gpuimg's gzip level: bzip2 writes 0 as 1, zstd writes 0 as its default.
        """
        target = path if fileobj is None else fileobj
        return self.opener(target, "wb", compresslevel, os.fspath(path))

    def open_read(
        self, source: str | os.PathLike[str] | int, *, name: str | None = None
    ) -> StreamReader:
        """A forward reader of the decompressed bytes of ``source`` (a path or a descriptor, left open)."""
        return StreamReader(source, self, name=name)


_CONTAINERS = {
    ".bz2": Container(".bz2", "bzip2", _open_bz2, _no_errors),
    ".zst": Container(".zst", "zstd", _open_zstd, _zstd_errors),
}


def container_for(file_like: Any) -> Container | None:
    """The stream container of a ``.bz2`` or ``.zst`` path (any case); None for anything else."""
    return _CONTAINERS.get(compressed_suffix(file_like))


class StreamReader(ForwardStream):
    """The decompressed bytes of a ``.bz2`` or ``.zst`` file, read forwards.

    ``seek`` works (forwards by decompressing, backwards by starting again), ``fileno`` is the
    compressed file's. A corrupt or truncated stream raises
    :class:`~gpuimg.errors.CompressedStreamError` naming the file.

    Parameters
    ----------
    source : str, os.PathLike or int
        The file, or an open descriptor, read from its start and left open.
    container : Container
        Its format.
    name : str, optional
        The name to give in messages (default: the path).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | int,
        container: Container,
        *,
        name: str | None = None,
    ) -> None:
        self._open_raw(source, name)
        self.format_name = container.format_name
        try:
            self._reader = container.opener(self._raw, "rb", 0, self.name)
            self._errors = (EOFError, OSError, *container.errors(self.name))
        except BaseException:
            self._raw.close()
            raise
