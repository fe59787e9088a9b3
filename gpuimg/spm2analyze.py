"""``nibabel.spm2analyze``'s names: gpuimg's SPM2 Analyze classes under nibabel's module path."""

from __future__ import annotations

from gpuimg.formats.analyze import Spm2AnalyzeImage
from gpuimg.headers.spm import Spm2AnalyzeHeader

#: nibabel's module-level reader and writer of this format.
load = Spm2AnalyzeImage.from_filename
save = Spm2AnalyzeImage.instance_to_filename

__all__ = ["Spm2AnalyzeHeader", "Spm2AnalyzeImage", "load", "save"]
