"""The package's public surface: light imports, exported names."""

from __future__ import annotations

import subprocess
import sys

import gpuimg


def test_import_gpuimg_pulls_in_no_optional_dependency():
    code = (
        "import sys, gpuimg; "
        "loaded = [m for m in ('cupy', 'torch', 'dask', 'nibabel', 'scipy', 'monai', 'torchio', 'nilearn')"
        " if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve():
    for name in gpuimg.__all__:
        assert getattr(gpuimg, name) is not None, name


def test_nibabels_top_level_header_and_orientation_names_are_there():
    """``import gpuimg as nib`` finds the headers and orientation helpers nibabel exports at its top."""
    for name in (
        "AnalyzeHeader",
        "Spm99AnalyzeHeader",
        "Spm2AnalyzeHeader",
        "Nifti1Header",
        "Nifti2Header",
        "OrientationError",
        "aff2axcodes",
        "apply_orientation",
        "io_orientation",
        "as_closest_canonical",
    ):
        assert name in gpuimg.__all__, name
    assert issubclass(gpuimg.Spm2AnalyzeHeader, gpuimg.Spm99AnalyzeHeader)
    assert issubclass(gpuimg.Spm99AnalyzeHeader, gpuimg.AnalyzeHeader)


def test_sample_is_shipped_and_loads():
    img = gpuimg.load(gpuimg.data.sample_path())
    assert img.shape == (40, 48, 36, 6)
    assert img.get_data_dtype() == "int16"
    assert (img.dataobj.slope, img.dataobj.inter) != (1.0, 0.0)
    assert gpuimg.data.sample_path().stat().st_size < 1_000_000
