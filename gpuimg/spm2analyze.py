"""``nibabel.spm2analyze``'s names: gpuimg's SPM2 Analyze classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.formats.analyze import Spm2AnalyzeImage
from gpuimg.headers.spm import Spm2AnalyzeHeader

__all__ = ["Spm2AnalyzeHeader", "Spm2AnalyzeImage"]
