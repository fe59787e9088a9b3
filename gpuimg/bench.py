"""``gpuimg bench``: gpuimg against nibabel in one run, on the user's files or on realistic sample volumes.

The sample volumes (``--sample``) are what gpuimg is for: a 256³ T1-weighted head and a 4D series, both
scaled int16 as scanners write them, each as ``.nii`` and ``.nii.gz``. They are generated once (a few
seconds) into the user's cache folder and reused by later runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from gpuimg import device, gpuread
from gpuimg.errors import DeviceUnavailableError
from gpuimg.formats.nifti1 import Nifti1Image
from gpuimg.loadsave import load, save
from gpuimg.terminal import human_size

#: How to get the comparison when nibabel is missing.
NIBABEL_HINT = "pip install nibabel (or pip install 'gpuimg[cli]')"


@dataclass(frozen=True)
class SampleVolume:
    """One generated sample: its file stem, shape and voxel sizes (and repetition time for 4D)."""

    name: str
    shape: tuple[int, ...]
    zooms: tuple[float, ...]


#: The ``--sample`` volumes; each is written as ``.nii`` and ``.nii.gz`` (about 60 MiB in all).
SAMPLE_VOLUMES = (
    SampleVolume("t1_256", (256, 256, 256), (1.0, 1.0, 1.0)),
    SampleVolume("bold_4d", (64, 64, 36, 150), (3.0, 3.0, 3.0, 2.0)),
)
#: Bumped when the sample recipe changes, so old caches are not reused.
SAMPLE_VERSION = 1


def cache_dir() -> Path:
    """The folder for the sample volumes: ``$XDG_CACHE_HOME/gpuimg`` (``~/.cache/gpuimg``), or
    ``%LOCALAPPDATA%\\gpuimg`` on Windows."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gpuimg" / f"bench-samples-v{SAMPLE_VERSION}"


def sample_files() -> list[str]:
    """Paths of the :data:`SAMPLE_VOLUMES` (``.nii`` then ``.nii.gz`` of each), writing those not yet
    in :func:`cache_dir` (atomically, so an interrupted run leaves no half-written sample)."""
    folder = cache_dir()
    paths = []
    for volume in SAMPLE_VOLUMES:
        plain, gzipped = folder / f"{volume.name}.nii", folder / f"{volume.name}.nii.gz"
        if not plain.exists():
            print(f"gpuimg bench: writing the sample {plain} (once)", file=sys.stderr)
            folder.mkdir(parents=True, exist_ok=True)
            save(_sample_image(volume), plain)
        if not gzipped.exists():
            save(load(plain), gzipped)  # the same raw int16 values and scale factors, gzipped
        paths += [os.fspath(plain), os.fspath(gzipped)]
    return paths


def _sample_image(volume: SampleVolume) -> Nifti1Image:
    """A head-like phantom saved as scaled int16: scalp, grey and white matter with 2% noise, a quiet
    background (so gzip packs it about 2.4:1, as scanners' files), a slow drift along a 4th axis."""
    rng = np.random.default_rng(SAMPLE_VERSION)
    spatial = volume.shape[:3]
    axes = np.ogrid[tuple(slice(-1.0, 1.0, n * 1j) for n in spatial)]
    radius = np.sqrt(
        sum((axis / size) ** 2 for axis, size in zip(axes, (0.78, 0.9, 0.82), strict=True))
    )
    tissue = np.select([radius < 0.55, radius < 0.8, radius < 0.9], [820.0, 610.0, 300.0], 0.0)
    data = tissue.astype(np.float32)
    if len(volume.shape) == 4:
        drift = 1 + 0.01 * rng.standard_normal(volume.shape[3], dtype=np.float32)
        data = data[..., np.newaxis] * drift
    noise = rng.standard_normal(data.shape, dtype=np.float32)
    head = (tissue > 0).reshape(tissue.shape + (1,) * (data.ndim - 3))
    data += np.where(head, np.float32(18) * noise, np.float32(3) * np.abs(noise))
    affine = np.diag([*volume.zooms[:3], 1.0])
    affine[:3, 3] = -(np.array(spatial) - 1) / 2 * np.array(volume.zooms[:3])
    img = Nifti1Image(np.round(data), affine)
    img.header.set_zooms(volume.zooms)
    img.set_data_dtype(np.int16)
    return img


def default_devices() -> list[str]:
    """``['cpu', 'cuda']`` when CuPy finds a usable GPU, else ``['cpu']``."""
    try:
        device.resolve_device("cuda")
    except DeviceUnavailableError:
        return ["cpu"]
    return ["cpu", "cuda"]


def gpuimg_load(path: str, dtype: np.dtype, where: str) -> tuple[Any, int]:
    """Load with gpuimg: on a GPU only the raw on-disk bytes cross PCIe."""
    before = gpuread.stats()["bytes_to_device"]
    result = load(path).get_fdata(dtype=dtype, device=None if where == "cpu" else where)
    return result, gpuread.stats()["bytes_to_device"] - before


def nibabel_loader(nib: ModuleType) -> Callable[[str, np.dtype, str], tuple[Any, int]]:
    """Load with nibabel; on a GPU upload the scaled result, as a user of nibabel would."""

    def load_once(path: str, dtype: np.dtype, where: str) -> tuple[Any, int]:
        result = nib.load(path).get_fdata(dtype=dtype)
        if where == "cpu":
            return result, 0
        return device.to_device(result, device=where), result.nbytes

    return load_once


def run(
    files: Sequence[str],
    libraries: dict[str, Callable],
    *,
    devices: Sequence[str],
    dtype: np.dtype,
    repeat: int,
    advance: Callable[[], None],
) -> dict:
    """Time each library on each file and device (best of ``repeat``); the JSON-ready report."""
    results = []
    for path in files:
        for where in devices:
            record: dict[str, Any] = {"file": os.fspath(path), "device": where}
            for name, load_once in libraries.items():
                record[name] = _time_loads(load_once, path, dtype, where, repeat, advance)
            if "nibabel" in record:
                record["speedup"] = record["nibabel"]["seconds"] / record["gpuimg"]["seconds"]
            results.append(record)
    return {"devices": list(devices), "dtype": dtype.name, "repeat": repeat, "results": results}


def _time_loads(
    load_once: Callable, path: str, dtype: np.dtype, where: str, repeat: int, advance: Callable
) -> dict[str, float | int]:
    best, moved, nbytes = float("inf"), 0, 0
    for _ in range(repeat):
        start = time.perf_counter()
        result, moved = load_once(path, dtype, where)
        if where != "cpu":
            device.current_stream().synchronize()
        best = min(best, time.perf_counter() - start)
        nbytes = result.nbytes
        del result
        advance()
    return {
        "seconds": best,
        "mb_per_s": nbytes / best / 1e6 if best > 0 else float("inf"),
        "bytes_to_device": moved,
    }


def print_table(report: dict) -> None:
    """The report as a table: one line per file, device and library, with gpuimg's speed-up."""
    print(f"dtype {report['dtype']}, best of {report['repeat']}")
    gpu = any(where != "cpu" for where in report["devices"])
    header = ["file", "device", "library", "seconds", "MB/s"]
    header += (["to device"] if gpu else []) + ["speed-up"]
    lines = [header]
    for record in report["results"]:
        for library in ("gpuimg", "nibabel"):
            if library not in record:
                continue
            timing = record[library]
            speedup = record.get("speedup") if library == "gpuimg" else None
            lines.append(
                [os.path.basename(record["file"]), record["device"], library]
                + [f"{timing['seconds']:.4f}", f"{timing['mb_per_s']:.0f}"]
                + ([human_size(timing["bytes_to_device"])] if gpu else [])
                + [f"{speedup:.2f}x" if speedup is not None else ""]
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )
