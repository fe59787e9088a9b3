"""``nibabel.spm99analyze``'s names: gpuimg's SPM99 Analyze classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.formats.analyze import Spm99AnalyzeImage
from gpuimg.headers.spm import Spm99AnalyzeHeader

#: nibabel's module-level reader and writer of this format.
load = Spm99AnalyzeImage.from_filename
save = Spm99AnalyzeImage.instance_to_filename

__all__ = ["Spm99AnalyzeHeader", "Spm99AnalyzeImage", "load", "save"]
