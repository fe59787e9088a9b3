"""Analyze, SPM and NIfTI headers on numpy structured dtypes (see docs/architecture.md)."""

from __future__ import annotations

from gpuimg.headers.analyze import AnalyzeHeader
from gpuimg.headers.extensions import NiftiExtension, NiftiExtensions
from gpuimg.headers.nifti1 import Nifti1Header, Nifti1PairHeader
from gpuimg.headers.nifti2 import Nifti2Header, Nifti2PairHeader
from gpuimg.headers.spm import Spm2AnalyzeHeader, Spm99AnalyzeHeader, SpmAnalyzeHeader

__all__ = [
    "AnalyzeHeader",
    "Nifti1Header",
    "Nifti1PairHeader",
    "Nifti2Header",
    "Nifti2PairHeader",
    "NiftiExtension",
    "NiftiExtensions",
    "Spm2AnalyzeHeader",
    "Spm99AnalyzeHeader",
    "SpmAnalyzeHeader",
]
