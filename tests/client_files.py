"""The real files the client tests (``tests/clients``) run on: nibabel's test data and files it writes."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np

_NIBABEL = importlib.util.find_spec("nibabel")

#: nibabel's own NIfTI test files, shipped inside the installed nibabel (its CIFTI ``.dconn.nii`` left
#: out: gpuimg reads it as plain NIfTI-2, nibabel as CIFTI).
NIBABEL_DATA = None if _NIBABEL is None else Path(_NIBABEL.origin).parent / "tests" / "data"
NIBABEL_FILES = (
    []
    if NIBABEL_DATA is None
    else sorted(p.name for p in NIBABEL_DATA.glob("*.nii*") if ".dconn." not in p.name)
)

#: Written by nibabel for the tests: scaled, big-endian, oblique, NIfTI-2 with an extension, 5D.
WRITTEN_FILES = [
    "scaled_int16.nii.gz",
    "big_endian_4d.nii",
    "labels_uint8.nii.gz",
    "nifti2_ext.nii",
    "vector_5d.nii.gz",
]

ALL_FILES = NIBABEL_FILES + WRITTEN_FILES


# Axes swapped and flipped, slightly oblique: as_closest_canonical has work to do.
OBLIQUE = np.array(
    [[0.0, -2.0, 0.1, 90.0], [0.0, 0.0, 3.0, -120.0], [-1.5, 0.05, 0.0, 60.0], [0, 0, 0, 1]]
)


def _write(folder, name: str, img) -> str:
    path = os.path.join(folder, name)
    img.to_filename(path)
    return path


def write_client_files(folder) -> dict[str, str]:
    """``{name: path}`` of the real NIfTI files (3D to 5D): nibabel's, and those written to ``folder``."""
    nib = importlib.import_module("nibabel")
    rng = np.random.default_rng(11)
    files = {name: str(NIBABEL_DATA / name) for name in NIBABEL_FILES}
    scaled = nib.Nifti1Image(rng.normal(300, 80, (20, 24, 16)).astype(np.float32), OBLIQUE)
    scaled.set_data_dtype(np.int16)
    files["scaled_int16.nii.gz"] = _write(folder, "scaled_int16.nii.gz", scaled)
    big = nib.Nifti1Image(rng.normal(size=(12, 10, 8, 3)).astype(">f4"), OBLIQUE)
    files["big_endian_4d.nii"] = _write(folder, "big_endian_4d.nii", big)
    labels = nib.Nifti1Image(rng.integers(0, 5, (16, 12, 10), dtype=np.uint8), OBLIQUE)
    files["labels_uint8.nii.gz"] = _write(folder, "labels_uint8.nii.gz", labels)
    nifti2 = nib.Nifti2Image(rng.normal(size=(9, 8, 7)), np.diag([-1.0, 1.0, 2.0, 1.0]))
    nifti2.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"gpuimg client test"))
    files["nifti2_ext.nii"] = _write(folder, "nifti2_ext.nii", nifti2)
    five_d = nib.Nifti1Image(rng.normal(size=(6, 5, 4, 1, 3)).astype(np.float32), OBLIQUE)
    files["vector_5d.nii.gz"] = _write(folder, "vector_5d.nii.gz", five_d)
    return files
