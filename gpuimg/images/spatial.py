"""Spatial images: a data object plus a voxel-to-world ``affine`` kept in step with the header."""

from __future__ import annotations

import numpy as np

from gpuimg.images.dataobj import DataobjImage


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
        rzs = self._affine[:3, :3]
        voxel_sizes = np.sqrt(np.sum(rzs * rzs, axis=0))
        zooms = list(self._header.get_zooms())
        count = min(len(zooms), 3)
        zooms[:count] = voxel_sizes[:count]
        self._header.set_zooms(zooms)

    def get_data_dtype(self) -> np.dtype:
        """The on-disk dtype the header records."""
        return self._header.get_data_dtype()

    def set_data_dtype(self, dtype) -> None:
        """Set the on-disk dtype used when saving."""
        self._header.set_data_dtype(dtype)

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
