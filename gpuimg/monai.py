"""A MONAI image reader that reads NIfTI through gpuimg: ``LoadImage(reader=GpuimgReader())``.

:class:`GpuimgReader` takes the options of MONAI's ``NibabelReader`` and gives the same arrays and
metadata, bit for bit, with gpuimg doing the reading. ``device="cuda"`` hands MONAI CuPy arrays read
through gpuimg's GPU path, scaled there with the header's ``scl_slope``/``scl_inter`` (MONAI's own
``to_gpu`` copies the raw on-disk values and ignores the scale factors).

Importing this module imports MONAI (``pip install 'gpuimg[monai]'``); ``import gpuimg`` does not.

.. code-block:: python

    from monai.transforms import LoadImage
    from gpuimg.monai import GpuimgReader

    load = LoadImage(reader=GpuimgReader(as_closest_canonical=True), image_only=True)
    volume = load("t1.nii.gz")  # a MetaTensor, as with reader="NibabelReader"
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

import gpuimg
from gpuimg.arrayproxy import read_dataobj
from gpuimg.destination import destination
from gpuimg.funcs import as_closest_canonical
from gpuimg.images.spatial import SpatialImage
from gpuimg.optional import import_optional

_image_reader = import_optional(
    "monai.data.image_reader", package="monai", hint="pip install 'gpuimg[monai]'"
)
_monai_utils = import_optional("monai.utils", package="monai", hint="pip install 'gpuimg[monai]'")

#: MONAI's reader, imported at run time: not a base mypy can follow.
_NibabelReader: Any = _image_reader.NibabelReader

__all__ = ["GpuimgReader"]


class GpuimgReader(_NibabelReader):
    """MONAI ``ImageReader`` for NIfTI files, read by gpuimg; a drop-in for ``NibabelReader``.

    Parameters
    ----------
    channel_dim : int, str or None, optional
        As ``NibabelReader``: the channel axis of the files (None: none, or the last of a 4D file).
    as_closest_canonical : bool, optional
        Reorient to the closest RAS+ orientation (``affine`` in the metadata follows;
        ``original_affine`` keeps the file's).
    squeeze_non_spatial_dims : bool, optional
        Drop length-1 non-spatial axes, as ``NibabelReader``.
    device : None, 'cpu', 'cuda', 'cuda:N' or int, keyword only
        None/'cpu' gives numpy arrays. A GPU gives CuPy arrays on it, read through gpuimg's GPU path
        and scaled there, with the dtype and values the host read gives.
    **kwargs
        Passed to :func:`gpuimg.load` (``mmap``, ``keep_file_open``).
    """

    def __init__(
        self,
        channel_dim: str | int | None = None,
        as_closest_canonical: bool = False,
        squeeze_non_spatial_dims: bool = False,
        *,
        device: Any = None,
        **kwargs,
    ) -> None:
        super().__init__(
            channel_dim=channel_dim,
            as_closest_canonical=as_closest_canonical,
            squeeze_non_spatial_dims=squeeze_non_spatial_dims,
            **kwargs,
        )
        self.destination = destination(device=device)
        # MONAI stacks several files with CuPy when this is set.
        self.to_gpu = not self.destination.on_host

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """True for ``.nii`` and ``.nii.gz`` files (nibabel need not be installed)."""
        return _image_reader.is_supported_format(filename, ["nii", "nii.gz"])

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs):
        """Load one image (or a list) with :func:`gpuimg.load`; only headers are read here.

        ``kwargs`` override the reader's :func:`gpuimg.load` options.
        """
        filenames = _monai_utils.ensure_tuple(data)
        self.filenames = filenames
        options = {**self.kwargs, **kwargs}
        images = [
            _image_reader.correct_nifti_header_if_necessary(gpuimg.load(name, **options))
            for name in filenames
        ]
        return images if len(filenames) > 1 else images[0]

    def get_data(self, img) -> tuple[Any, dict]:
        """The data array (stacked along a new first axis for several images) and the metadata dict.

        The metadata are ``NibabelReader``'s: the header fields, ``affine``, ``original_affine``,
        ``spatial_shape``, ``space``, ``original_channel_dim`` and ``as_closest_canonical``.
        """
        arrays = []
        compatible_meta: dict = {}
        keys = _monai_utils.MetaKeys
        for image in _monai_utils.ensure_tuple(img):
            meta = self._get_meta_dict(image)
            if keys.PIXDIM in meta:
                meta[keys.ORIGINAL_PIXDIM] = np.array(meta[keys.PIXDIM], copy=True)
            meta[keys.AFFINE] = self._get_affine(image)
            meta[keys.ORIGINAL_AFFINE] = self._get_affine(image)
            meta["as_closest_canonical"] = self.as_closest_canonical
            data, image = self._read_array(image)
            meta[keys.AFFINE] = self._get_affine(image)
            meta[keys.SPATIAL_SHAPE] = self._get_spatial_shape(image)
            meta[keys.SPACE] = _monai_utils.SpaceKeys.RAS
            if self.squeeze_non_spatial_dims:
                for axis in range(len(data.shape), len(meta[keys.SPATIAL_SHAPE]), -1):
                    if data.shape[axis - 1] == 1:
                        data = data.reshape(data.shape[: axis - 1] + data.shape[axis:])
            arrays.append(data)
            if self.channel_dim is None:
                spatial = len(data.shape) == len(meta[keys.SPATIAL_SHAPE])
                meta[keys.ORIGINAL_CHANNEL_DIM] = float("nan") if spatial else -1
            else:
                meta[keys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
            _image_reader._copy_compatible_dict(meta, compatible_meta)
        data = _image_reader._stack_images(arrays, compatible_meta, to_cupy=self.to_gpu)
        return data, compatible_meta

    def _read_array(self, image: SpatialImage) -> tuple[Any, SpatialImage]:
        """The data MONAI gets (``np.asanyarray(img.dataobj)``'s dtype and values, on the host or read
        and scaled on the reader's GPU) and the image they belong to (the canonical one with
        ``as_closest_canonical``)."""
        data = read_dataobj(image.dataobj, self.destination)
        image = type(image)(data, image.affine, image.header)
        if self.as_closest_canonical:
            image = as_closest_canonical(image)
        return image.dataobj, image
