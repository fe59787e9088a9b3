"""Seeded, realistic benchmark volumes, written with nibabel and cached on disk.

Every volume is a head model, as the fast-I/O issue specifies: a smooth random field plus noise inside a
head-shaped mask (two deformed ellipsoids, scalp and brain), zeros outside. One extra T1 keeps low
background noise outside the head, as unprocessed scans have (version 1 of the recipe made every T1 and
fMRI volume that way); its row shows how much harder such files are for both libraries. Files are written with
nibabel (the reference writer) as ``.nii`` and as ``.nii.gz`` at gzip level 1 (nibabel's default)
and level 6, and cached under ``benchmarks/data/`` by a name that encodes the shape, the seed and
:data:`GENERATOR_VERSION`, so a changed recipe never reuses stale files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

GENERATOR_VERSION = 2
DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"

#: file variant -> (extension, gzip level or None)
VARIANTS = {"nii": (".nii", None), "gz1": (".nii.gz", 1), "gz6": (".nii.gz", 6)}

T1_SLOPE_INTER = (1.25, -8.0)


@dataclass(frozen=True)
class VolumeSpec:
    """One synthetic volume: its recipe (``kind``), shape, voxel size and seed."""

    kind: str  # "t1", "t1_noisy_background", "fmri" or "seg"
    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    seed: int

    @property
    def stem(self) -> str:
        """Cache file name without extension."""
        dims = "x".join(str(n) for n in self.shape)
        return f"{self.kind}_{dims}_s{self.seed}_v{GENERATOR_VERSION}"

    @property
    def nvox(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Sizes:
    """The volume set of one benchmark mode (full or quick)."""

    t1: VolumeSpec
    t1_noisy_background: VolumeSpec
    fmri: VolumeSpec
    seg: VolumeSpec
    loader_shape: tuple[int, int, int]
    loader_files: int
    fmri_volume: int  # the volume read by the 4D rows; the next one is read again


FULL = Sizes(
    t1=VolumeSpec("t1", (256, 256, 256), (1.0, 1.0, 1.0), seed=1),
    t1_noisy_background=VolumeSpec("t1_noisy_background", (256, 256, 256), (1.0, 1.0, 1.0), seed=1),
    fmri=VolumeSpec("fmri", (64, 64, 40, 300), (3.0, 3.0, 3.5, 2.0), seed=2),
    seg=VolumeSpec("seg", (192, 192, 192), (1.0, 1.0, 1.0), seed=3),
    loader_shape=(160, 192, 160),
    loader_files=32,
    fmri_volume=150,
)
QUICK = Sizes(
    t1=VolumeSpec("t1", (32, 32, 32), (1.0, 1.0, 1.0), seed=1),
    t1_noisy_background=VolumeSpec("t1_noisy_background", (32, 32, 32), (1.0, 1.0, 1.0), seed=1),
    fmri=VolumeSpec("fmri", (16, 16, 8, 10), (3.0, 3.0, 3.5, 2.0), seed=2),
    seg=VolumeSpec("seg", (24, 24, 24), (1.0, 1.0, 1.0), seed=3),
    loader_shape=(16, 20, 16),
    loader_files=8,
    fmri_volume=5,
)


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, terms: int = 6) -> np.ndarray:
    """A smooth random float32 field in [-1, 1]: a sum of separable low-frequency cosines.

    Separable terms are outer products of three 1-D profiles, so a 256^3 field costs a few
    multiplications per voxel instead of a 3-D interpolation.
    """
    grids = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape]
    out = np.zeros(shape, dtype=np.float32)
    for _ in range(terms):
        freqs = rng.uniform(0.5, 3.0, 3) * np.pi
        phases = rng.uniform(0.0, 2 * np.pi, 3)
        prof = [
            np.cos(f * g + p).astype(np.float32)
            for f, g, p in zip(freqs, grids, phases, strict=True)
        ]
        out += (
            np.float32(rng.normal())
            * prof[0][:, None, None]
            * prof[1][None, :, None]
            * prof[2][None, None, :]
        )
    out /= np.abs(out).max()
    return out


def _head_masks(shape: tuple[int, ...], field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head and brain masks: ellipsoids whose surfaces the smooth field bends by a few percent."""
    x, y, z = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in shape)
    r2 = (
        (x / 0.85)[:, None, None] ** 2
        + (y / 0.92)[None, :, None] ** 2
        + ((z + 0.05) / 0.8)[None, None, :] ** 2
    )
    bend = 0.04 * field
    head = r2 <= (1.0 + bend) ** 2
    brain = r2 <= (0.82 + bend) ** 2
    return head, brain


def _anatomy(
    shape: tuple[int, ...], rng: np.random.Generator, *, noisy_background: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Raw T1-like intensities (float32) and the head mask.

    Inside the head: scalp, grey/white contrast, bias field, noise. Outside: zeros, or with
    ``noisy_background`` the low noise of an unprocessed scan (drawn first, as recipe version 1 did, so
    the same seed gives version 1's volume).
    """
    field, tissue, bias = (_smooth_field(shape, rng) for _ in range(3))
    head, brain = _head_masks(shape, field)
    if noisy_background:
        out = np.abs(rng.standard_normal(shape, dtype=np.float32)) * 6.0
    else:
        out = np.zeros(shape, dtype=np.float32)
    inside = rng.standard_normal(shape, dtype=np.float32) * 18.0
    inside += np.where(brain, 650.0 + 180.0 * np.tanh(4.0 * tissue), 350.0 + 80.0 * field)
    inside *= 1.0 + 0.1 * bias
    np.copyto(out, inside, where=head)
    return out, head


def _t1_image(spec: VolumeSpec, rng: np.random.Generator) -> nib.Nifti1Image:
    anatomy, _ = _anatomy(spec.shape, rng, noisy_background=spec.kind == "t1_noisy_background")
    raw = np.rint(anatomy).astype(np.int16)
    img = nib.Nifti1Image(raw, _affine(spec))
    img.header.set_slope_inter(*T1_SLOPE_INTER)
    return img


def _fmri_image(spec: VolumeSpec, rng: np.random.Generator) -> nib.Nifti1Image:
    """Unscaled int16 BOLD-like series: a fixed anatomy, slow drift, a blob that switches, noise."""
    space, nt = spec.shape[:3], spec.shape[3]
    anatomy, head = _anatomy(space, rng)
    base = anatomy * 1.6
    blob = np.clip(_smooth_field(space, rng), 0.6, 1.0) - 0.6
    t = np.arange(nt)
    drift = 0.01 * np.sin(2 * np.pi * t / max(nt, 2))
    task = (t // 10) % 2
    out = np.empty(spec.shape, dtype=np.int16, order="F")  # each volume is one contiguous block
    for i in range(nt):
        vol = base * np.float32(1 + drift[i]) + np.float32(60 * task[i]) * blob
        vol += rng.standard_normal(space, dtype=np.float32) * 12.0
        out[..., i] = np.rint(np.where(head, vol, 0.0))
    return nib.Nifti1Image(out, _affine(spec))


def _seg_image(spec: VolumeSpec, rng: np.random.Generator) -> nib.Nifti1Image:
    """Probability-map-like float32 in [0, 1] inside the brain, zeros outside; nibabel scales it to int16."""
    field = _smooth_field(spec.shape, rng)
    _, brain = _head_masks(spec.shape, field)
    logits = 6.0 * _smooth_field(spec.shape, rng) + 0.3 * rng.standard_normal(
        spec.shape, dtype=np.float32
    )
    prob = np.where(brain, 1.0 / (1.0 + np.exp(-logits)), 0.0).astype(np.float32)
    img = nib.Nifti1Image(prob, _affine(spec))
    img.set_data_dtype(np.int16)
    return img


_RECIPES = {
    "t1": _t1_image,
    "t1_noisy_background": _t1_image,
    "fmri": _fmri_image,
    "seg": _seg_image,
}


def _affine(spec: VolumeSpec) -> np.ndarray:
    zooms = np.asarray(spec.zooms[:3])
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -zooms * (np.asarray(spec.shape[:3]) - 1) / 2
    return affine


def make_image(spec: VolumeSpec) -> nib.Nifti1Image:
    """Build the in-memory nibabel image for ``spec`` (deterministic for a given seed)."""
    img = _RECIPES[spec.kind](spec, np.random.default_rng(spec.seed))
    img.header.set_zooms(spec.zooms)
    img.header.set_xyzt_units("mm", "sec")
    return img


@contextlib.contextmanager
def _nibabel_gzip_level(level: int) -> Iterator[None]:
    """Make nibabel write ``.gz`` at ``level`` (its ``Opener.default_compresslevel``) for a while."""
    opener = nib.openers.Opener
    saved = opener.default_compresslevel
    opener.default_compresslevel = level
    try:
        yield
    finally:
        opener.default_compresslevel = saved


class VolumeStore:
    """The on-disk cache of benchmark files.

    Parameters
    ----------
    data_dir : path-like
        Cache folder (created when missing).
    """

    def __init__(self, data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir)

    def path(self, spec: VolumeSpec, variant: str) -> Path:
        """Where ``spec`` written as ``variant`` ('nii', 'gz1' or 'gz6') lives (it may not exist yet)."""
        ext, _ = VARIANTS[variant]
        suffix = "" if variant == "nii" else f"_{variant}"
        return self.data_dir / f"{spec.stem}{suffix}{ext}"

    def prepare(self, wanted: Iterable[tuple[VolumeSpec, str]]) -> None:
        """Write every missing ``(spec, variant)``, building each volume at most once."""
        missing: dict[VolumeSpec, list[str]] = {}
        for spec, variant in wanted:
            if not self.path(spec, variant).exists():
                missing.setdefault(spec, []).append(variant)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for spec, variants in missing.items():
            img = make_image(spec)
            for variant in dict.fromkeys(variants):
                self._write(img, spec, variant)

    def _write(self, img: nib.Nifti1Image, spec: VolumeSpec, variant: str) -> None:
        ext, level = VARIANTS[variant]
        target = self.path(spec, variant)
        partial = target.with_name(f"{target.name[: -len(ext)]}.partial{ext}")
        with _nibabel_gzip_level(level or 1):
            nib.save(img, partial)
        os.replace(partial, target)

    def links(self, source: Path, count: int) -> list[Path]:
        """``count`` distinct names for ``source`` (hard links, or copies where links fail)."""
        folder = self.data_dir / f"{source.name}.links"
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"copy{i:02d}_{source.name}" for i in range(count)]
        for path in paths:
            if path.exists() and path.stat().st_size == source.stat().st_size:
                continue
            path.unlink(missing_ok=True)
            try:
                os.link(source, path)
            except OSError:
                shutil.copyfile(source, path)
        return paths

    def loader_set(self, sizes: Sizes) -> list[Path]:
        """The loader benchmark's distinct T1-like files (level-1 ``.nii.gz``), written when missing."""
        specs = [
            VolumeSpec("t1", sizes.loader_shape, (1.0, 1.0, 1.0), seed=100 + i)
            for i in range(sizes.loader_files)
        ]
        self.prepare((spec, "gz1") for spec in specs)
        return [self.path(spec, "gz1") for spec in specs]
