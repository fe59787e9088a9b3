"""PyTorch interop: zero-copy DLPack hand-off, a tensor-yielding loader and a map-style Dataset.

PyTorch is optional: it is imported when one of these is first used, and a missing install raises
an :class:`ImportError` that says how to get it.

* :func:`to_torch` shares the memory of a numpy or CuPy array with a tensor (``torch.from_dlpack``):
  no copy, strides kept (a Fortran-ordered volume becomes a non-contiguous tensor).
* :class:`TorchLoader` wraps a :class:`gpuimg.loader.Loader` and yields tensors (on the loader's GPU
  when it has one). Like the loader's arrays, a tensor from a reused buffer is valid until the next
  batch is asked for.
* :class:`NiftiDataset` is for the usual ``torch.utils.data.DataLoader`` pattern with worker
  processes: item ``i`` is ``(volume tensor, affine tensor)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gpuimg.loader import Loader
from gpuimg.loadsave import load
from gpuimg.optional import import_optional

# NiftiDataset is left out: a star import would then import torch (see ``__getattr__``).
__all__ = ["TorchLoader", "get_torch", "to_torch"]

INSTALL_HINT = "pip install 'gpuimg[torch]' (or see https://pytorch.org for a CUDA build)"


def get_torch() -> ModuleType:
    """Import and return ``torch``.

    Raises
    ------
    ImportError
        PyTorch is not installed; the message says how to install it.
    """
    return import_optional("torch", package="PyTorch", hint=INSTALL_HINT)


def to_torch(array: Any) -> Any:
    """Share ``array``'s memory with a new tensor, without copying.

    Parameters
    ----------
    array : numpy.ndarray or cupy.ndarray
        Any array exporting DLPack (``__dlpack__``). numpy arrays must be writable and in native byte
        order: DLPack has no read-only flag and no byte order.

    Returns
    -------
    torch.Tensor
        On the array's device, with its shape, dtype and strides.

    Raises
    ------
    ValueError
        A read-only or byte-swapped numpy array (make a copy with ``np.array(a)`` first).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> t = to_torch(a)
    >>> t.data_ptr() == a.ctypes.data
    True
    """
    torch = get_torch()
    if isinstance(array, np.ndarray):
        if not array.dtype.isnative:
            raise ValueError(
                f"array dtype is {array.dtype} (byte-swapped), expected native byte order; "
                "DLPack cannot describe it: convert with array.astype(array.dtype.newbyteorder('='))"
            )
        if not array.flags.writeable:
            raise ValueError(
                "array is read-only (a memory map or a cached image?), expected a writable array; "
                "DLPack cannot mark a tensor read-only: pass np.array(array) to copy it"
            )
    return torch.from_dlpack(array)


class TorchLoader:
    """Yield a :class:`~gpuimg.loader.Loader`'s batches as tensors, without copying.

    Parameters
    ----------
    loader : gpuimg.loader.Loader
        The loader to wrap; ``len``, ``set_epoch`` and ``close`` pass through to it.

    Examples
    --------
    >>> import gpuimg
    >>> batches = TorchLoader(Loader([gpuimg.data.sample_path()] * 2, batch_size=2))
    >>> [tuple(batch.shape) for batch in batches]
    [(2, 40, 48, 36, 6)]
    """

    def __init__(self, loader: Loader) -> None:
        get_torch()
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield to_torch(batch)

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (see :meth:`gpuimg.loader.Loader.set_epoch`)."""
        self.loader.set_epoch(epoch)

    def close(self) -> None:
        """Stop the wrapped loader's workers."""
        self.loader.close()


def _dataset_base() -> type:
    return get_torch().utils.data.Dataset


def __getattr__(name: str) -> Any:
    # NiftiDataset subclasses torch.utils.data.Dataset, so it is made on first access: importing this
    # module needs no torch, and pickle finds the class again under its name.
    if name == "NiftiDataset":
        dataset_class = _make_dataset_class(get_torch())
        globals()[name] = dataset_class
        return dataset_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_dataset_class(torch: ModuleType) -> type:
    dataset: Any = torch.utils.data.Dataset  # torch is imported on first use: no static base

    class NiftiDataset(dataset):
        """Map-style dataset of image files: item ``i`` is ``(volume, affine)`` as tensors.

        Parameters
        ----------
        paths : sequence of str or os.PathLike
            Image files.
        dtype : numpy dtype, optional
            dtype of the volumes (values as ``get_fdata(dtype=dtype)``); float32 by default.
        transform : callable, optional
            Applied to each volume (a numpy array in on-disk Fortran order) before it becomes a
            tensor.

        Notes
        -----
        Meant for ``torch.utils.data.DataLoader(dataset, num_workers=N)``: each worker process reads
        whole items and the DataLoader collates them. The volume tensor shares the memory of the array
        read (Fortran order, so non-contiguous); ``default_collate`` then copies it into a C-contiguous
        batch. A dataset pickles as its paths and options.
        """

        def __init__(
            self,
            paths: Sequence[str | os.PathLike],
            dtype: Any = np.float32,
            transform: Callable[[np.ndarray], np.ndarray] | None = None,
        ) -> None:
            self.paths = [os.fspath(path) for path in paths]
            self.dtype = np.dtype(dtype)
            self.transform = transform

        def __len__(self) -> int:
            return len(self.paths)

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            img = load(self.paths[index])
            volume = img.get_fdata(caching="unchanged", dtype=self.dtype)
            if self.transform is not None:
                volume = self.transform(volume)
            return to_torch(volume), to_torch(np.array(img.affine))

    NiftiDataset.__module__ = __name__
    NiftiDataset.__qualname__ = "NiftiDataset"
    return NiftiDataset
