"""Spatial images: a data object plus a voxel-to-world ``affine`` kept in step with the header."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from gpuimg import device as device_seam
from gpuimg.affines import voxel_sizes
from gpuimg.headers.generic import SpatialHeader
from gpuimg.images.dataobj import DataobjImage
from gpuimg.io.slicing import canonical_slicer
from gpuimg.optional import import_optional
from gpuimg.orientations import apply_orientation, inv_ornt_aff


def _obj_dtype(dataobj) -> np.dtype | None:
    dtype = getattr(dataobj, "dtype", None)
    return None if dtype is None else np.dtype(dtype)


class SpatialImage(DataobjImage):
    """An image with data, a header and an ``affine``.

    Parameters
    ----------
    dataobj : array-like or array proxy
    affine : None or (4, 4) array-like
        Voxel to world mapping; copied and stored as float64.
    header : header or mapping or None, optional
    extra : mapping or None, optional
    file_map : mapping or None, optional
    dtype : numpy dtype or None, optional
        On-disk dtype to write; defaults to the header's, else the array's.
    """

    header_class: ClassVar[type[Any]] = SpatialHeader  # a header class of gpuimg.headers
    #: True when the first three axes of the data are the spatial ones whatever the image's number of
    #: axes (nibabel's ``imageclasses.KNOWN_SPATIAL_FIRST``); ``img.slicer`` slices an image of four
    #: axes or more only then.
    spatial_axes_first: ClassVar[bool] = False

    def __init__(self, dataobj, affine, header=None, extra=None, file_map=None, dtype=None) -> None:
        super().__init__(dataobj, header=header, extra=extra, file_map=file_map)
        if affine is not None:
            affine = np.array(affine, dtype=np.float64, copy=True)
            if affine.shape != (4, 4):
                raise ValueError(f"affine should be shape (4, 4), found {affine.shape}")
        self._affine = affine
        if header is None:
            obj_dtype = _obj_dtype(dataobj)
            if obj_dtype is not None:
                self._header.set_data_dtype(obj_dtype)
        if dtype is not None:
            self.set_data_dtype(dtype)
        self.update_header()

    @property
    def affine(self) -> np.ndarray | None:
        """Voxel to world (4, 4) float64 affine, or None."""
        return self._affine

    def update_header(self) -> None:
        """Bring the header's shape and spatial information in line with the data and ``affine``."""
        shape = self._dataobj.shape
        if self._header.get_data_shape() != tuple(shape):
            self._header.set_data_shape(shape)
        if self._affine is None or np.allclose(self._affine, self._header.get_best_affine()):
            return
        self._affine2header()

    def _affine2header(self) -> None:
        """Set the voxel sizes implied by ``affine`` into the header's zooms."""
        sizes = voxel_sizes(self._affine)
        zooms = list(self._header.get_zooms())
        count = min(len(zooms), 3)
        zooms[:count] = sizes[:count]
        self._header.set_zooms(zooms)

    def get_data_dtype(self) -> np.dtype:
        """The on-disk dtype the header records."""
        return self._header.get_data_dtype()

    def set_data_dtype(self, dtype) -> None:
        """Set the on-disk dtype used when saving."""
        self._header.set_data_dtype(dtype)

    @property
    def slicer(self) -> SpatialFirstSlicer:
        """Slice the image as an array, keeping the affine right: ``img.slicer[10:20, ::2, 5:6]``.

        The first three (spatial) axes take slices only (``[x]`` would drop an axis: use ``x:x+1``);
        later axes take ints too. Only the bytes the slice needs are read from a proxy image.

        Raises
        ------
        ValueError
            For an image of four axes or more whose class does not put the spatial axes first
            (:attr:`spatial_axes_first`), as nibabel.
        """
        return SpatialFirstSlicer(self)

    def as_reoriented(self, ornt: Any):
        """This image with its data flipped and transposed by the orientation ``ornt``, affine to match.

        Returns the image itself (still a proxy image) when ``ornt`` is the identity; otherwise the data
        are read (scaled, as ``np.asanyarray(img.dataobj)``) and reoriented as a view of that array. An
        image holding a device (CuPy) array is reoriented on its device.

        Parameters
        ----------
        ornt : (n, 2) array-like
            See :mod:`gpuimg.orientations`.
        """
        if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
            return self
        data = self._dataobj
        if not device_seam.is_device_array(data):
            data = np.asanyarray(data)
        data = apply_orientation(data, ornt)
        affine = self._affine @ inv_ornt_aff(ornt, self.shape)
        return self.__class__(data, affine, self._header)

    def to_nibabel(self):
        """This image as the matching nibabel image class, sharing its data object (lazy).

        For libraries that need nibabel's classes (``isinstance`` checks: nilearn, TorchIO's
        transforms). The nibabel image holds this image's data object, so a proxy stays a proxy and its
        data are read by gpuimg when nibabel reads them. Header (extensions included), affine, ``extra``
        and filename are carried over. Needs nibabel; the other way round, ``gpuimg.Nifti1Image
        .from_image(nib_img)`` converts any nibabel image.

        Returns
        -------
        nibabel.spatialimages.SpatialImage
            ``nibabel.Nifti1Image`` for a :class:`~gpuimg.Nifti1Image`, and so on.

        Raises
        ------
        ImportError
            If nibabel is not installed.
        """
        nib = import_optional("nibabel", package="nibabel", hint="install it: pip install nibabel")
        nib_class = next(
            getattr(nib, c.__name__) for c in type(self).__mro__ if hasattr(nib, c.__name__)
        )
        header = nib_class.header_class(
            self._header.binaryblock, self._header.endianness, check=False
        )
        for ext in getattr(self._header, "extensions", ()):
            header.extensions.append(nib.nifti1.Nifti1Extension(ext.code, ext.content))
        filename = self.get_filename()
        file_map = None if filename is None else nib_class.filespec_to_file_map(filename)
        return nib_class(self._dataobj, self._affine, header, extra=self.extra, file_map=file_map)

    @classmethod
    def from_image(cls, img):
        """Convert another spatial image to this class (data object shared, header converted)."""
        return cls(
            img.dataobj,
            img.affine,
            cls.header_class.from_header(img.header),
            extra=img.extra.copy(),
        )

    def __repr__(self) -> str:
        return (
            f"<class '{type(self).__module__}.{type(self).__name__}'>\n"
            f"data shape {self.shape}\naffine:\n{self._affine}\nmetadata:\n{self._header}"
        )


class SpatialFirstSlicer:
    """``img.slicer[...]``: slice an image whose first three axes are spatial, as nibabel's slicer does.

    The affine's translation moves to the first voxel kept and its columns scale by the step, so each
    kept voxel keeps its world position. A negative start or step is counted from the axis' end (nibabel
    uses the start as written, which places such a slice wrongly).
    """

    def __init__(self, img: SpatialImage) -> None:
        if len(img.shape) >= 4 and not img.spatial_axes_first:
            raise ValueError(
                f"Cannot predict position of spatial axes for image type {type(img).__name__} "
                f"of shape {img.shape}"
            )
        self.img = img

    def __getitem__(self, slicer: Any) -> SpatialImage:
        canonical = self.check_slicing(slicer)
        data = self.img.dataobj[canonical]
        if any(size == 0 for size in data.shape):
            raise IndexError(f"Empty slice requested: {slicer!r} of shape {self.img.shape}")
        return self.img.__class__(data.copy(), self.slice_affine(canonical), self.img.header)

    def check_slicing(self, slicer: Any, return_spatial: bool = False) -> tuple:
        """``slicer`` with one entry per axis, as nibabel checks it.

        Raises
        ------
        IndexError
            For fancy indices, and ints or new axes in the spatial axes.
        ValueError
            For a zero step.
        """
        try:
            canonical = canonical_slicer(slicer, self.img.shape)
        except TypeError as error:  # a fancy index
            raise IndexError(str(error)) from error
        spatial = canonical[:3]
        for item in spatial:
            if item is None:
                raise IndexError("New axis not permitted in spatial dimensions")
            if not isinstance(item, slice):
                raise IndexError(
                    "Scalar indices disallowed in spatial dimensions; Use `[x]` or `x:x+1`."
                )
        return spatial if return_spatial else canonical

    def slice_affine(self, slicer: Any) -> np.ndarray:
        """The affine of the image sliced by ``slicer``."""
        transform = np.eye(4)
        for axis, item in enumerate(self.check_slicing(slicer, return_spatial=True)):
            transform[axis, axis] = item.step
            transform[axis, 3] = item.start
        affine = self.img.affine
        if affine is None:
            raise ValueError(
                f"cannot slice an image with no affine: the sliced image's affine is unknown "
                f"(slicer {slicer!r})"
            )
        return affine @ transform
