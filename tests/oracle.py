"""Writing test images with nibabel (the oracle) in every format, container, dtype and byte order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

nib = __import__("nibabel")

RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
RGBA32 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])

NIFTI_DTYPES = [
    np.dtype(t) for t in ("u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8", "c8", "c16")
] + [RGB24, RGBA32]
ANALYZE_DTYPES = [np.dtype(t) for t in ("u1", "i2", "i4", "f4", "f8", "c8")] + [RGB24]


@dataclass(frozen=True)
class Format:
    """One on-disk layout: the nibabel class that writes it and the file extension."""

    name: str
    nib_class: type
    ext: str
    dtypes: tuple[np.dtype, ...]
    has_inter: bool

    @property
    def has_affine(self) -> bool:
        return self.name.startswith("nifti")


FORMATS = [
    Format("analyze", nib.Spm2AnalyzeImage, ".img", tuple(ANALYZE_DTYPES), False),
    Format("nifti1", nib.Nifti1Image, ".nii", tuple(NIFTI_DTYPES), True),
    Format("nifti1-pair", nib.Nifti1Pair, ".img", tuple(NIFTI_DTYPES), True),
    Format("nifti2", nib.Nifti2Image, ".nii", tuple(NIFTI_DTYPES), True),
    Format("nifti2-pair", nib.Nifti2Pair, ".img", tuple(NIFTI_DTYPES), True),
]

SHAPES = [
    (7,),
    (4, 1),
    (3, 5, 2),
    (2, 3, 1, 4),
    (2, 1, 3, 2, 2),
    (1, 2, 2, 3, 1, 2),
    (2, 1, 2, 1, 2, 1, 3),
]


def random_data(dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values covering the type's range (ints), signed and fractional values (floats), NaN included."""
    rng = np.random.default_rng(seed)
    if dtype.fields is not None:
        raw = rng.integers(0, 256, size=shape + (dtype.itemsize,), dtype=np.uint8)
        return raw.view(dtype).reshape(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    values = rng.standard_normal(shape) * 1e3
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    values = values.astype(dtype)
    if values.size > 2:
        values.flat[1] = np.nan
    return values


def oblique_affine(seed: int) -> np.ndarray:
    """A rotated, scaled, translated affine (the qform can represent it exactly up to float32)."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-0.5, 0.5, 3)
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rx @ ry @ rz @ np.diag(rng.uniform(0.5, 3, 3))
    affine[:3, 3] = rng.uniform(-100, 100, 3)
    return affine


def write_with_nibabel(
    tmp_path: Path,
    fmt: Format,
    dtype: np.dtype,
    shape: tuple[int, ...],
    *,
    big_endian: bool,
    scaled: bool,
    gz: bool,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """Write an image with nibabel; return its path and the raw array stored."""
    data = random_data(dtype, shape, seed)
    header = fmt.nib_class.header_class(endianness=">" if big_endian else "<")
    header.set_data_dtype(dtype)
    affine = oblique_affine(seed) if fmt.has_affine else np.diag([-2.0, 3.0, 1.5, 1.0])
    img = fmt.nib_class(data, affine, header=header)
    if scaled:
        img.header.set_slope_inter(0.25 + seed % 3, (-7.5 + seed) if fmt.has_inter else None)
    path = tmp_path / f"img{fmt.ext}{'.gz' if gz else ''}"
    nib.save(img, path)
    # nibabel's SPM images also write a MATLAB .mat affine when scipy is present; gpuimg does not read
    # .mat files (see docs), so the oracle compares the header-only affine.
    for mat in tmp_path.glob("*.mat*"):
        mat.unlink()
    return path, data
