"""Regenerate gpuimg/data/sample4d.nii.gz: a small, seeded 4D int16 NIfTI-1 with scaling.

Run from the repository root: ``python scripts/make_sample.py`` (needs nibabel, a test dependency). It is
written with nibabel on purpose, so the shipped sample is an independent reference file.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (40, 48, 36, 6)
TARGET = Path(__file__).resolve().parent.parent / "gpuimg" / "data" / "sample4d.nii.gz"


def make_volume(rng: np.random.Generator) -> np.ndarray:
    """Smooth head-like field plus noise inside an ellipsoid mask, zeros outside, over time."""
    axes = [np.linspace(-1, 1, n) for n in SHAPE[:3]]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    mask = (x / 0.9) ** 2 + (y / 0.95) ** 2 + (z / 0.85) ** 2 <= 1
    field = 800 + 300 * np.cos(3 * x) * np.sin(2 * y) + 150 * z
    frames = [field + 20 * np.sin(t) + rng.normal(0, 15, SHAPE[:3]) for t in range(SHAPE[3])]
    return np.where(mask[..., None], np.stack(frames, axis=-1), 0.0)


def main() -> None:
    rng = np.random.default_rng(20261125)
    data = make_volume(rng)
    affine = np.array([[-2.5, 0, 0, 50], [0, 2.5, 0, -60], [0, 0, 3.0, -54], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((2.5, 2.5, 3.0, 2.0))
    img.header["descrip"] = b"gpuimg sample: 4D int16 with scl_slope/scl_inter"
    img.header.set_slope_inter(0.05, -10.0)
    TARGET.parent.mkdir(exist_ok=True)
    nib.save(img, TARGET)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
