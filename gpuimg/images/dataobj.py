"""Images whose data live in a ``dataobj``: an array, or an array proxy that reads on demand.

Caching follows nibabel's documented semantics. ``get_fdata(caching='fill')`` stores the array it returns and
hands back that very object next time (so mutations show through); ``caching='unchanged'`` never fills an
empty cache but returns a full one; ``uncache()`` empties the caches. Host and device reads have caches of
their own (one per GPU), so ``in_memory`` is True when any of them is set. On an array image the caching
flags change nothing: the data already are in memory.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np

from gpuimg.arrayproxy import (
    ArrayProxy,
    is_proxy,
    normalize_keep_file_open,
    normalize_mmap,
    read_dataobj,
)
from gpuimg.destination import destination
from gpuimg.errors import ExpiredDeprecationError
from gpuimg.images.filebased import FileBasedImage

_CACHING = ("fill", "unchanged")


def _check_caching(caching: str) -> None:
    if caching not in _CACHING:
        raise ValueError(f"caching value should be 'fill' or 'unchanged', found {caching!r}")


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise ValueError(f"dtype {dtype!r} is not a numpy dtype") from error
    if not issubclass(resolved.type, np.inexact):
        raise ValueError(f"{resolved} should be floating point type")
    return resolved


class DataobjImage(FileBasedImage):
    """Template class for images that have ``dataobj`` data stores.

    Parameters
    ----------
    dataobj : array-like or array proxy
        Returns an array from ``np.asanyarray(dataobj)`` and has ``shape`` and ``ndim``. A CuPy array is
        accepted too: ``get_fdata()`` then copies it to the host, ``get_fdata(device=...)`` uses it as is
        when it is on that device with that dtype (else a copy).
    header : header or mapping or None, optional
    extra : mapping or None, optional
    file_map : mapping or None, optional
    """

    ImageArrayProxy = ArrayProxy

    def __init__(self, dataobj, header=None, extra=None, file_map=None) -> None:
        super().__init__(header=header, extra=extra, file_map=file_map)
        self._dataobj = dataobj
        self._data_cache = None
        # host (None) or device id -> (array, event it is ready after: None on the host)
        self._fdata_cache: dict[int | None, tuple[Any, Any]] = {}
        # Held while a caching read fills a cache: threads asking at the same time wait for that one
        # read and get the very object it cached.
        self._cache_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_cache_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache_lock = threading.Lock()

    @property
    def dataobj(self):
        """The array or array proxy holding the image data."""
        return self._dataobj

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data."""
        return tuple(self._dataobj.shape)

    @property
    def ndim(self) -> int:
        """Number of data dimensions."""
        return self._dataobj.ndim

    @property
    def in_memory(self) -> bool:
        """True when any array data is in a memory cache (get_data, get_fdata host or device caches)."""
        return (
            not is_proxy(self._dataobj) or self._data_cache is not None or bool(self._fdata_cache)
        )

    def get_fdata(self, caching: str = "fill", dtype=np.float64, *, device=None):
        """Return floating point image data with any necessary scaling applied.

        Parameters
        ----------
        caching : {'fill', 'unchanged'}, optional
            'fill' stores the returned array so that the next call returns the very same object;
            'unchanged' never fills an empty cache, but returns a full one.
        dtype : numpy dtype specifier, optional
            A floating point (or complex) dtype; the data are returned as this type.
        device : None, 'cpu', 'cuda', 'cuda:N', int or cupy.cuda.Device, optional, keyword only
            None/'cpu' returns numpy; a GPU returns a CuPy array on that GPU, scaled there from the raw
            on-disk values. Host and device results are cached separately (one cache per GPU). A device
            array, cached or not, is ready on that device's current stream (the caller's).

        Returns
        -------
        numpy.ndarray or cupy.ndarray
        """
        _check_caching(caching)
        dtype = _float_dtype(dtype)
        where = destination(device=device)

        def cached():
            hit, ready = self._fdata_cache.get(where.device_id, (None, None))
            if hit is None or hit.dtype.type != dtype.type:
                return None
            # On a GPU the caller may be on another stream than the one the array was made ready on.
            where.wait_ready(ready)
            return hit

        def store(data) -> None:
            self._fdata_cache[where.device_id] = (data, where.ready_event())

        return self._read_once(
            caching, cached, lambda: read_dataobj(self._dataobj, where, dtype=dtype), store
        )

    def _read_once(self, caching: str, cached, read, store):
        """A cache hit, else ``read()`` (stored when ``caching`` is 'fill').

        A filling read holds the image's cache lock, so threads asking at the same time wait for it
        and return the object it stored: one read per image, dtype and device.
        """
        hit = cached()
        if hit is not None:
            return hit
        if caching != "fill":
            return read()
        with self._cache_lock:
            hit = cached()
            if hit is not None:
                return hit
            data = read()
            store(data)
            return data

    def get_data(self, caching: str = "fill"):
        """Return image data as ``np.asanyarray(dataobj)`` would (deprecated: use :meth:`get_fdata`).

        Kept with a DeprecationWarning, as in nibabel 2.x/3.x; caching as for :meth:`get_fdata`.
        """
        warnings.warn(
            "get_data() is deprecated in favor of get_fdata(), which has a more predictable "
            "return type. To obtain get_data() behavior going forward, use "
            "numpy.asanyarray(img.dataobj).",
            DeprecationWarning,
            stacklevel=2,
        )
        _check_caching(caching)

        def store(data) -> None:
            self._data_cache = data

        return self._read_once(
            caching, lambda: self._data_cache, lambda: np.asanyarray(self._dataobj), store
        )

    def get_shape(self):
        """Expired: use the ``shape`` property."""
        raise ExpiredDeprecationError(
            "get_shape method is deprecated. Please use the img.shape property instead.\n"
            "* deprecated from version: 1.2\n"
            "* Raises ExpiredDeprecationError as of version: 3.0"
        )

    def uncache(self) -> None:
        """Drop every cached read: host caches and device caches.

        On a proxy image, the next read comes from the file again. Device memory goes back to CuPy's pool
        as soon as no other reference to the cached array remains; :func:`gpuimg.empty_device_cache`
        returns pooled blocks to the driver. On an array image this changes nothing visible.
        """
        self._data_cache = None
        self._fdata_cache.clear()

    @classmethod
    def from_file_map(cls, file_map, *, mmap=True, keep_file_open=None):
        """Create an image from the files in ``file_map``.

        Parameters
        ----------
        file_map : dict
            ``{file type: FileHolder}``.
        mmap : {True, False, 'c', 'r'}, optional, keyword only
            Memory-map uncompressed data where possible; True means 'c'.
        keep_file_open : {None, True, False}, optional, keyword only
            Keep one file handle (and gzip seek index) open for the proxy's lifetime.
        """
        raise NotImplementedError

    @classmethod
    def from_filename(cls, filename, *, mmap=True, keep_file_open=None):
        """Create an image from ``filename``; ``mmap`` and ``keep_file_open`` as in :meth:`from_file_map`."""
        normalize_mmap(mmap)
        normalize_keep_file_open(keep_file_open)
        file_map = cls.filespec_to_file_map(filename)
        return cls.from_file_map(file_map, mmap=mmap, keep_file_open=keep_file_open)

    load = from_filename
