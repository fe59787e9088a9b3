"""BGZF rows: block-compressed ``.nii.gz`` read on several threads, sliced, saved, sized, and on the GPU.

Each row times its alternatives side by side in one run (alternating order, see
:func:`benchmarks.timing.time_alternating`) and checks the ratios the BGZF issue sets:

========================  ==============================================================
``t1_bgzf_f32``           T1 BGZF → float32: gpuimg on 2 threads ≥ 1.7× gpuimg on 1 thread,
                          ≥ 6× nibabel on the same file
``fmri_bgzf_volume``      fMRI BGZF: fresh load + one volume ≤ 1/10 of gpuimg's whole read
``t1_bgzf_save``          save T1 as BGZF on 2 threads ≥ 4× nibabel's ``.nii.gz`` save
``bgzf_size``             BGZF file ≤ 1.02× the single-stream file at the same level (1, 6)
``t1_bgzf_gpu``           (GPU only) T1 BGZF → CuPy float32 with nvCOMP ≤ 3 ms warm and ≥ 10×
                          the same read decoding on the host
========================  ==============================================================

``--scaling`` times instead what 2 threads make of the T1 read's parts alone, against 1 thread
(``t1_bgzf_scaling``, no target): decoding and checking every block, and scaling the raw values into a
fresh float32 result (page faults included). The whole read scales no better than its parts do on the
machine's cores and memory, so these ratios bound the first row's.

BGZF files are made from the cached nibabel-written ``.nii.gz`` files with gpuimg's rewrite (the same
decompressed bytes), and cached beside them.

``python3 -m benchmarks.bgzf [--quick] [--repeats N] [--data-dir DIR] [--markdown] [--scaling]``
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import deflate
import nibabel
import numpy as np

import gpuimg
from benchmarks.cli import mode_of, mode_parser
from benchmarks.timing import Stats, machine_info, time_alternating
from benchmarks.volumes import Sizes, VolumeSpec, VolumeStore
from gpuimg import config
from gpuimg.io.bgzf import BgzfReader
from gpuimg.io.recompress import rewrite_as_bgzf
from gpuimg.scaling import scale_into


def bgzf_path(store: VolumeStore, spec: VolumeSpec, level: int) -> Path:
    """The cached BGZF rewrite of ``spec``'s gzip-``level`` file (made when missing)."""
    source = store.path(spec, f"gz{level}")
    target = source.with_name(source.name.replace(f"_gz{level}.nii.gz", f"_bgzf{level}.nii.gz"))
    if not target.exists():
        partial = target.with_name(target.name.replace(".nii.gz", ".partial.nii.gz"))
        shutil.copyfile(source, partial)
        rewrite_as_bgzf(partial, compresslevel=level)
        os.replace(partial, target)
    return target


class _Threads:
    """gpuimg with ``settings.threads`` fixed, as a library for :func:`time_alternating`."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def fdata(self, path: Path) -> np.ndarray:
        with config.configure(threads=self.threads):
            return gpuimg.load(path).get_fdata(dtype=np.float32)


def ratio_row(key: str, label: str, times: dict[str, Stats], checks: list[tuple]) -> dict[str, Any]:
    """A row: medians per alternative, and each ``(fast, slow, target)`` ratio slow/fast.

    A target of None makes the ratio a measurement only (``met`` None).
    """
    ratios = []
    for fast, slow, target in checks:
        ratio = times[slow].median / times[fast].median
        met = None if target is None else ratio >= target
        ratios.append({"fast": fast, "slow": slow, "ratio": ratio, "target": target, "met": met})
    return {
        "key": key,
        "label": label,
        "times": {name: stats.as_dict() for name, stats in times.items()},
        "ratios": ratios,
    }


def _read_row(path: Path, repeats: int) -> dict[str, Any]:
    libs = {"gpuimg 2 threads": _Threads(2), "gpuimg 1 thread": _Threads(1), "nibabel": None}

    def op(lib: Any, state: Any) -> np.ndarray:
        if lib is None:
            return nibabel.load(path).get_fdata(dtype=np.float32)
        return lib.fdata(path)

    times = time_alternating(libs, op, repeats=repeats)
    checks = [("gpuimg 2 threads", "gpuimg 1 thread", 1.7), ("gpuimg 2 threads", "nibabel", 6.0)]
    return ratio_row("t1_bgzf_f32", "T1 BGZF .nii.gz → float32", times, checks)


def _scaling_row(path: Path, repeats: int) -> dict[str, Any]:
    """The read's parts alone on 1 and 2 threads (see the module docstring)."""
    with BgzfReader(path) as reader:
        reader.size()  # walks every block header
        blocks = reader.index.blocks(0, len(reader.index))
    compressed = memoryview(path.read_bytes())
    proxy = gpuimg.load(path).dataobj
    raw = np.asarray(proxy.get_unscaled()).reshape(-1, order="F")
    plan = proxy.scale_plan(np.float32)

    def decode(number: int) -> None:
        block = blocks[number]
        data = deflate.deflate_decompress(
            compressed[block.payload_start : block.payload_stop], block.data_stop - block.data_start
        )
        if deflate.crc32(data) != block.crc:
            raise ValueError(f"{path}: block {number} fails its CRC32")

    parts = {
        "decode + CRC32 of every block": lambda: config.parallel_for_each(decode, len(blocks)),
        "scale into a fresh float32 result": lambda: scale_into(
            raw, plan, np.empty(raw.size, np.float32)
        ),
    }
    libs = {
        f"{part}, {threads} thread{'s' * (threads > 1)}": (part, threads)
        for part in parts
        for threads in (1, 2)
    }

    def op(lib: tuple[str, int], state: Any) -> None:
        part, threads = lib
        with config.configure(threads=threads):
            parts[part]()

    times = time_alternating(libs, op, repeats=repeats)
    checks = [(f"{part}, 2 threads", f"{part}, 1 thread", None) for part in parts]
    return ratio_row("t1_bgzf_scaling", "T1 BGZF read's parts", times, checks)


def _volume_row(path: Path, volume: int, repeats: int) -> dict[str, Any]:
    ops = {
        f"load + dataobj[..., {volume}]": lambda: gpuimg.load(path).dataobj[..., volume],
        "whole read (get_fdata float32)": lambda: gpuimg.load(path).get_fdata(dtype=np.float32),
    }
    times = time_alternating(ops, lambda fn, state: fn(), repeats=repeats)
    fresh, whole = ops
    return ratio_row(
        "fmri_bgzf_volume", "fMRI BGZF: fresh load + one volume", times, [(fresh, whole, 10)]
    )


def _save_row(source: Path, repeats: int) -> dict[str, Any]:
    reference = nibabel.load(source)
    data = np.asarray(reference.dataobj.get_unscaled())
    theirs = nibabel.Nifti1Image(data, reference.affine)
    ours = gpuimg.Nifti1Image(data, reference.affine)
    with tempfile.TemporaryDirectory(dir=source.parent) as folder:
        target = Path(folder) / "saved.nii.gz"

        def save_bgzf() -> None:
            with config.configure(threads=2):
                gpuimg.save(ours, target, bgzf=True)

        ops = {
            "gpuimg BGZF, 2 threads": save_bgzf,
            "nibabel .nii.gz": lambda: nibabel.save(theirs, target),
        }
        times = time_alternating(ops, lambda fn, state: fn(), repeats=repeats)
    checks = [("gpuimg BGZF, 2 threads", "nibabel .nii.gz", 4.0)]
    return ratio_row("t1_bgzf_save", "save T1 (int16) as .nii.gz", times, checks)


def _size_row(store: VolumeStore, spec: VolumeSpec) -> dict[str, Any]:
    """BGZF against gpuimg's single stream (same engine and level) and nibabel's file."""
    sizes = {}
    data = gpuimg.load(store.path(spec, "gz1"))
    with tempfile.TemporaryDirectory(dir=store.data_dir) as folder:
        for level in (1, 6):
            single = Path(folder) / f"single{level}.nii.gz"
            with config.configure(compresslevel=level):
                gpuimg.save(data, single, bgzf=False)
            sizes[level] = {
                "bgzf": bgzf_path(store, spec, level).stat().st_size,
                "single_stream": single.stat().st_size,
                "nibabel": store.path(spec, f"gz{level}").stat().st_size,
            }
    ratios = [
        {
            "level": level,
            "ratio": s["bgzf"] / s["single_stream"],
            "target": 1.02,
            "met": s["bgzf"] / s["single_stream"] <= 1.02,
        }
        for level, s in sizes.items()
    ]
    return {"key": "bgzf_size", "label": "BGZF file size", "sizes": sizes, "ratios": ratios}


def run_bgzf(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """Every CPU row; the GPU row is ``benchmarks.gpu.run_bgzf_gpu``."""
    store.prepare([(sizes.t1, "gz1"), (sizes.t1, "gz6"), (sizes.fmri, "gz1")])
    t1, fmri = bgzf_path(store, sizes.t1, 1), bgzf_path(store, sizes.fmri, 1)
    bgzf_path(store, sizes.t1, 6)
    return {
        "machine": machine_info(),
        "rows": [
            _read_row(t1, repeats),
            _volume_row(fmri, sizes.fmri_volume, repeats),
            _save_row(store.path(sizes.t1, "gz1"), repeats),
            _size_row(store, sizes.t1),
        ],
    }


def run_scaling(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """The ``--scaling`` row alone."""
    store.prepare([(sizes.t1, "gz1")])
    return {
        "machine": machine_info(),
        "rows": [_scaling_row(bgzf_path(store, sizes.t1, 1), repeats)],
    }


def markdown(result: dict[str, Any]) -> str:
    """The rows as a markdown table (medians in ms, ratios against their targets)."""
    lines = ["| row | alternative | median ms |", "|---|---|---|"]
    checks = ["| row | ratio | measured | target | met |", "|---|---|---|---|---|"]
    for row in result.get("rows", []):
        for name, stats in row.get("times", {}).items():
            lines.append(f"| {row['label']} | {name} | {stats['median'] * 1e3:.1f} |")
        for ratio in row["ratios"]:
            what = (
                f"{ratio['slow']} / {ratio['fast']}"
                if "fast" in ratio
                else f"BGZF / single stream, level {ratio['level']}"
            )
            op = "≤" if "level" in ratio else "≥"
            target = "—" if ratio["target"] is None else f"{op} {ratio['target']}"
            met = {None: "—", True: "yes", False: "no"}[ratio["met"]]
            checks.append(f"| {row['key']} | {what} | {ratio['ratio']:.2f} | {target} | {met} |")
    return "\n".join(lines + [""] + checks)


def main(argv: list[str] | None = None) -> None:
    """Command line: run the CPU BGZF rows and print JSON (or markdown)."""
    parser = mode_parser("BGZF .nii.gz rows: threads, slices, saves, sizes.", full_repeats=5)
    parser.add_argument("--markdown", action="store_true", help="print tables instead of JSON")
    parser.add_argument(
        "--scaling", action="store_true", help="time the read's parts on 1 and 2 threads instead"
    )
    args = parser.parse_args(argv)
    mode = mode_of(args)
    started = time.perf_counter()
    run = run_scaling if args.scaling else run_bgzf
    result = run(mode.store, mode.sizes, repeats=mode.repeats)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(markdown(result) if args.markdown else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
