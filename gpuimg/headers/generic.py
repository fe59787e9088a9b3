"""Format-free headers: nibabel's ``FileBasedHeader`` and ``SpatialHeader``.

They are the ``header_class`` of the base image classes (:class:`~gpuimg.images.filebased.FileBasedImage`,
:class:`~gpuimg.images.spatial.SpatialImage`), so those can be built, converted and subclassed on their own
as in nibabel. A :class:`SpatialHeader` holds a data type, a shape and voxel sizes; it writes and reads raw
arrays, never scaled.

Examples
--------
>>> hdr = SpatialHeader(np.int16, (2, 3, 4), (1.0, 2.0, 3.0))
>>> hdr.get_best_affine()[:3, 3].tolist()
[0.5, -2.0, -4.5]
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, BinaryIO, ClassVar, Literal, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from gpuimg.errors import HeaderDataError
from gpuimg.headers.analyze import shape_zoom_affine

H = TypeVar("H", bound="FileBasedHeader")


class FileBasedHeader:
    """The header protocol at its smallest: copies, compares, converts only from its own class."""

    @classmethod
    def from_header(cls: type[H], header: Any = None) -> H:
        """A header of this class: new for None, a copy of one of this very class.

        Raises
        ------
        NotImplementedError
            For a header of another class: this class knows no conversion.
        """
        if header is None:
            return cls()
        if type(header) is cls:
            return copy.deepcopy(header)
        raise NotImplementedError(f"{cls.__name__} cannot be made from a {type(header).__name__}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def copy(self: H) -> H:
        """An independent copy."""
        return copy.deepcopy(self)


S = TypeVar("S", bound="SpatialHeader")


class SpatialHeader(FileBasedHeader):
    """A data type, a shape and voxel sizes (zooms), with the affine they imply.

    Parameters
    ----------
    data_dtype : numpy dtype, optional
    shape : sequence of int, optional
    zooms : sequence of float or None, optional
        Voxel sizes, one per axis; 1.0 each by default.
    """

    #: The x axis is flipped in the base affine (radiological storage), as in Analyze.
    default_x_flip: ClassVar[bool] = True
    #: Order of the data written and read by :meth:`data_to_fileobj` / :meth:`data_from_fileobj`.
    data_layout: ClassVar[Literal["F", "C"]] = "F"
    _dtype: np.dtype
    _shape: tuple[int, ...]
    _zooms: tuple[float, ...]

    def __init__(
        self,
        data_dtype: DTypeLike = np.float32,
        shape: Sequence[int] = (0,),
        zooms: Sequence[float] | None = None,
    ) -> None:
        self.set_data_dtype(data_dtype)
        self._zooms = ()
        self.set_data_shape(shape)
        if zooms is not None:
            self.set_zooms(zooms)

    @classmethod
    def from_header(cls: type[S], header: Any = None) -> S:
        """A header of this class from None, a header of this class or any header with dtype, shape, zooms."""
        if header is None:
            return cls()
        if type(header) is cls:
            return copy.deepcopy(header)
        if all(hasattr(header, f"get_{name}") for name in ("data_dtype", "data_shape", "zooms")):
            return cls(header.get_data_dtype(), header.get_data_shape(), header.get_zooms())
        return super().from_header(header)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpatialHeader):
            return NotImplemented
        mine = (self.get_data_dtype(), self.get_data_shape(), self.get_zooms())
        return mine == (other.get_data_dtype(), other.get_data_shape(), other.get_zooms())

    def copy(self: S) -> S:
        """An independent copy."""
        return type(self)(self._dtype, self._shape, self._zooms)

    def get_data_dtype(self) -> np.dtype:
        """The data type."""
        return self._dtype

    def set_data_dtype(self, dtype: DTypeLike) -> None:
        """Set the data type (any numpy dtype)."""
        self._dtype = np.dtype(dtype)

    def get_data_shape(self) -> tuple[int, ...]:
        """The data shape."""
        return self._shape

    def set_data_shape(self, shape: Sequence[int]) -> None:
        """Set the shape; voxel sizes of new axes are 1.0 (an empty shape means ``(0,)``)."""
        if len(shape) == 0:
            self._shape, self._zooms = (0,), (1.0,)
            return
        self._shape = tuple(int(n) for n in shape)
        kept = self._zooms[: len(self._shape)]
        self._zooms = kept + (1.0,) * (len(self._shape) - len(kept))

    def get_zooms(self) -> tuple[float, ...]:
        """Voxel sizes, one per axis."""
        return self._zooms

    def set_zooms(self, zooms: Sequence[float]) -> None:
        """Set the voxel sizes: one non-negative value per axis."""
        zooms = tuple(float(z) for z in zooms)
        ndim = len(self._shape)
        if len(zooms) != ndim:
            raise HeaderDataError(f"{len(zooms)} zooms given, expected {ndim} (one per axis)")
        if any(z < 0 for z in zooms):
            raise HeaderDataError(f"zooms {zooms} must be >= 0")
        self._zooms = zooms

    def get_base_affine(self) -> np.ndarray:
        """The affine of the voxel sizes, centred on the volume (x flipped)."""
        return shape_zoom_affine(self._shape, self._zooms, self.default_x_flip)

    get_best_affine = get_base_affine

    def data_to_fileobj(self, data, fileobj: BinaryIO, rescale: bool = True) -> None:
        """Write ``data`` cast to the header's dtype, in ``data_layout`` order (``rescale`` has no effect)."""
        fileobj.write(np.asarray(data).astype(self._dtype).tobytes(order=self.data_layout))

    def data_from_fileobj(self, fileobj: BinaryIO) -> np.ndarray:
        """Read an array of the header's dtype and shape from ``fileobj``'s position."""
        nbytes = int(np.prod(self._shape, dtype=object)) * self._dtype.itemsize
        block = bytearray(fileobj.read(nbytes))
        return np.ndarray(self._shape, self._dtype, block, order=self.data_layout)
