"""Sample data shipped with gpuimg."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_path() -> Path:
    """Path of the bundled sample: a 40x48x36x6 int16 NIfTI-1 (.nii.gz) with scl_slope/scl_inter.

    Examples
    --------
    >>> import gpuimg
    >>> gpuimg.load(gpuimg.data.sample_path()).shape
    (40, 48, 36, 6)
    """
    return Path(str(resources.files(__name__).joinpath("sample4d.nii.gz")))
