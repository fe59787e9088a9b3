"""The benchmark rows: what each one times, on which file, and the speed-up it is held to.

Every operation is written once against nibabel's public API and called with either library module
(``nibabel`` or ``gpuimg``), so both run exactly the same code.

The save rows drain the disk before every run: their untimed setup ends with :func:`os.sync`, so
the bytes one library's save left for the kernel to write later are written before the other
library's timed save starts, instead of being charged to it. This does not make the two saves the
same work: nibabel's save still returns before its bytes reach the disk (they are written after its
timed call), while gpuimg's default save is durable and waits for its own bytes (``fsync``).
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import nibabel as nib
import numpy as np

from benchmarks.timing import Op, Setup, no_setup
from benchmarks.volumes import Sizes, VolumeSpec, VolumeStore

THREADED_FILES = 16
THREADS = 2


@dataclass(frozen=True)
class Case:
    """One row of the table."""

    key: str  # stable id, the same in quick and full mode
    label: str
    op: Op
    setup: Setup = no_setup
    items: int = 1  # volumes per run, for the volumes/s column
    memory_path: Path | None = None  # measure get_fdata(float32) peak memory on this file
    target: float | None = None  # wanted speed-up over nibabel


def _fdata(path: Path, dtype: type | None, lib: ModuleType, state: Any) -> np.ndarray:
    img = lib.load(path)
    return img.get_fdata() if dtype is None else img.get_fdata(dtype=dtype)


def _fdata_threaded(paths: Sequence[Path], lib: ModuleType, state: Any) -> None:
    def one(path: Path) -> None:
        lib.load(path).get_fdata(dtype=np.float32)

    with ThreadPoolExecutor(THREADS) as pool:
        collections.deque(pool.map(one, paths), maxlen=0)


def _fresh_volume(path: Path, index: int, lib: ModuleType, state: Any) -> np.ndarray:
    return lib.load(path).dataobj[..., index]


def _used_image(path: Path, index: int, lib: ModuleType) -> Any:
    img = lib.load(path)
    img.dataobj[..., index]
    return img


def _next_volume(index: int, lib: ModuleType, img: Any) -> np.ndarray:
    return img.dataobj[..., index]


def _load_only(path: Path, lib: ModuleType, state: Any) -> Any:
    return lib.load(path)


@functools.lru_cache(maxsize=1)
def _save_data(path: Path, dtype: str, order: str) -> np.ndarray:
    """The T1's raw values as ``dtype``, laid out in ``order`` (read once per row, with nibabel)."""
    raw = np.asarray(nib.load(path).dataobj.get_unscaled())
    return np.asarray(raw, dtype=dtype, order=order)


def _image_to_save(path: Path, dtype: str, order: str, lib: ModuleType) -> Any:
    return lib.Nifti1Image(_save_data(path, dtype, order), np.diag([1.0, 1.0, 1.0, 1.0]))


def _drained(setup: Setup, lib: ModuleType) -> Any:
    """``setup(lib)``, then every file's pending writeback done (:func:`os.sync`), untimed."""
    state = setup(lib)
    os.sync()
    return state


def _save(folder: Path, suffix: str, lib: ModuleType, img: Any) -> None:
    lib.save(img, folder / f"{lib.__name__}{suffix}")


def _dims(spec: VolumeSpec) -> str:
    return "×".join(str(n) for n in spec.shape)


def build_cases(sizes: Sizes, store: VolumeStore) -> list[Case]:
    """The rows for ``sizes``, with every file they read written to ``store``."""
    t1, fmri, seg = sizes.t1, sizes.fmri, sizes.seg
    t1_noisy = sizes.t1_noisy_background
    store.prepare(
        [(t1, "nii"), (t1, "gz1"), (t1, "gz6"), (t1_noisy, "gz1"), (fmri, "gz1"), (seg, "gz1")]
    )
    t1_nii, t1_gz1, t1_gz6 = (store.path(t1, v) for v in ("nii", "gz1", "gz6"))
    fmri_gz, seg_gz = store.path(fmri, "gz1"), store.path(seg, "gz1")
    vol = sizes.fmri_volume
    f32 = np.float32

    def fdata(key: str, label: str, path: Path, target: float | None) -> Case:
        op = functools.partial(_fdata, path, f32)
        return Case(key, label, op, memory_path=path if target else None, target=target)

    return [
        fdata("t1_gz1_f32", f"T1 {_dims(t1)} .nii.gz (gzip 1) → float32", t1_gz1, 3.0),
        fdata("t1_gz6_f32", f"T1 {_dims(t1)} .nii.gz (gzip 6) → float32", t1_gz6, 3.0),
        fdata(
            "t1_noisy_gz1_f32",
            f"T1 {_dims(t1)} .nii.gz (gzip 1), noisy background → float32",
            store.path(t1_noisy, "gz1"),
            None,
        ),
        fdata("fmri_gz1_f32", f"fMRI {_dims(fmri)} .nii.gz → float32", fmri_gz, 3.0),
        fdata("t1_nii_f32", f"T1 {_dims(t1)} .nii → float32", t1_nii, 3.0),
        Case(
            "t1_nii_f64",
            f"T1 {_dims(t1)} .nii → float64 (get_fdata())",
            functools.partial(_fdata, t1_nii, None),
            target=1.2,
        ),
        fdata("seg_gz1_f32", f"seg {_dims(seg)} .nii.gz → float32", seg_gz, 3.0),
        Case(
            "t1_gz1_threads",
            f"{THREADED_FILES}× T1 .nii.gz → float32, {THREADS} threads",
            functools.partial(_fdata_threaded, store.links(t1_gz1, THREADED_FILES)),
            items=THREADED_FILES,
            target=3.0,
        ),
        Case(
            "fmri_vol_fresh",
            f"fMRI .nii.gz: load + dataobj[..., {vol}]",
            functools.partial(_fresh_volume, fmri_gz, vol),
        ),
        Case(
            "fmri_vol_again",
            f"fMRI .nii.gz: same image, dataobj[..., {vol + 1}]",
            functools.partial(_next_volume, vol + 1),
            setup=functools.partial(_used_image, fmri_gz, vol),
        ),
        Case("t1_load", "T1 .nii.gz: load() (header only)", functools.partial(_load_only, t1_gz1)),
        *save_cases(sizes, store),
    ]


def save_cases(sizes: Sizes, store: VolumeStore) -> list[Case]:
    """Saving the T1's values (as int16 and float32, in disk and C order) to .nii and .nii.gz.

    Each run's setup (untimed) builds the image and drains the disk (see the module docstring).
    """
    t1 = sizes.t1
    store.prepare([(t1, "nii")])
    source = store.path(t1, "nii")
    folder = store.data_dir / "saves"
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for key, dtype, order, suffix, what in [
        ("t1_save_nii_i16", "int16", "F", ".nii", "int16"),
        ("t1_save_nii_f32", "float32", "F", ".nii", "float32"),
        ("t1_save_nii_f32_c", "float32", "C", ".nii", "float32, C-ordered"),
        ("t1_save_gz_i16", "int16", "F", ".nii.gz", "int16"),
        ("t1_save_gz_f32", "float32", "F", ".nii.gz", "float32"),
    ]:
        cases.append(
            Case(
                key,
                f"save T1 {_dims(t1)} {what} → {suffix}",
                functools.partial(_save, folder, suffix),
                setup=functools.partial(
                    _drained, functools.partial(_image_to_save, source, dtype, order)
                ),
                target=1.0 if suffix == ".nii" else None,
            )
        )
    return cases
