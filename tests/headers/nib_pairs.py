"""Each gpuimg header class beside its nibabel twin (the oracle), and helpers to build both alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.nifti1 import Nifti1PairHeader as NibNifti1PairHeader
from nibabel.nifti2 import Nifti2PairHeader as NibNifti2PairHeader
from nibabel.spm2analyze import Spm2AnalyzeHeader as NibSpm2AnalyzeHeader
from nibabel.spm99analyze import Spm99AnalyzeHeader as NibSpm99AnalyzeHeader
from nibabel.testing import data_path

import gpuimg.headers as gh

RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])
ANALYZE_DTYPES = [np.dtype(t) for t in ("u1", "i2", "i4", "f4", "f8", "c8")] + [RGB]
NIFTI_DTYPES = ANALYZE_DTYPES + [np.dtype(t) for t in ("i1", "u2", "u4", "i8", "u8", "c16")]
NIFTI_DTYPES.append(RGBA)
NIB_DATA = Path(data_path)


@dataclass(frozen=True)
class Pair:
    """A gpuimg header class and the nibabel class it reproduces."""

    ours: type
    theirs: type

    @property
    def is_nifti(self) -> bool:
        return issubclass(self.ours, gh.Nifti1Header)

    @property
    def dtypes(self) -> list[np.dtype]:
        return NIFTI_DTYPES if self.is_nifti else ANALYZE_DTYPES

    def build(self, endianness: str, edit: Callable) -> tuple:
        """Return (ours, theirs), both default headers in `endianness` after `edit(header)`."""
        ours, theirs = self.ours(endianness=endianness), self.theirs(endianness=endianness)
        edit(ours)
        edit(theirs)
        return ours, theirs

    def __str__(self) -> str:
        return self.ours.__name__


ANALYZE_PAIRS = [
    Pair(gh.AnalyzeHeader, nib.AnalyzeHeader),
    Pair(gh.SpmAnalyzeHeader, NibSpm99AnalyzeHeader),
    Pair(gh.Spm2AnalyzeHeader, NibSpm2AnalyzeHeader),
]
NIFTI_PAIRS = [
    Pair(gh.Nifti1Header, nib.Nifti1Header),
    Pair(gh.Nifti1PairHeader, NibNifti1PairHeader),
    Pair(gh.Nifti2Header, nib.Nifti2Header),
    Pair(gh.Nifti2PairHeader, NibNifti2PairHeader),
]
ALL_PAIRS = ANALYZE_PAIRS + NIFTI_PAIRS
PAIR_BY_CLASS = {pair.ours: pair for pair in ALL_PAIRS}


def assert_same_header(ours, theirs) -> None:
    """Assert equal bytes and equal answers from the shared accessors."""
    assert ours.endianness == theirs.endianness
    assert ours.binaryblock == theirs.binaryblock
    assert ours.get_data_dtype() == theirs.get_data_dtype()
    assert ours.get_data_shape() == theirs.get_data_shape()
    assert ours.get_zooms() == theirs.get_zooms()
    assert ours.get_data_offset() == theirs.get_data_offset()
    np.testing.assert_array_equal(ours.get_slope_inter(), _as_floats(theirs.get_slope_inter()))
    np.testing.assert_array_equal(ours.get_base_affine(), theirs.get_base_affine())
    np.testing.assert_array_equal(ours.get_best_affine(), theirs.get_best_affine())


def _as_floats(values: tuple) -> tuple:
    return tuple(None if v is None else float(v) for v in values)
