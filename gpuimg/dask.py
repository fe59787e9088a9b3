"""Dask interop: images as lazy dask arrays whose chunks read through the array proxy.

Each chunk of :func:`to_dask`'s array is one ``proxy[slicer]`` read, scaled to ``dtype`` (exactly as
``get_fdata(dtype=...)`` scales) on the host, or streamed to a GPU and scaled there. The graph holds
the proxy, which pickles as the file name and the header facts it needs, so a task sent to a
``dask.distributed`` worker carries no data and the worker reads only its own chunk.

Dask is optional: it is imported when these functions are first used, and a missing install raises
an :class:`ImportError` that says how to get it.

>>> import gpuimg
>>> from gpuimg.dask import to_dask
>>> array = to_dask(gpuimg.data.sample_path())
>>> array.shape, array.chunksize
((40, 48, 36, 6), (40, 48, 36, 1))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gpuimg.arrayproxy import is_proxy
from gpuimg.destination import destination
from gpuimg.loadsave import load
from gpuimg.optional import import_optional

__all__ = ["VolumeSource", "get_dask_array", "stack_files", "to_dask"]

INSTALL_HINT = "pip install 'gpuimg[dask]'"


def get_dask_array() -> ModuleType:
    """Import and return ``dask.array``.

    Raises
    ------
    ImportError
        Dask is not installed; the message says how to install it.
    """
    return import_optional("dask.array", package="dask", hint=INSTALL_HINT)


class VolumeSource:
    """The array-like that dask slices: an image proxy read scaled to ``dtype`` on ``device``.

    Parameters
    ----------
    proxy : gpuimg.ArrayProxy
        The image's data object.
    dtype : numpy dtype
        dtype of every chunk.
    device : None, 'cpu', 'cuda', 'cuda:N' or int
        Where chunks live; kept as given, so ``'cuda'`` means each worker's current GPU.
    """

    def __init__(self, proxy: Any, dtype: Any, device: Any = None) -> None:
        self.proxy = proxy
        self.dtype = np.dtype(dtype)
        self.device = None if device == "cpu" else device
        self.shape = tuple(proxy.shape)
        self.ndim = len(self.shape)

    def __getitem__(self, slicer: Any) -> Any:
        return self.proxy.read(slicer, dtype=self.dtype, device=self.device)

    def __dask_tokenize__(self) -> tuple:
        # Name chunks by what they read, including the file's size and modification time, so that
        # rewriting a file never reuses stale results.
        name = self.proxy.file_like
        stamp = (os.stat(name).st_size, os.stat(name).st_mtime_ns) if _is_path(name) else id(name)
        return ("gpuimg", os.fspath(name) if _is_path(name) else "", stamp, self.shape,
                self.proxy.dtype.str, self.proxy.offset, self.proxy.slope, self.proxy.inter,
                self.dtype.str, str(self.device))  # fmt: skip

    def __repr__(self) -> str:
        return f"<VolumeSource {self.proxy!r} as {self.dtype} on {self.device or 'cpu'}>"


def _is_path(obj: Any) -> bool:
    return isinstance(obj, (str, os.PathLike))


def default_chunks(shape: Sequence[int]) -> tuple[int, ...]:
    """One chunk per 3D volume: whole spatial axes, length 1 along the others."""
    return tuple(shape[:3]) + (1,) * max(len(shape) - 3, 0)


def to_dask(
    img_or_path: Any, chunks: Any = None, *, dtype: Any = np.float32, device: Any = "cpu"
) -> Any:
    """A lazy dask array of an image's scaled data.

    Parameters
    ----------
    img_or_path : str, os.PathLike or image
        A file name, or an image whose ``dataobj`` is an array proxy.
    chunks : optional
        Any dask chunk specification; default one chunk per 3D volume (:func:`default_chunks`).
    dtype : numpy dtype, keyword only
        dtype of the data, scaled as ``get_fdata(dtype=dtype)`` scales it.
    device : None, 'cpu', 'cuda', 'cuda:N' or int, keyword only
        Host chunks (numpy) or GPU chunks (CuPy, with a CuPy ``meta``).

    Returns
    -------
    dask.array.Array

    Raises
    ------
    ValueError
        The image's data are in memory, not behind a proxy.
    """
    da = get_dask_array()
    img = load(img_or_path) if _is_path(img_or_path) else img_or_path
    proxy = img.dataobj
    if not is_proxy(proxy):
        raise ValueError(
            f"image data object is {type(proxy).__name__}, expected an array proxy (an image "
            "loaded from a file); for data in memory use dask.array.from_array(img.get_fdata())"
        )
    source = VolumeSource(proxy, dtype, device)
    meta = destination(device=source.device).empty((0,) * source.ndim, source.dtype)
    chunks = default_chunks(source.shape) if chunks is None else chunks
    return da.from_array(source, chunks=chunks, asarray=False, fancy=False, meta=meta)


def stack_files(
    paths: Sequence[str | os.PathLike],
    chunks: Any = None,
    *,
    dtype: Any = np.float32,
    device: Any = "cpu",
) -> Any:
    """Stack many image files on a new first axis, lazily.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files, all of one shape.
    chunks : optional
        Chunks of each file's array (as :func:`to_dask`); the new axis has chunks of 1.
    dtype, device : keyword only
        As :func:`to_dask`.

    Returns
    -------
    dask.array.Array
        Shape ``(len(paths), *shape)``.

    Raises
    ------
    ValueError
        No paths, or a file whose shape differs from the first one's (the message names both).
    """
    if not paths:
        raise ValueError("paths is empty, expected at least one image file")
    arrays = [to_dask(path, chunks, dtype=dtype, device=device) for path in paths]
    for path, array in zip(paths, arrays, strict=True):
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"{os.fspath(path)}: image shape is {array.shape}, expected {arrays[0].shape} "
                f"(the shape of {os.fspath(paths[0])}) to stack the files"
            )
    return get_dask_array().stack(arrays)
