"""``nibabel.analyze``'s names: gpuimg's Analyze 7.5 image and header classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.errors import HeaderDataError
from gpuimg.formats.analyze import AnalyzeImage
from gpuimg.headers.analyze import AnalyzeHeader

__all__ = ["AnalyzeHeader", "AnalyzeImage", "HeaderDataError"]
