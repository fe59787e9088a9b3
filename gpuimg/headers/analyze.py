"""The Analyze 7.5 header (Mayo ``dbh.h``), 348 bytes.

Analyze knows shape, zooms and data type but no orientation: the affine comes
from the voxel sizes alone, with x flipped (radiological storage), and data are
never scaled. The SPM and NIfTI headers build on this class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from gpuimg.errors import HeaderDataError, HeaderError, HeaderTypeError
from gpuimg.headers import checks
from gpuimg.headers.codes import ANALYZE_DATA_TYPES, CodeTable, DataTypeTable
from gpuimg.headers.dataio import HeaderDataIO
from gpuimg.headers.structured import UNNAMED, StructuredHeader, header_error

A = TypeVar("A", bound="AnalyzeHeader")

# fmt: off
header_key_dtd = [
    ('sizeof_hdr', 'i4'),       # 0; must be 348
    ('data_type', 'S10'),       # 4
    ('db_name', 'S18'),         # 14
    ('extents', 'i4'),          # 32
    ('session_error', 'i2'),    # 36
    ('regular', 'S1'),          # 38
    ('hkey_un0', 'S1'),         # 39
]
image_dimension_dtd = [
    ('dim', 'i2', (8,)),        # 40; dim[0] = number of dimensions
    ('vox_units', 'S4'),        # 56
    ('cal_units', 'S8'),        # 60
    ('unused1', 'i2'),          # 68
    ('datatype', 'i2'),         # 70
    ('bitpix', 'i2'),           # 72
    ('dim_un0', 'i2'),          # 74
    ('pixdim', 'f4', (8,)),     # 76; voxel sizes in pixdim[1:]
    ('vox_offset', 'f4'),       # 108
    ('funused1', 'f4'),         # 112; SPM: scale factor
    ('funused2', 'f4'),         # 116; SPM2: intercept
    ('funused3', 'f4'),         # 120
    ('cal_max', 'f4'),          # 124
    ('cal_min', 'f4'),          # 128
    ('compressed', 'i4'),       # 132
    ('verified', 'i4'),         # 136
    ('glmax', 'i4'),            # 140
    ('glmin', 'i4'),            # 144
]
data_history_dtd = [
    ('descrip', 'S80'),         # 148
    ('aux_file', 'S24'),        # 228
    ('orient', 'S1'),           # 252
    ('originator', 'S10'),      # 253; SPM: origin, 5 x int16
    ('generated', 'S10'),       # 263
    ('scannum', 'S10'),         # 273
    ('patient_id', 'S10'),      # 283
    ('exp_date', 'S10'),        # 293
    ('exp_time', 'S10'),        # 303
    ('hist_un0', 'S3'),         # 313
    ('views', 'i4'),            # 316
    ('vols_added', 'i4'),       # 320
    ('start_field', 'i4'),      # 324
    ('field_skip', 'i4'),       # 328
    ('omax', 'i4'),             # 332
    ('omin', 'i4'),             # 336
    ('smax', 'i4'),             # 340
    ('smin', 'i4'),             # 344
]                               # 348 bytes
# fmt: on
header_dtype = np.dtype(header_key_dtd + image_dimension_dtd + data_history_dtd)


def shape_zoom_affine(shape: ArrayLike, zooms: ArrayLike, x_flip: bool = True) -> np.ndarray:
    """Return the affine of an image centred on the origin with voxel sizes `zooms`.

    Only the first three axes count; missing ones have length 1 and size 1.

    Examples
    --------
    >>> shape_zoom_affine((3, 5, 7), (3, 2, 1)).tolist()[0]
    [-3.0, 0.0, 0.0, 3.0]
    """
    shape3 = np.ones(3)
    zooms3 = np.ones(3)
    shape_in, zooms_in = np.asarray(shape)[:3], np.asarray(zooms)[:3]
    if len(shape_in) != len(zooms_in):
        raise ValueError(f"{len(shape_in)} shape values but {len(zooms_in)} zooms")
    shape3[: len(shape_in)] = shape_in
    zooms3[: len(zooms_in)] = zooms_in
    if x_flip:
        zooms3[0] *= -1
    affine = np.eye(4)
    affine[:3, :3] = np.diag(zooms3)
    affine[:3, 3] = -(shape3 - 1) / 2.0 * zooms3
    return affine


class AnalyzeHeader(HeaderDataIO, StructuredHeader):
    """Analyze 7.5 header: shape, voxel sizes, data type; no scaling, no orientation.

    Examples
    --------
    >>> hdr = AnalyzeHeader()
    >>> hdr.set_data_shape((3, 5, 7))
    >>> hdr.set_zooms((3, 2, 1))
    >>> hdr.get_best_affine()[:3, 3].tolist()
    [3.0, -4.0, -3.0]
    """

    template_dtype = header_dtype
    sizeof_hdr = 348
    data_types: ClassVar[DataTypeTable] = ANALYZE_DATA_TYPES
    default_x_flip: ClassVar[bool] = True
    has_data_slope: ClassVar[bool] = False
    has_data_intercept: ClassVar[bool] = False
    check_battery = checks.ANALYZE

    @classmethod
    def default_structarr(cls, endianness: str | None = None) -> np.ndarray:
        """Return the fields of an empty float32 header: ``dim[0] = 0``, unit voxels."""
        arr = super().default_structarr(endianness)
        arr["dim"] = 1
        arr["dim"][0] = 0
        arr["pixdim"] = 1
        arr["datatype"] = 16
        arr["bitpix"] = 32
        return arr

    @classmethod
    def from_header(cls: type[A], header: Any = None, check: bool = True) -> A:
        """Return a header of this class made from `header` (any header class).

        A header of this very class is copied. Otherwise the fields both formats
        share are copied by name (when `header` has ``as_analyze_map``), then
        data type, shape and zooms are set through the methods.

        Raises
        ------
        HeaderDataError
            If this format cannot store `header`'s data type, or (with `check`)
            the result is not a valid header.
        """
        if type(header) is cls:
            return cls._checked_conversion(header.copy(), check)
        new = cls(check=check)
        if header is None:
            return new
        if hasattr(header, "as_analyze_map"):
            mapping = header.as_analyze_map()
            # Fields are matched by name; sizeof_hdr is the target format's own.
            for key in mapping:
                if key in new and key != "sizeof_hdr":
                    new[key] = mapping[key]
            new._clean_after_mapping()
        dtype = header.get_data_dtype()
        try:
            new.set_data_dtype(dtype)
        except HeaderDataError as err:
            raise HeaderDataError(
                f"input header {type(header).__name__} has data type {dtype} but "
                f"{cls.__name__} does not support it"
            ) from err
        new.set_data_shape(header.get_data_shape())
        new.set_zooms(header.get_zooms())
        return cls._checked_conversion(new, check)

    @classmethod
    def _checked_conversion(cls, new: A, check: bool) -> A:
        if check:
            try:
                new.check(f"<{cls.__name__}.from_header>")
            except HeaderError as err:
                # Nothing was read from a file: the caller's values are at fault.
                raise HeaderDataError(str(err)) from err
        return new

    def as_analyze_map(self) -> AnalyzeHeader:
        """Return a mapping of fields for :meth:`from_header` (the header itself)."""
        return self

    def _clean_after_mapping(self) -> None:
        """Fix fields a mapping from another Analyze dialect set wrongly; nothing here."""

    # -- checks -----------------------------------------------------------------------------------

    def validate(self, filename: str = UNNAMED, file_size: int | None = None) -> None:
        """Raise :class:`~gpuimg.errors.HeaderError` if the header cannot describe a file.

        Checks ``sizeof_hdr``, ``dim``, ``datatype`` and ``vox_offset``, and with
        `file_size` that the data block fits in the file after the offset.
        """
        super().validate(filename)
        self._validate_format(filename)
        arr = self._structarr
        dims = arr["dim"]
        ndim = int(dims[0])
        if not 0 <= ndim <= 7:
            raise header_error(filename, "dim[0]", ndim, "0 to 7")
        for axis in range(1, ndim + 1):
            if int(dims[axis]) < 0 and not self._negative_dim_allowed(axis):
                raise header_error(filename, f"dim[{axis}]", int(dims[axis]), ">= 0")
        code = int(arr["datatype"])
        if code not in self.data_types.supported_codes():
            raise header_error(
                filename, "datatype", code, f"one of {self.data_types.supported_codes()}"
            )
        self._validate_offset(filename)
        if file_size is not None:
            self.validate_data_fits(filename, int(file_size))

    def _validate_format(self, filename: str) -> None:
        """Check format marks (NIfTI magic); Analyze has none."""

    def _negative_dim_allowed(self, axis: int) -> bool:
        """Whether ``dim[axis] < 0`` has a meaning (FreeSurfer's NIfTI-1 vectors)."""
        return False

    def _validate_offset(self, filename: str) -> None:
        offset = float(self._structarr["vox_offset"])
        if not offset >= 0:
            raise header_error(filename, "vox_offset", offset, ">= 0")

    def validate_data_fits(self, filename: str, file_size: int) -> None:
        """Raise :class:`~gpuimg.errors.HeaderError` unless the data block fits in ``file_size`` bytes.

        The part of :meth:`validate` that needs the data file: a load that read (and validated) the
        header on its own checks only this.
        """
        itemsize = self.get_data_dtype().itemsize
        nbytes = itemsize
        for length in self.get_data_shape():
            nbytes *= int(length)
        offset = self.get_data_offset()
        if offset + nbytes > file_size:
            raise HeaderError(
                f"{filename}: data block of {nbytes} bytes (shape {self.get_data_shape()}, "
                f"{itemsize} bytes per voxel) at offset {offset} needs a file of "
                f"{offset + nbytes} bytes, found {file_size}"
            )

    # -- data type, shape, zooms ------------------------------------------------------------------

    def get_data_dtype(self) -> np.dtype:
        """Return the numpy dtype of the data, in the header's byte order."""
        return self.data_types.dtype_for(int(self._structarr["datatype"])).newbyteorder(
            self.endianness
        )

    def set_data_dtype(self, datatype: DTypeLike | int | str) -> None:
        """Set the data type from a numpy dtype or type, a code or a name (``'int16'``, ``'RGB'``).

        Raises
        ------
        HeaderDataError
            If this format has no such data type.
        """
        code = self.data_types.code_for(datatype)
        self._structarr["datatype"] = code
        self._structarr["bitpix"] = self.data_types.dtype_for(code).itemsize * 8

    def get_data_shape(self) -> tuple[int, ...]:
        """Return the data shape from ``dim`` (``(0,)`` when ``dim[0]`` is 0)."""
        dims = self._structarr["dim"]
        ndim = int(dims[0])
        if ndim == 0:
            return (0,)
        return tuple(int(d) for d in dims[1 : ndim + 1])

    def set_data_shape(self, shape: Sequence[int]) -> None:
        """Set ``dim`` from `shape`; voxel sizes beyond its length become 1.

        Raises
        ------
        HeaderDataError
            If `shape` has more than 7 axes or a length the ``dim`` field cannot hold.
        """
        shape = tuple(shape)
        dims = self._structarr["dim"]
        limits = np.iinfo(dims.dtype)
        if len(shape) > 7 or any(
            int(n) != n or not limits.min <= int(n) <= limits.max for n in shape
        ):
            raise HeaderDataError(
                f"shape {shape} does not fit in header field 'dim' ({dims.dtype.name}, "
                "at most 7 axes)"
            )
        dims[:] = 1
        dims[0] = len(shape)
        dims[1 : len(shape) + 1] = shape
        self._structarr["pixdim"][len(shape) + 1 :] = 1.0

    def get_zooms(self) -> tuple[float, ...]:
        """Return the voxel sizes ``pixdim[1:ndim + 1]`` (``(1.0,)`` when ``dim[0]`` is 0)."""
        ndim = int(self._structarr["dim"][0])
        if ndim == 0:
            return (1.0,)
        return tuple(self._structarr["pixdim"][1 : ndim + 1])

    def set_zooms(self, zooms: Sequence[float]) -> None:
        """Set the voxel sizes; one non-negative value per axis."""
        ndim = int(self._structarr["dim"][0])
        values = np.asarray(zooms)
        if len(values) != ndim:
            raise HeaderDataError(f"{len(values)} zooms given, expected {ndim} (one per axis)")
        if np.any(values < 0):
            raise HeaderDataError(f"zooms {tuple(values.tolist())} must be >= 0")
        self._structarr["pixdim"][1 : ndim + 1] = values

    # -- offset, scaling, affine ------------------------------------------------------------------

    def get_data_offset(self) -> int:
        """Return the byte offset of the data in the data file (``vox_offset``)."""
        return int(self._structarr["vox_offset"])

    def set_data_offset(self, offset: int) -> None:
        """Set the byte offset of the data in the data file."""
        self._structarr["vox_offset"] = offset

    def get_slope_inter(self) -> tuple[float | np.ndarray | None, float | None]:
        """Return ``(None, None)``: Analyze data are not scaled."""
        return None, None

    def set_slope_inter(self, slope: float | None, inter: float | None = None) -> None:
        """Accept only "no scaling": `slope` None, NaN or 1 and `inter` None, NaN or 0.

        Raises
        ------
        HeaderTypeError
            For any other factors: Analyze headers cannot store them.
        """
        if _is_unset_or(slope, 1) and _is_unset_or(inter, 0):
            return
        raise HeaderTypeError(
            f"{type(self).__name__} cannot store slope {slope} / intercept {inter}; "
            "expected slope 1 and intercept 0"
        )

    def get_base_affine(self) -> np.ndarray:
        """Return the affine from voxel sizes, centred on the image, x flipped."""
        ndim = int(self._structarr["dim"][0])
        return shape_zoom_affine(
            self._structarr["dim"][1 : ndim + 1],
            self._structarr["pixdim"][1 : ndim + 1],
            self.default_x_flip,
        )

    def get_best_affine(self) -> np.ndarray:
        """Return the best affine the header can give (for Analyze, the base affine)."""
        return self.get_base_affine()

    # -- labels -----------------------------------------------------------------------------------

    def _field_tables(self) -> dict[str, CodeTable]:
        return {"datatype": self.data_types}

    def __str__(self) -> str:
        """The class, the byte order and every field, one a line, coded fields by label (as nibabel).

        Examples
        --------
        >>> [line for line in str(AnalyzeHeader()).splitlines() if line.startswith("datatype")]
        ['datatype       : float32']
        """
        tables = self._field_tables()
        width = max(len(name) for name in self.field_names)
        lines = [f"{type(self)} object, endian='{self.endianness}'"]
        for name in self.field_names:
            value = tables[name].label(int(self[name])) if name in tables else self[name]
            lines.append(f"{name:{width}s}  : {value}")
        return "\n".join(lines)

    def get_value_label(self, fieldname: str) -> str:
        """Return the label of coded field `fieldname` (e.g. ``'int16'`` for ``datatype``)."""
        tables = self._field_tables()
        if fieldname not in tables:
            raise ValueError(f"{fieldname!r} is not a coded field; expected one of {list(tables)}")
        return tables[fieldname].label(int(self._structarr[fieldname]))


def _is_unset_or(value: float | None, allowed: float) -> bool:
    return value is None or value == allowed or bool(np.isnan(value))
