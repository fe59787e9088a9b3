"""Rewrite gzip image files as BGZF, in place and atomically (``gpuimg convert --bgzf``).

The rewrite works on the gzip layer only: the file is decompressed as a stream and written again as
BGZF blocks (:class:`~gpuimg.io.bgzf.BgzfWriter`), so the decompressed bytes, header and data alike,
stay exactly as they were, whatever the image format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gpuimg.config import settings
from gpuimg.io.atomic import AtomicFiles
from gpuimg.io.bgzf import is_bgzf_file
from gpuimg.io.buffers import default_pool
from gpuimg.io.openers import open_sequential

__all__ = ["IMAGE_GZIP_SUFFIXES", "Rewrite", "gzip_images_under", "rewrite_as_bgzf"]

#: Names of the gzip files a directory walk picks up (any case).
IMAGE_GZIP_SUFFIXES = (".nii.gz", ".img.gz", ".hdr.gz")
_COPY_BYTES = 4 << 20  # decompressed bytes moved per step of a rewrite


@dataclass(frozen=True)
class Rewrite:
    """What :func:`rewrite_as_bgzf` did to one file: its size before and after, and whether it ran."""

    path: str
    bytes_before: int
    bytes_after: int
    rewritten: bool


def rewrite_as_bgzf(path: str | os.PathLike[str], *, compresslevel: int | None = None) -> Rewrite:
    """Rewrite the gzip file ``path`` as BGZF, in place; a file already BGZF is left as it is.

    The new file replaces the old one atomically and durably, keeping its permissions (see
    :mod:`gpuimg.io.atomic`), so an error leaves the original intact.

    Parameters
    ----------
    path : str or os.PathLike
        A gzip file (one stream or several members).
    compresslevel : int, optional
        gzip level 0-9 (default: ``gpuimg.config.settings.compresslevel``).

    Raises
    ------
    CompressedStreamError
        ``path`` is not gzip, or is corrupt or truncated.
    """
    name = os.fspath(path)
    before = os.path.getsize(name)
    if is_bgzf_file(name):
        return Rewrite(name, before, before, False)
    level = settings.compresslevel if compresslevel is None else compresslevel
    with (
        open_sequential(name) as source,
        AtomicFiles() as files,
        default_pool.borrow(_COPY_BYTES) as buffer,
    ):
        target = files.create(name, compresslevel=level, bgzf=True)
        while count := source.readinto(buffer):
            target.write(buffer[:count])
    return Rewrite(name, before, os.path.getsize(name), True)


def gzip_images_under(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The files to rewrite: each file given, and the gzip images anywhere under each directory.

    Directories are walked recursively, in sorted order, picking the names that end in one of
    :data:`IMAGE_GZIP_SUFFIXES` (temporary files of interrupted saves end in ``.tmp``).
    """
    found: list[str] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(os.fspath(path))
            continue
        for candidate in sorted(path.rglob("*")):
            lower = candidate.name.lower()
            if candidate.is_file() and lower.endswith(IMAGE_GZIP_SUFFIXES):
                found.append(os.fspath(candidate))
    return found
