"""The NIfTI-1 header: Analyze's 348 bytes re-used for orientation, scaling and intent.

A single ``.nii`` file holds the header (magic ``n+1``), 4 extension-flag bytes,
any extensions, then the data at ``vox_offset``. A ``.hdr``/``.img`` pair holds
the header (magic ``ni1``) and extensions alone, with the data in the ``.img``.

Orientation comes from the sform (a general affine) when ``sform_code > 0``,
else from the qform (rotation quaternion, voxel sizes, ``qfac`` and offsets)
when ``qform_code > 0``, else from the voxel sizes as for Analyze.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, BinaryIO, ClassVar, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from gpuimg.errors import HeaderDataError
from gpuimg.headers import checks
from gpuimg.headers.analyze import AnalyzeHeader
from gpuimg.headers.codes import (
    INTENT_CODES,
    INTENT_N_PARAMS,
    NIFTI_DATA_TYPES,
    SLICE_ORDER_CODES,
    UNIT_CODES,
    XFORM_CODES,
    CodeTable,
)
from gpuimg.headers.extensions import NiftiExtension, NiftiExtensions
from gpuimg.headers.slicetiming import SliceTiming
from gpuimg.headers.structured import NATIVE, header_error
from gpuimg.headers.xforms import XformFields

N = TypeVar("N", bound="Nifti1Header")

# fmt: off
header_dtd = [
    ('sizeof_hdr', 'i4'),       # 0; must be 348
    ('data_type', 'S10'),       # 4; unused
    ('db_name', 'S18'),         # 14; unused
    ('extents', 'i4'),          # 32; unused
    ('session_error', 'i2'),    # 36; unused
    ('regular', 'S1'),          # 38; unused
    ('dim_info', 'u1'),         # 39; frequency, phase, slice axes
    ('dim', 'i2', (8,)),        # 40; dim[0] = number of dimensions
    ('intent_p1', 'f4'),        # 56
    ('intent_p2', 'f4'),        # 60
    ('intent_p3', 'f4'),        # 64
    ('intent_code', 'i2'),      # 68
    ('datatype', 'i2'),         # 70
    ('bitpix', 'i2'),           # 72
    ('slice_start', 'i2'),      # 74
    ('pixdim', 'f4', (8,)),     # 76; pixdim[0] = qfac
    ('vox_offset', 'f4'),       # 108
    ('scl_slope', 'f4'),        # 112
    ('scl_inter', 'f4'),        # 116
    ('slice_end', 'i2'),        # 120
    ('slice_code', 'u1'),       # 122
    ('xyzt_units', 'u1'),       # 123
    ('cal_max', 'f4'),          # 124
    ('cal_min', 'f4'),          # 128
    ('slice_duration', 'f4'),   # 132
    ('toffset', 'f4'),          # 136
    ('glmax', 'i4'),            # 140; unused (FreeSurfer: vector length in glmin)
    ('glmin', 'i4'),            # 144
    ('descrip', 'S80'),         # 148
    ('aux_file', 'S24'),        # 228
    ('qform_code', 'i2'),       # 252
    ('sform_code', 'i2'),       # 254
    ('quatern_b', 'f4'),        # 256
    ('quatern_c', 'f4'),        # 260
    ('quatern_d', 'f4'),        # 264
    ('qoffset_x', 'f4'),        # 268
    ('qoffset_y', 'f4'),        # 272
    ('qoffset_z', 'f4'),        # 276
    ('srow_x', 'f4', (4,)),     # 280
    ('srow_y', 'f4', (4,)),     # 296
    ('srow_z', 'f4', (4,)),     # 312
    ('intent_name', 'S16'),     # 328
    ('magic', 'S4'),            # 344; 'n+1\0' (single file) or 'ni1\0' (pair)
]                               # 348 bytes
# fmt: on
header_dtype = np.dtype(header_dtd)

_EXTENSION_FLAG_SIZE = 4
# FreeSurfer stores surface vectors too long for int16 dims as dim[1:4] = (-1, 1, 1)
# with the length in glmin, and the 163842 vertices of ico7 as (27307, 1, 6).
_FS_LONG_VECTOR = (-1, 1, 1)
_FS_ICO7_STORED, _FS_ICO7_SHAPE = (27307, 1, 6), (163842, 1, 1)


class Nifti1Header(SliceTiming, XformFields, AnalyzeHeader):
    """NIfTI-1 header of a single ``.nii`` file (magic ``n+1``).

    Parameters
    ----------
    binaryblock, endianness, check
        As for :class:`~gpuimg.headers.structured.StructuredHeader`.
    extensions : iterable of NiftiExtension, optional
        Extensions to write after the header.

    Examples
    --------
    >>> hdr = Nifti1Header()
    >>> hdr.set_data_shape((2, 3, 4))
    >>> hdr.set_qform(np.diag([2.0, 3.0, 4.0, 1.0]), code='scanner')
    >>> hdr.get_best_affine().diagonal().tolist()
    [2.0, 3.0, 4.0, 1.0]
    """

    template_dtype = header_dtype
    sizeof_hdr = 348
    data_types = NIFTI_DATA_TYPES
    has_data_slope = True
    has_data_intercept = True
    check_battery = checks.NIFTI1
    is_single: ClassVar[bool] = True
    single_magic: ClassVar[bytes] = b"n+1"
    pair_magic: ClassVar[bytes] = b"ni1"
    single_vox_offset: ClassVar[int] = 352
    pair_vox_offset: ClassVar[int] = 0
    # NIfTI-2 only: bytes that show a file was mangled by end-of-line conversion.
    eol_check: ClassVar[tuple[int, ...] | None] = None
    # NIfTI-1 only: FreeSurfer's shape conventions (see _FS_LONG_VECTOR).
    freesurfer_shapes: ClassVar[bool] = True

    def __init__(
        self,
        binaryblock: bytes | bytearray | memoryview | None = None,
        endianness: str | None = None,
        check: bool = True,
        extensions: Iterable[NiftiExtension] = (),
    ) -> None:
        super().__init__(binaryblock, endianness, check)
        self.extensions = NiftiExtensions(extensions)

    def copy(self) -> Nifti1Header:
        """Return a copy of the fields, sharing the extension objects in a new list."""
        return type(self)(self.binaryblock, self.endianness, False, self.extensions)

    @classmethod
    def default_structarr(cls, endianness: str | None = None) -> np.ndarray:
        """Return the fields of an empty header: slope 1, this class's magic."""
        arr = super().default_structarr(endianness)
        arr["scl_slope"] = 1
        arr["magic"] = cls.single_magic if cls.is_single else cls.pair_magic
        if cls.eol_check is not None:
            arr["eol_check"] = cls.eol_check
        return arr

    @classmethod
    def from_header(cls: type[N], header: Any = None, check: bool = True) -> N:
        """Convert `header` to this class (see AnalyzeHeader.from_header); keeps NIfTI extensions."""
        new = super().from_header(header, check)
        if isinstance(header, Nifti1Header):
            new.extensions[:] = header.extensions
        return new

    def _clean_after_mapping(self) -> None:
        self._structarr["magic"] = self.single_magic if self.is_single else self.pair_magic

    # -- reading and writing ------------------------------------------------------------------

    def _read_after_header(self, fileobj: IO[bytes], source: str) -> None:
        flag = fileobj.read(_EXTENSION_FLAG_SIZE)
        if len(flag) < _EXTENSION_FLAG_SIZE or flag[0] == 0:
            return
        room = None
        if self.is_single:
            start = self.template_dtype.itemsize + _EXTENSION_FLAG_SIZE
            offset = float(self._structarr["vox_offset"])
            # With check=False the offset may be garbage: then there is no room.
            room = max(int(offset) - start, 0) if np.isfinite(offset) else 0
        self.extensions = NiftiExtensions.from_fileobj(
            fileobj, room, self.endianness != NATIVE, source=source
        )

    def write_to(self, fileobj: BinaryIO) -> None:
        """Write the header, the extension flag and the extensions to `fileobj`.

        For a single file, a ``vox_offset`` of 0 is first set to the end of the
        extensions.

        Raises
        ------
        HeaderDataError
            If ``vox_offset`` is set but leaves no room for the extensions.
        """
        if self.is_single:
            needed = self.single_vox_offset + self.extensions.get_sizeondisk()
            offset = float(self._structarr["vox_offset"])
            if offset == 0:
                self._structarr["vox_offset"] = needed
            elif offset < needed:
                raise HeaderDataError(
                    f"header field 'vox_offset' is {offset:g}, expected at least {needed} "
                    "to hold the header and its extensions"
                )
        super().write_to(fileobj)
        if self.extensions:
            fileobj.write(b"\x01\x00\x00\x00")
            self.extensions.write_to(fileobj, self.endianness != NATIVE)
        elif self.is_single:
            fileobj.write(bytes(_EXTENSION_FLAG_SIZE))

    # -- checks -------------------------------------------------------------------------------

    def _validate_format(self, filename: str) -> None:
        """Check the magic and, for NIfTI-2, the end-of-line bytes."""
        magic = self._structarr["magic"].item()
        if magic not in (self.single_magic, self.pair_magic):
            raise header_error(
                filename, "magic", repr(magic), f"{self.single_magic!r} or {self.pair_magic!r}"
            )
        if self.eol_check is not None:
            found = tuple(int(v) for v in self._structarr["eol_check"])
            # All 0 is a harmless omission: the checks that run next set the bytes.
            if found not in (self.eol_check, (0,) * len(self.eol_check)):
                raise header_error(filename, "eol_check", found, f"{self.eol_check}")

    def _validate_offset(self, filename: str) -> None:
        # A vox_offset of 0 ("unset") in a single file is accepted, as nibabel does.
        super()._validate_offset(filename)
        offset = float(self._structarr["vox_offset"])
        is_single = self._structarr["magic"].item() == self.single_magic
        if is_single and 0 < offset < self.single_vox_offset:
            raise header_error(
                filename,
                "vox_offset",
                f"{offset:g}",
                f">= {self.single_vox_offset} (after the header) in a single file",
            )

    def _negative_dim_allowed(self, axis: int) -> bool:
        dims = tuple(int(d) for d in self._structarr["dim"][1:4])
        return (
            self.freesurfer_shapes
            and axis == 1
            and dims == _FS_LONG_VECTOR
            and int(self._structarr["glmin"]) > 0
        )

    @classmethod
    def may_contain_header(cls, binaryblock: bytes) -> bool:
        """Return True if `binaryblock` is long enough and has this format's magic."""
        if len(binaryblock) < cls.sizeof_hdr:
            return False
        fields: Mapping[str, tuple[Any, ...]] = cls.template_dtype.fields or {}
        start = fields["magic"][1]
        magic = bytes(binaryblock[start : start + 4]).rstrip(b"\x00")
        return magic in (cls.single_magic, cls.pair_magic)

    # -- shape and data type --------------------------------------------------------------------

    def get_data_shape(self) -> tuple[int, ...]:
        """Return the data shape, undoing FreeSurfer's long-vector and ico7 encodings."""
        shape = super().get_data_shape()
        if not self.freesurfer_shapes:
            return shape
        if shape[:3] == _FS_LONG_VECTOR:
            length = int(self._structarr["glmin"])
            if length == 0:
                raise HeaderDataError(
                    "header field 'dim[1]' is -1 (FreeSurfer long vector) but 'glmin' is 0, "
                    "expected the vector length"
                )
            return (length, 1, 1) + shape[3:]
        if shape[:3] == _FS_ICO7_STORED:
            return _FS_ICO7_SHAPE + shape[3:]
        return shape

    def set_data_shape(self, shape: Sequence[int]) -> None:
        """Set the data shape, using FreeSurfer's encodings for vectors too long for int16.

        A ``(n, 1, 1, ...)`` shape with ``n`` over 32767 is stored as ``(-1, 1, 1, ...)``
        with ``n`` in ``glmin`` (with a warning: SPM and FSL cannot read it).
        """
        shape = tuple(shape)
        if self.freesurfer_shapes and shape[:3] == _FS_ICO7_SHAPE:
            shape = _FS_ICO7_STORED + shape[3:]
        elif (
            self.freesurfer_shapes
            and len(shape) >= 3
            and shape[1:3] == (1, 1)
            and shape[0] > np.iinfo(self._structarr["dim"].dtype).max
        ):
            if shape[0] > np.iinfo(np.int32).max:
                raise HeaderDataError(f"shape[0] {shape[0]} does not fit in header field 'glmin'")
            self._structarr["glmin"] = shape[0]
            warnings.warn(
                "Using large vector Freesurfer hack; header will not be compatible with SPM or FSL",
                stacklevel=2,
            )
            shape = _FS_LONG_VECTOR + shape[3:]
        super().set_data_shape(shape)

    def set_data_dtype(self, datatype: DTypeLike | int | str) -> None:
        """Set the data type; bare ``int`` / ``'int'`` are refused (they would mean int64)."""
        if not isinstance(datatype, np.dtype) and (datatype is int or datatype == "int"):
            raise HeaderDataError(
                f"Invalid data type {datatype!r}. Specify a sized integer, "
                "e.g., 'uint8' or numpy.int16."
            )
        super().set_data_dtype(datatype)

    # -- scaling --------------------------------------------------------------------------------

    def get_slope_inter(self) -> tuple[float | None, float | None]:
        """Return ``(scl_slope, scl_inter)`` as floats.

        ``(None, None)`` when the slope is 0 or not finite (no scaling).

        Raises
        ------
        HeaderDataError
            If the slope is valid but the intercept is not finite.
        """
        slope = float(self._structarr["scl_slope"])
        inter = float(self._structarr["scl_inter"])
        if slope == 0 or not np.isfinite(slope):
            return None, None
        if not np.isfinite(inter):
            raise HeaderDataError(
                f"header field 'scl_inter' is {inter} with slope {slope}, expected a finite value"
            )
        return slope, inter

    def set_slope_inter(self, slope: float | None, inter: float | None = None) -> None:
        """Set slope and intercept; None means NaN, and NaN in both means "choose on write".

        Raises
        ------
        HeaderDataError
            For a slope of 0 or ±inf, an infinite intercept, or only one of the two NaN.
        """
        slope = np.nan if slope is None else slope
        inter = np.nan if inter is None else inter
        if slope == 0 or np.isinf(slope):
            raise HeaderDataError(f"slope is {slope}, expected a finite non-zero value or NaN")
        if np.isinf(inter):
            raise HeaderDataError(f"intercept is {inter}, expected a finite value or NaN")
        if np.isnan(slope) != np.isnan(inter):
            raise HeaderDataError(
                f"slope {slope} and intercept {inter}: expected both NaN or neither"
            )
        self._structarr["scl_slope"] = slope
        self._structarr["scl_inter"] = inter

    # -- coded fields ----------------------------------------------------------------------------

    def get_dim_info(self) -> tuple[int | None, int | None, int | None]:
        """Return the (frequency, phase, slice) encoding axes, None where unset."""
        info = int(self._structarr["dim_info"])
        freq, phase, slice_ = (
            (info >> shift & 3) - 1 if info >> shift & 3 else None for shift in (0, 2, 4)
        )
        return freq, phase, slice_

    def set_dim_info(
        self, freq: int | None = None, phase: int | None = None, slice: int | None = None
    ) -> None:
        """Set the frequency, phase and slice encoding axes (each None, 0, 1 or 2)."""
        info = 0
        for shift, axis in zip((0, 2, 4), (freq, phase, slice), strict=True):
            if axis is None:
                continue
            if axis not in (0, 1, 2):
                raise HeaderDataError(f"dim_info axis is {axis!r}, expected None, 0, 1 or 2")
            info |= (axis + 1) << shift
        self._structarr["dim_info"] = info

    def get_intent(self, code_repr: str = "label") -> tuple[int | str, tuple[float, ...], str]:
        """Return ``(intent label or code, parameters, name)``.

        Parameters
        ----------
        code_repr : {'label', 'code'}
            How to give the intent.
        """
        arr = self._structarr
        code = int(arr["intent_code"])
        known = code in INTENT_CODES.codes()
        if code_repr == "code":
            intent: int | str = code
        elif code_repr == "label":
            intent = INTENT_CODES.label(code) if known else f"unknown code {code}"
        else:
            raise HeaderDataError(f"code_repr is {code_repr!r}, expected 'label' or 'code'")
        n_params = INTENT_N_PARAMS[code] if known else 0
        params = tuple(float(arr[f"intent_p{i}"]) for i in range(1, n_params + 1))
        return intent, params, arr["intent_name"].item().decode("latin-1")

    def set_intent(
        self,
        code: int | str,
        params: Sequence[float] = (),
        name: str = "",
        allow_unknown: bool = False,
    ) -> None:
        """Set the intent code, its parameters (all or none; unset ones are 0) and name.

        Raises
        ------
        HeaderDataError
            For an unknown intent (unless `allow_unknown` and `code` is an
            integer), or the wrong number of parameters.
        """
        if code in INTENT_CODES:
            icode = INTENT_CODES.code(code)
            n_params = INTENT_N_PARAMS[icode]
        elif allow_unknown and not isinstance(code, str):
            icode, n_params = int(code), 3
        else:
            icode, n_params = INTENT_CODES.code(code), 0
        if len(params) and len(params) != n_params:
            raise HeaderDataError(
                f"intent {code!r} takes {n_params} parameters, got {len(params)}; "
                "give all of them or none"
            )
        arr = self._structarr
        arr["intent_code"] = icode
        arr["intent_name"] = name
        values = list(params) + [0] * (3 - len(params))
        for i, value in enumerate(values, start=1):
            arr[f"intent_p{i}"] = value

    def get_xyzt_units(self) -> tuple[str, str]:
        """Return the (space, time) unit labels, e.g. ``('mm', 'sec')``."""
        units = int(self._structarr["xyzt_units"])
        return UNIT_CODES.label(units % 8), UNIT_CODES.label(units - units % 8)

    def set_xyzt_units(self, xyz: int | str | None = None, t: int | str | None = None) -> None:
        """Set the space and time units from codes or labels (None: unknown)."""
        xyz_code = UNIT_CODES.code(0 if xyz is None else xyz)
        t_code = UNIT_CODES.code(0 if t is None else t)
        self._structarr["xyzt_units"] = xyz_code + t_code

    def _field_tables(self) -> dict[str, CodeTable]:
        return {
            "datatype": self.data_types,
            "qform_code": XFORM_CODES,
            "sform_code": XFORM_CODES,
            "intent_code": INTENT_CODES,
            "slice_code": SLICE_ORDER_CODES,
        }


class Nifti1PairHeader(Nifti1Header):
    """NIfTI-1 header of a ``.hdr``/``.img`` pair (magic ``ni1``)."""

    is_single = False
