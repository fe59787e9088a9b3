"""Saving with gpuimg writes nibabel's file: the same bytes, factors and errors for every dtype pair.

A seeded matrix over the three scaling models (NIfTI-1: slope and intercept; SPM99: slope; Analyze:
none; and NIfTI-2 pairs and SPM2 for a few sources), every source dtype (float64/32/16, integers,
complex64/128, big-endian), every on-disk dtype the format has, and data shaped to reach each of nibabel's writer
rules: full-range and fractional values, mostly-negative data, NaN and ±inf, no finite value, a
constant, ranges beyond float32, and scale factors set on the header beforehand.
"""

from __future__ import annotations

import io
import warnings
import zlib

import numpy as np
import pytest

import gpuimg
from gpuimg.errors import HeaderDataError, ScalingError, WriterError
from gpuimg.images.fileholders import FileHolder

nib = pytest.importorskip("nibabel")
nib_writers = pytest.importorskip("nibabel.arraywriters")

SHAPE = (3, 4, 2)
NIFTI1_DATA_OFFSET = 352  # a single .nii without extensions
SPM_ORIGIN = (253, 263)  # byte range of the SPM header's ``origin`` (5 int16)
SOURCES = [
    "f8",
    "f4",
    "f2",
    "i1",
    "u1",
    "i2",
    "u2",
    "i4",
    "u4",
    "i8",
    "u8",
    "c8",
    "c16",
    ">f4",
    ">i4",
]
ANALYZE_OUT = ["u1", "i2", "i4", "f4", "f8", "c8"]
NIFTI_OUT = ["u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8", "c8", "c16"]
MODELS = {  # gpuimg/nibabel class name -> on-disk dtypes
    "Nifti1Image": NIFTI_OUT,
    "Spm99AnalyzeImage": ANALYZE_OUT,
    "AnalyzeImage": ANALYZE_OUT,
    "Nifti2Pair": NIFTI_OUT,  # float64 factor fields, a separate header file
    "Spm2AnalyzeImage": ANALYZE_OUT,  # SPM99's writer, SPM2's reading rules
}
#: Sources tried per class: all for the three scaling models, a few for NIfTI-2 and SPM2 (the same
#: rules).
FEW_SOURCES = ("f8", "f4", "i4", "u8")
CASES = [
    (cls_name, src)
    for cls_name in MODELS
    for src in (FEW_SOURCES if cls_name in ("Nifti2Pair", "Spm2AnalyzeImage") else SOURCES)
]
KINDS = [
    "wide",
    "negative",
    "mostly_negative",
    "non_finite",
    "nan_off_zero",
    "constant",
    "no_finite",
    "huge",
    "header_factors",
]


def _data(kind: str, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """24 values of ``dtype`` shaped for one writer rule (see the module docstring)."""
    n = int(np.prod(SHAPE))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = {
            "negative": (info.min, min(0, info.max)),
            "mostly_negative": (info.min, max(info.max // 1000, 1)),
            "nan_off_zero": (1, min(300, info.max)),
            "constant": (7, 7),
            "no_finite": (0, 0),
            "huge": (info.min, info.max),
        }.get(kind, (info.min, info.max))
        values = rng.integers(low, high, size=n, dtype=dtype.newbyteorder("="), endpoint=True)
        if kind == "huge":
            values[:2] = info.min, info.max
        return values.astype(dtype).reshape(SHAPE)
    limit = float(np.finfo(dtype).max) if dtype.kind == "f" else 1e300
    scale = min(10 ** rng.uniform(-2, 8), limit / 100)
    values = rng.standard_normal(n) * scale
    if kind == "negative":
        values = -np.abs(values)
    elif kind == "mostly_negative":
        values = -np.abs(values) + scale / 50
    elif kind == "nan_off_zero":
        values = rng.uniform(1, 300, n)
        values[0] = np.nan
    elif kind == "constant":
        values[:] = 5.5
    elif kind == "no_finite":
        values = rng.choice([np.nan, np.inf, -np.inf], n)
    elif kind == "huge":
        values = rng.uniform(-1, 1, n) * min(1e45, limit)
    if kind in ("non_finite", "constant", "header_factors"):
        values[rng.choice(n, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(n)
    with np.errstate(over="ignore"):
        return values.astype(dtype).reshape(SHAPE)


def _save(lib, cls_name: str, data: np.ndarray, out: str, factors) -> tuple:
    """``("bytes", header, image)`` written by ``lib``, or ``("error", exception)``."""
    cls = getattr(lib, cls_name)
    holder = nib.fileholders.FileHolder if lib is nib else FileHolder
    file_map = {name: holder(fileobj=io.BytesIO()) for name, _ in cls.files_types}
    try:
        img = cls(data, np.eye(4), dtype=np.dtype(out))
        if factors is not None:
            img.header.set_slope_inter(*factors)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # nibabel warns casting NaN/inf with factors set
            img.to_file_map(file_map)
    except Exception as error:  # the oracle's refusals are compared below
        return ("error", error)
    if "header" in file_map:
        return (
            "bytes",
            file_map["header"].fileobj.getvalue(),
            file_map["image"].fileobj.getvalue(),
        )
    single = file_map["image"].fileobj.getvalue()
    return ("bytes", single[:NIFTI1_DATA_OFFSET], single[NIFTI1_DATA_OFFSET:])


def _same_refusal(theirs: Exception, ours: Exception) -> bool:
    """gpuimg raises the counterpart of nibabel's error (their ValueErrors are our WriterErrors).

    A slope-only format whose slope overflows float32: nibabel's header refuses the infinite slope
    (``HeaderDataError``) before its writer would (``ValueError``); gpuimg raises ``ScalingError`` there,
    as for the NIfTI factors.
    """
    counterparts = [
        (nib.spatialimages.HeaderDataError, ScalingError),
        (nib_writers.ScalingError, ScalingError),
        (nib_writers.WriterError, WriterError),
        (nib.spatialimages.HeaderDataError, HeaderDataError),
        (ValueError, ValueError),
    ]
    return any(isinstance(theirs, a) and isinstance(ours, b) for a, b in counterparts)


def _header_fields(header: bytes, cls_name: str) -> bytes:
    """The header bytes compared: SPM's ``origin`` is left out (gpuimg keeps the affine's translation
    there, nibabel writes it to a ``.mat`` file instead; see docs/architecture.md)."""
    if cls_name in ("Spm99AnalyzeImage", "Spm2AnalyzeImage"):
        return header[: SPM_ORIGIN[0]] + header[SPM_ORIGIN[1] :]
    return header


def _factors(cls_name: str, kind: str, rng: np.random.Generator):
    if kind != "header_factors" or cls_name == "AnalyzeImage":
        return None
    slope = float(np.float32(rng.uniform(0.1, 10)))
    return (
        (slope, float(np.float32(rng.uniform(-50, 50)))) if cls_name == "Nifti1Image" else (slope,)
    )


@pytest.mark.parametrize(("cls_name", "src"), CASES)
def test_writes_match_nibabel(cls_name, src):
    mismatches = []
    for out in MODELS[cls_name]:
        for kind in KINDS:
            case = f"{cls_name}-{src}-{out}-{kind}"
            rng = np.random.default_rng(zlib.crc32(case.encode()))
            data = _data(kind, np.dtype(src), rng)
            factors = _factors(cls_name, kind, rng)
            theirs = _save(nib, cls_name, data, out, factors)
            ours = _save(gpuimg, cls_name, data, out, factors)
            if theirs[0] == "error":
                if ours[0] != "error" or not _same_refusal(theirs[1], ours[1]):
                    mismatches.append(
                        f"{case}: nibabel raised {theirs[1]!r}, gpuimg {ours[1:]!r:.200}"
                    )
            elif ours[0] == "error":
                mismatches.append(f"{case}: gpuimg raised {ours[1]!r}")
            elif ours[2] != theirs[2]:
                diff = np.flatnonzero(
                    np.frombuffer(ours[2], np.uint8) != np.frombuffer(theirs[2], np.uint8)
                )
                mismatches.append(f"{case}: image bytes differ at {diff[:8]} (of {len(theirs[2])})")
            elif _header_fields(ours[1], cls_name) != _header_fields(theirs[1], cls_name):
                mismatches.append(f"{case}: header bytes differ")
    assert not mismatches, "\n".join(mismatches)
