"""gpuimg: nibabel's image model for NIfTI-1, NIfTI-2 and Analyze, fast to numpy and straight to CuPy.

>>> import gpuimg
>>> img = gpuimg.load(gpuimg.data.sample_path())
>>> img.shape, gpuimg.is_proxy(img.dataobj)
((40, 48, 36, 6), True)
"""

from __future__ import annotations

from gpuimg import (
    affines,
    analyze,
    data,
    filebasedimages,
    funcs,
    nifti1,
    nifti2,
    orientations,
    spatialimages,
    spm2analyze,
    spm99analyze,
)
from gpuimg.arrayproxy import ArrayProxy, is_proxy
from gpuimg.dask import to_dask
from gpuimg.device import empty_cache as empty_device_cache
from gpuimg.errors import (
    CompressedStreamError,
    DeviceMemoryError,
    DeviceUnavailableError,
    ExpiredDeprecationError,
    FileChangedError,
    GpuimgError,
    HeaderDataError,
    HeaderError,
    ImageFileError,
    ScalingError,
    TruncatedDataError,
    WriterError,
)
from gpuimg.formats.analyze import AnalyzeImage, Spm2AnalyzeImage, Spm99AnalyzeImage
from gpuimg.formats.nifti1 import Nifti1Image, Nifti1Pair
from gpuimg.formats.nifti2 import Nifti2Image, Nifti2Pair
from gpuimg.funcs import as_closest_canonical, concat_images, four_to_three, squeeze_image
from gpuimg.headers.analyze import AnalyzeHeader
from gpuimg.headers.nifti1 import Nifti1Header, Nifti1PairHeader
from gpuimg.headers.nifti2 import Nifti2Header, Nifti2PairHeader
from gpuimg.headers.spm import Spm2AnalyzeHeader, Spm99AnalyzeHeader
from gpuimg.images.dataobj import DataobjImage
from gpuimg.images.filebased import FileBasedImage
from gpuimg.images.spatial import SpatialImage
from gpuimg.loader import Loader
from gpuimg.loadsave import load, save
from gpuimg.orientations import OrientationError, aff2axcodes, apply_orientation, io_orientation
from gpuimg.torch import to_torch

__version__ = "0.1.0"

__all__ = [
    "AnalyzeHeader",
    "AnalyzeImage",
    "ArrayProxy",
    "CompressedStreamError",
    "DataobjImage",
    "DeviceMemoryError",
    "DeviceUnavailableError",
    "ExpiredDeprecationError",
    "FileBasedImage",
    "FileChangedError",
    "GpuimgError",
    "HeaderDataError",
    "HeaderError",
    "ImageFileError",
    "Loader",
    "Nifti1Header",
    "Nifti1Image",
    "Nifti1Pair",
    "Nifti1PairHeader",
    "Nifti2Header",
    "Nifti2Image",
    "Nifti2Pair",
    "Nifti2PairHeader",
    "OrientationError",
    "ScalingError",
    "SpatialImage",
    "Spm2AnalyzeHeader",
    "Spm2AnalyzeImage",
    "Spm99AnalyzeHeader",
    "Spm99AnalyzeImage",
    "TruncatedDataError",
    "WriterError",
    "__version__",
    "aff2axcodes",
    "apply_orientation",
    "affines",
    "analyze",
    "as_closest_canonical",
    "concat_images",
    "data",
    "empty_device_cache",
    "filebasedimages",
    "four_to_three",
    "funcs",
    "io_orientation",
    "is_proxy",
    "load",
    "nifti1",
    "nifti2",
    "orientations",
    "save",
    "spatialimages",
    "spm2analyze",
    "spm99analyze",
    "squeeze_image",
    "to_dask",
    "to_torch",
]
