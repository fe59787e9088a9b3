"""``nibabel.spm99analyze``'s names: gpuimg's SPM99 Analyze classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.formats.analyze import Spm99AnalyzeImage
from gpuimg.headers.spm import Spm99AnalyzeHeader

__all__ = ["Spm99AnalyzeHeader", "Spm99AnalyzeImage"]
