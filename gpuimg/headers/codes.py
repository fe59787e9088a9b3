"""Code tables shared by the Analyze, SPM and NIfTI headers.

A header stores small integers (``datatype``, ``qform_code``, ``intent_code``...)
whose meaning is fixed by the format. The tables here turn the names people
use (``'float32'``, ``'scanner'``, ``'t test'``, numpy dtypes) into those codes
and back.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gpuimg.errors import HeaderDataError, UnknownCodeError

RGB_DTYPE = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA_DTYPE = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])


class CodeTable:
    """Map codes, labels and aliases to one integer code and a label.

    Parameters
    ----------
    name : str
        What the codes are (used in error messages), e.g. ``'xform code'``.
    rows : iterable of tuples
        ``(code, label, *aliases)``.

    Examples
    --------
    >>> units = CodeTable('unit', [(0, 'unknown'), (2, 'mm', 'NIFTI_UNITS_MM')])
    >>> units.code('mm'), units.code(2), units.label(2), units['NIFTI_UNITS_MM']
    (2, 2, 'mm', 2)
    """

    def __init__(self, name: str, rows: Iterable[tuple]) -> None:
        self.name = name
        self._codes: dict[Hashable, int] = {}
        self._labels: dict[int, str] = {}
        for code, label, *aliases in rows:
            self._labels[code] = label
            for key in (code, label, *aliases):
                self._codes[key] = code

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._codes
        except TypeError:  # unhashable
            return False

    def __getitem__(self, key: Hashable) -> int:
        """``table[key]``: the integer code for a code, label or alias, as nibabel's code tables.

        Raises
        ------
        KeyError
            For a key not in the table.
        """
        try:
            return self._codes[key]
        except KeyError:
            raise KeyError(f"unknown {self.name} {key!r}") from None

    def keys(self) -> list[Hashable]:
        """Every key the table answers to: codes, labels and aliases (nibabel's ``Recoder.keys``)."""
        return list(self._codes)

    def code(self, key: Hashable) -> int:
        """Return the integer code for a code, label or alias."""
        if key not in self:
            raise UnknownCodeError(f"unknown {self.name} {key!r}; expected one of {self.labels()}")
        return self._codes[key]

    def label(self, code: int) -> str:
        """Return the label of `code` (``'<unknown code N>'`` when not in the table)."""
        return self._labels.get(int(code), f"<unknown code {int(code)}>")

    def codes(self) -> list[int]:
        """Return the known integer codes."""
        return list(self._labels)

    def labels(self) -> list[str]:
        """Return the known labels."""
        return list(self._labels.values())


@dataclass(frozen=True)
class DataType:
    """One on-disk data type: its code, label, numpy dtype (None: unsupported) and NIfTI name."""

    code: int
    label: str
    dtype: np.dtype | None
    niistring: str = ""


class DataTypeTable(CodeTable):
    """The data types a header format can name, and those gpuimg can read.

    Codes without a numpy equivalent (``'none'``, ``'binary'``, ``'all'``,
    ``'float128'``, ``'complex256'``) are known but rejected.
    """

    def __init__(self, entries: Iterable[DataType]) -> None:
        entries = tuple(entries)
        super().__init__(
            "data type",
            [(e.code, e.label, e.niistring) if e.niistring else (e.code, e.label) for e in entries],
        )
        self._entries = {e.code: e for e in entries}

    def code_for(self, datatype: Any) -> int:
        """Return the code for a code, label, NIfTI name, numpy dtype or type.

        Raises
        ------
        HeaderDataError
            If `datatype` names no data type of this table, or one gpuimg cannot read.
        """
        if isinstance(datatype, (int, np.integer, str)) and datatype in self:
            entry = self._entries[self._codes[datatype]]
        else:
            try:
                dtype = np.dtype(datatype)
            except TypeError:
                raise HeaderDataError(f"data dtype {datatype!r} not recognized") from None
            found = self._entry_for_dtype(dtype)
            if found is None:
                raise HeaderDataError(
                    f"data dtype {datatype!r} not supported; expected one of "
                    f"{self.supported_labels()}"
                )
            entry = found
        if entry.dtype is None:
            raise HeaderDataError(f"data dtype {datatype!r} known but not supported")
        return entry.code

    def dtype_for(self, code: int) -> np.dtype:
        """Return the native-endian numpy dtype for `code`."""
        entry = self._entries.get(int(code))
        if entry is None or entry.dtype is None:
            raise HeaderDataError(
                f"header field 'datatype' is {int(code)}, expected one of {self.supported_codes()}"
            )
        return entry.dtype

    def supported_codes(self) -> list[int]:
        """Return the codes that have a numpy dtype."""
        return [e.code for e in self._entries.values() if e.dtype is not None]

    def supported_labels(self) -> list[str]:
        """Return the labels that have a numpy dtype."""
        return [e.label for e in self._entries.values() if e.dtype is not None]

    def _entry_for_dtype(self, dtype: np.dtype) -> DataType | None:
        native = dtype.newbyteorder("=")
        for entry in self._entries.values():
            if entry.dtype is not None and entry.dtype == native:
                return entry
        return None


_ANALYZE_TYPES = (
    DataType(0, "none", None),
    DataType(1, "binary", None),
    DataType(2, "uint8", np.dtype(np.uint8), "NIFTI_TYPE_UINT8"),
    DataType(4, "int16", np.dtype(np.int16), "NIFTI_TYPE_INT16"),
    DataType(8, "int32", np.dtype(np.int32), "NIFTI_TYPE_INT32"),
    DataType(16, "float32", np.dtype(np.float32), "NIFTI_TYPE_FLOAT32"),
    DataType(32, "complex64", np.dtype(np.complex64), "NIFTI_TYPE_COMPLEX64"),
    DataType(64, "float64", np.dtype(np.float64), "NIFTI_TYPE_FLOAT64"),
    DataType(128, "RGB", RGB_DTYPE, "NIFTI_TYPE_RGB24"),
    DataType(255, "all", None),
)
_NIFTI_ONLY_TYPES = (
    DataType(256, "int8", np.dtype(np.int8), "NIFTI_TYPE_INT8"),
    DataType(512, "uint16", np.dtype(np.uint16), "NIFTI_TYPE_UINT16"),
    DataType(768, "uint32", np.dtype(np.uint32), "NIFTI_TYPE_UINT32"),
    DataType(1024, "int64", np.dtype(np.int64), "NIFTI_TYPE_INT64"),
    DataType(1280, "uint64", np.dtype(np.uint64), "NIFTI_TYPE_UINT64"),
    DataType(1536, "float128", None, "NIFTI_TYPE_FLOAT128"),
    DataType(1792, "complex128", np.dtype(np.complex128), "NIFTI_TYPE_COMPLEX128"),
    DataType(2048, "complex256", None, "NIFTI_TYPE_COMPLEX256"),
    DataType(2304, "RGBA", RGBA_DTYPE, "NIFTI_TYPE_RGBA32"),
)
ANALYZE_DATA_TYPES = DataTypeTable(replace(e, niistring="") for e in _ANALYZE_TYPES)
NIFTI_DATA_TYPES = DataTypeTable(_ANALYZE_TYPES + _NIFTI_ONLY_TYPES)

XFORM_CODES = CodeTable(
    "xform code",
    [
        (0, "unknown", "NIFTI_XFORM_UNKNOWN"),
        (1, "scanner", "NIFTI_XFORM_SCANNER_ANAT"),
        (2, "aligned", "NIFTI_XFORM_ALIGNED_ANAT"),
        (3, "talairach", "NIFTI_XFORM_TALAIRACH"),
        (4, "mni", "NIFTI_XFORM_MNI_152"),
        (5, "template", "NIFTI_XFORM_TEMPLATE_OTHER"),
    ],
)

UNIT_CODES = CodeTable(
    "unit",
    [
        (0, "unknown"),
        (1, "meter"),
        (2, "mm"),
        (3, "micron"),
        (8, "sec"),
        (16, "msec"),
        (24, "usec"),
        (32, "hz"),
        (40, "ppm"),
        (48, "rads"),
    ],
)

SLICE_ORDER_CODES = CodeTable(
    "slice order code",
    [
        (0, "unknown"),
        (1, "sequential increasing", "seq inc"),
        (2, "sequential decreasing", "seq dec"),
        (3, "alternating increasing", "alt inc"),
        (4, "alternating decreasing", "alt dec"),
        (5, "alternating increasing 2", "alt inc 2"),
        (6, "alternating decreasing 2", "alt dec 2"),
    ],
)

# (code, label, number of intent parameters, NIfTI names...). The parameter
# counts and labels (trailing space included) are nibabel's, so that
# get_intent returns the same tuples.
_INTENTS = (
    (0, "none", 0, "NIFTI_INTENT_NONE"),
    (2, "correlation", 1, "NIFTI_INTENT_CORREL"),
    (3, "t test", 1, "NIFTI_INTENT_TTEST"),
    (4, "f test", 2, "NIFTI_INTENT_FTEST"),
    (5, "z score", 0, "NIFTI_INTENT_ZSCORE"),
    (6, "chi2", 1, "NIFTI_INTENT_CHISQ"),
    (7, "beta", 2, "NIFTI_INTENT_BETA"),
    (8, "binomial", 2, "NIFTI_INTENT_BINOM"),
    (9, "gamma", 2, "NIFTI_INTENT_GAMMA"),
    (10, "poisson", 1, "NIFTI_INTENT_POISSON"),
    (11, "normal", 2, "NIFTI_INTENT_NORMAL"),
    (12, "non central f test", 3, "NIFTI_INTENT_FTEST_NONC"),
    (13, "non central chi2", 2, "NIFTI_INTENT_CHISQ_NONC"),
    (14, "logistic", 2, "NIFTI_INTENT_LOGISTIC"),
    (15, "laplace", 2, "NIFTI_INTENT_LAPLACE"),
    (16, "uniform", 2, "NIFTI_INTENT_UNIFORM"),
    (17, "non central t test", 2, "NIFTI_INTENT_TTEST_NONC"),
    (18, "weibull", 2, "NIFTI_INTENT_WEIBULL"),
    (19, "chi", 1, "NIFTI_INTENT_CHI"),
    (20, "inverse gaussian", 2, "NIFTI_INTENT_INVGAUSS"),
    (21, "extreme value 1", 2, "NIFTI_INTENT_EXTVAL"),
    (22, "p value", 0, "NIFTI_INTENT_PVAL"),
    (23, "log p value", 0, "NIFTI_INTENT_LOGPVAL"),
    (24, "log10 p value", 0, "NIFTI_INTENT_LOG10PVAL"),
    (1001, "estimate", 0, "NIFTI_INTENT_ESTIMATE"),
    (1002, "label", 0, "NIFTI_INTENT_LABEL"),
    (1003, "neuroname", 0, "NIFTI_INTENT_NEURONAME"),
    (1004, "general matrix", 2, "NIFTI_INTENT_GENMATRIX"),
    (1005, "symmetric matrix", 1, "NIFTI_INTENT_SYMMATRIX"),
    (1006, "displacement vector", 0, "NIFTI_INTENT_DISPVECT"),
    (1007, "vector", 0, "NIFTI_INTENT_VECTOR"),
    (1008, "pointset", 0, "NIFTI_INTENT_POINTSET"),
    (1009, "triangle", 0, "NIFTI_INTENT_TRIANGLE"),
    (1010, "quaternion", 0, "NIFTI_INTENT_QUATERNION"),
    (1011, "dimensionless", 0, "NIFTI_INTENT_DIMLESS"),
    (2001, "time series", 0, "NIFTI_INTENT_TIME_SERIES", "NIFTI_INTENT_TIMESERIES"),
    (2002, "node index", 0, "NIFTI_INTENT_NODE_INDEX"),
    (2003, "rgb vector", 0, "NIFTI_INTENT_RGB_VECTOR"),
    (2004, "rgba vector", 0, "NIFTI_INTENT_RGBA_VECTOR"),
    (2005, "shape", 0, "NIFTI_INTENT_SHAPE"),
    (2006, "fnirt disp field", 0, "FSL_FNIRT_DISPLACEMENT_FIELD"),
    (2007, "fnirt cubic spline coef", 0, "FSL_CUBIC_SPLINE_COEFFICIENTS"),
    (2008, "fnirt dct coef", 0, "FSL_DCT_COEFFICIENTS"),
    (2009, "fnirt quad spline coef", 0, "FSL_QUADRATIC_SPLINE_COEFFICIENTS"),
    (2016, "topup cubic spline coef ", 0, "FSL_TOPUP_CUBIC_SPLINE_COEFFICIENTS"),
    (2017, "topup quad spline coef", 0, "FSL_TOPUP_QUADRATIC_SPLINE_COEFFICIENTS"),
    (2018, "topup field", 0, "FSL_TOPUP_FIELD"),
)
INTENT_CODES = CodeTable("intent code", [(c, label, *names) for c, label, _, *names in _INTENTS])
INTENT_N_PARAMS = {code: n for code, _, n, *_ in _INTENTS}

EXTENSION_CODES = CodeTable(
    "extension code",
    [
        (0, "ignore"),
        (2, "dicom"),
        (4, "afni"),
        (6, "comment"),
        (8, "xcede"),
        (10, "jimdiminfo"),
        (12, "workflow_fwds"),
        (14, "freesurfer"),
        (16, "pypickle"),
        (18, "mind_ident"),
        (20, "b_value"),
        (22, "spherical_direction"),
        (24, "dt_component"),
        (26, "shc_degreeorder"),
        (28, "voxbo"),
        (30, "caret"),
        (32, "cifti"),
        (34, "variable_frame_timing"),
        (36, "unassigned"),
        (38, "eval"),
        (40, "matlab"),
        (42, "quantiphyse"),
        (44, "mrs"),
    ],
)
