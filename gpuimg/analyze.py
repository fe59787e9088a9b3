"""``nibabel.analyze``'s names: gpuimg's Analyze 7.5 image and header classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.errors import HeaderDataError
from gpuimg.formats.analyze import AnalyzeImage
from gpuimg.headers.analyze import AnalyzeHeader

#: nibabel's module-level reader and writer of this format.
load = AnalyzeImage.from_filename
save = AnalyzeImage.instance_to_filename

__all__ = ["AnalyzeHeader", "AnalyzeImage", "HeaderDataError", "load", "save"]
