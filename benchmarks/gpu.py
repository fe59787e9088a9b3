"""Disk → CuPy float32: gpuimg's device path against nibabel followed by ``cupy.asarray``.

gpuimg: ``gpuimg.load(f).get_fdata(dtype=np.float32, device='cuda')`` (the raw on-disk values cross
PCIe and are scaled on the GPU). nibabel: ``cupy.asarray(nibabel.load(f).get_fdata(dtype=np.float32))``
(float32 crosses PCIe). Reported per run:

``wall``
    Wall time from the call to a full device synchronisation after it.
``event``
    GPU time between ``cupy.cuda.Event``\\ s recorded on the current stream before the call and after
    it returns. For nibabel only the ``cupy.asarray`` copy is bracketed, so its event time is the
    host → device copy alone.
``pcie_bytes`` and ``pcie_gbps``
    Bytes that cross PCIe per volume (nibabel: the float32 output; gpuimg: the voxels at their
    on-disk item size, from gpuimg's design, not measured), and those bytes over the median wall
    time (for nibabel also over the median copy time, ``copy_gbps``).

A BGZF row (:func:`run_bgzf_gpu`, under the ``bgzf`` key) times the T1 as BGZF read with nvCOMP
decoding on the device against the same read decoding on the host, and records the bytes each moved.

``python3 -m benchmarks.gpu [--quick] [--repeats N] [--data-dir DIR]``; prints ``skipped: no GPU``
where CuPy or a CUDA device is missing.
"""

from __future__ import annotations

import functools
import importlib
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import nibabel
import numpy as np

import gpuimg
from benchmarks.bgzf import bgzf_path, ratio_row
from benchmarks.cli import mode_of, mode_parser
from benchmarks.timing import FULL_REPEATS, Stats, time_alternating
from benchmarks.volumes import Sizes, VolumeStore
from gpuimg import device, gpuread


def find_cupy() -> tuple[ModuleType | None, str]:
    """CuPy when it and a CUDA device are usable, else None and why not."""
    try:
        cupy = importlib.import_module("cupy")
        count = cupy.cuda.runtime.getDeviceCount()
    except (ImportError, RuntimeError, OSError) as exc:
        return None, f"no GPU ({type(exc).__name__}: {exc})"
    if count == 0:
        return None, "no GPU (0 CUDA devices)"
    return cupy, f"{count} CUDA device(s)"


class DevicePath:
    """One way from a file to a CuPy float32 array, recording GPU event times per call."""

    def __init__(self, cupy: ModuleType, library: str) -> None:
        self.cupy = cupy
        self.library = library
        self.event_seconds: list[float] = []

    def __call__(self, path: Path) -> Any:
        """Read ``path`` to the device, synchronised; record the event time."""
        cuda = self.cupy.cuda
        start, end = cuda.Event(), cuda.Event()
        if self.library == "gpuimg":
            start.record()
            out = gpuimg.load(path).get_fdata(dtype=np.float32, device="cuda")
        else:
            host = nibabel.load(path).get_fdata(dtype=np.float32)
            start.record()
            out = self.cupy.asarray(host)
        end.record()
        cuda.Device().synchronize()
        self.event_seconds.append(cuda.get_elapsed_time(start, end) / 1e3)
        return out


def _pcie_bytes(library: str, path: Path) -> int:
    img = nibabel.load(path)
    itemsize = img.get_data_dtype().itemsize if library == "gpuimg" else 4
    return int(np.prod(img.shape)) * itemsize


def _cases(store: VolumeStore, sizes: Sizes) -> list[tuple[str, str, Path]]:
    store.prepare([(sizes.t1, "gz1"), (sizes.t1, "nii"), (sizes.fmri, "gz1"), (sizes.seg, "gz1")])
    return [
        ("sample_gz", "bundled sample .nii.gz", gpuimg.data.sample_path()),
        ("t1_gz1", "T1 .nii.gz", store.path(sizes.t1, "gz1")),
        ("t1_nii", "T1 .nii", store.path(sizes.t1, "nii")),
        ("fmri_gz1", "fMRI .nii.gz", store.path(sizes.fmri, "gz1")),
        ("seg_gz1", "seg .nii.gz", store.path(sizes.seg, "gz1")),
    ]


def _read(path: Path, device_path: DevicePath, state: Any) -> Any:
    return device_path(path)


def run_gpu(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """Time disk → CuPy for both libraries; ``{'skipped': 'no GPU (...)'}`` without a GPU."""
    cupy, detail = find_cupy()
    if cupy is None:
        return {"skipped": detail}
    rows = []
    for key, label, path in _cases(store, sizes):
        paths = {lib: DevicePath(cupy, lib) for lib in ("nibabel", "gpuimg")}
        wall = time_alternating(paths, functools.partial(_read, path), repeats=repeats)
        libs = {}
        for lib, fn in paths.items():
            event = Stats.of(fn.event_seconds[1:])  # drop the warm-up call
            nbytes = _pcie_bytes(lib, path)
            libs[lib] = {
                "wall": wall[lib].as_dict(),
                "event": event.as_dict(),
                "pcie_bytes": nbytes,
                "pcie_gbps": nbytes / wall[lib].median / 1e9,
            }
        libs["nibabel"]["copy_gbps"] = (
            libs["nibabel"]["pcie_bytes"] / libs["nibabel"]["event"]["median"] / 1e9
        )
        rows.append(
            {
                "key": key,
                "label": label,
                "libs": libs,
                "speedup": wall["nibabel"].median / wall["gpuimg"].median,
            }
        )
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return {
        "device": name.decode() if isinstance(name, bytes) else str(name),
        "detail": detail,
        "rows": rows,
    }


def _device_read(path: Path, cupy: Any, nvcomp: bool) -> float:
    """One synchronised T1 read to the device; the bytes it moved host to device."""
    gpuread.reset_stats()
    with device.use_nvcomp_backend(device.get_nvcomp() if nvcomp else None):
        gpuimg.load(path).get_fdata(dtype=np.float32, device="cuda")
    cupy.cuda.Device().synchronize()
    return gpuread.stats()["bytes_to_device"]


def run_bgzf_gpu(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """T1 BGZF → CuPy float32, nvCOMP against host decoding; skipped without a GPU or nvCOMP."""
    cupy, detail = find_cupy()
    if cupy is None:
        return {"skipped": detail}
    if device.get_nvcomp() is None:
        return {"skipped": "nvCOMP is not installed (pip install nvidia-nvcomp-cu12)"}
    store.prepare([(sizes.t1, "gz1")])
    path = bgzf_path(store, sizes.t1, 1)
    moved: dict[str, float] = {}

    def op(nvcomp: bool, state: Any) -> None:
        moved["nvcomp" if nvcomp else "host decode"] = _device_read(path, cupy, nvcomp)

    times = time_alternating({"nvcomp": True, "host decode": False}, op, repeats=repeats)
    row = ratio_row("t1_bgzf_gpu", "T1 BGZF → CuPy float32", times, [("nvcomp", "host decode", 10)])
    row["bytes_to_device"] = moved
    row["warm_target_seconds"] = 0.003
    row["warm_met"] = times["nvcomp"].median <= 0.003
    return {"detail": detail, "rows": [row]}


def main(argv: list[str] | None = None) -> None:
    """Command line: run the GPU benchmark alone and print its result as JSON."""
    parser = mode_parser("Disk -> CuPy float32, gpuimg vs nibabel.", full_repeats=FULL_REPEATS)
    mode = mode_of(parser.parse_args(argv))
    started = time.perf_counter()
    result = run_gpu(mode.store, mode.sizes, repeats=mode.repeats)
    if "skipped" in result:
        print(f"skipped: {result['skipped']}")
        return
    result["bgzf"] = run_bgzf_gpu(mode.store, mode.sizes, repeats=mode.repeats)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
