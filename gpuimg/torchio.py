"""A TorchIO reader that reads NIfTI and Analyze through gpuimg: ``ScalarImage(path, reader=read_image)``.

TorchIO calls ``reader(path)`` and expects ``(tensor, affine)``: a (C, W, H, D) tensor and the 4 x 4
voxel-to-RAS affine. :func:`read_image` gives what TorchIO's own nibabel path gives (float32 data,
channels moved first), bit for bit, with gpuimg doing the reading; it needs PyTorch but not TorchIO.

.. code-block:: python

    import torchio as tio
    from gpuimg.torchio import read_image

    t1 = tio.ScalarImage("t1.nii.gz", reader=read_image)
    seg = tio.LabelMap("seg.nii.gz", reader=read_image)
"""

from __future__ import annotations

import os

import numpy as np

from gpuimg.loadsave import load
from gpuimg.torch import get_torch

__all__ = ["read_image"]


def read_image(path: str | os.PathLike):
    """Read ``path`` for TorchIO: ``(tensor, affine)``, as TorchIO's nibabel reader returns them.

    Parameters
    ----------
    path : str or os.PathLike
        A NIfTI-1/2 or Analyze file gpuimg can load.

    Returns
    -------
    tensor : torch.Tensor
        float32 data: 3D as loaded, 4D (W, H, D, C) as (C, W, H, D), 5D (W, H, D, 1, C) as (C, W, H, D).
    affine : numpy.ndarray
        The image's (4, 4) float64 affine.

    Raises
    ------
    ValueError
        For a 5D image whose fourth axis is longer than 1.
    """
    img = load(path, mmap=False)
    data = img.get_fdata(dtype=np.float32)
    if data.ndim == 5:
        if data.shape[3] != 1:
            raise ValueError(
                f"{os.fspath(path)}: 5D image of shape {data.shape} is not supported: "
                "expected length 1 on axis 3 (W, H, D, 1, C)"
            )
        data = data[..., 0, :]
    if data.ndim == 4:
        data = data.transpose(3, 0, 1, 2)
    return get_torch().as_tensor(data), img.affine
