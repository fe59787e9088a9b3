"""Run every benchmark: gpuimg against nibabel on the same files, in the same run.

``python3 -m benchmarks.run [--quick] [--json OUT.json] [--repeats N] [--data-dir DIR]``

Writes the volumes when missing (cached in ``benchmarks/data/``), times every row of
:mod:`benchmarks.cases` alternately for both libraries, measures peak memory of ``get_fdata(float32)``
in fresh processes (:mod:`benchmarks.memory`), runs the GPU (:mod:`benchmarks.gpu`) and loader
(:mod:`benchmarks.loader`) benchmarks, prints the tables and writes everything as JSON.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import nibabel
import numpy as np

import gpuimg
from benchmarks import gpu, loader, memory
from benchmarks.cases import Case, build_cases
from benchmarks.cli import Mode, mode_of, mode_parser
from benchmarks.report import render
from benchmarks.timing import FULL_REPEATS, machine_info, source_revision, time_alternating

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

LIBRARIES: dict[str, ModuleType] = {"nibabel": nibabel, "gpuimg": gpuimg}


def _memory_row(path: Path) -> dict[str, Any]:
    out = {}
    for lib in LIBRARIES:
        entry = memory.measure(lib, path)
        nbytes = entry["out_nbytes"]
        entry["tracemalloc_ratio"] = entry["tracemalloc_peak"] / nbytes
        rss = entry["rss_delta"]
        entry["rss_ratio"] = None if rss is None else rss / nbytes
        out[lib] = entry
    return out


def run_case(case: Case, libs: Mapping[str, ModuleType], repeats: int) -> dict[str, Any]:
    """Time one case for every library and measure its memory when it asks for it."""
    stats = time_alternating(libs, case.op, repeats=repeats, setup=case.setup)
    speedup = stats["nibabel"].median / stats["gpuimg"].median
    return {
        "key": case.key,
        "label": case.label,
        "items": case.items,
        "target": case.target,
        "target_met": None if case.target is None else bool(speedup >= case.target),
        "times": {name: s.as_dict() for name, s in stats.items()},
        "speedup": speedup,
        "memory": None if case.memory_path is None else _memory_row(case.memory_path),
    }


def run(mode: Mode, *, progress: bool = True) -> dict[str, Any]:
    """Run all benchmarks and return the JSON-ready result."""
    sizes, store, repeats = mode.sizes, mode.store, mode.repeats
    started = time.perf_counter()
    load_start = os.getloadavg()
    cases = build_cases(sizes, store)
    rows = []
    for case in cases:
        if progress:
            print(f"… {case.label}", file=sys.stderr, flush=True)
        rows.append(run_case(case, LIBRARIES, repeats))
    if progress:
        print("… GPU and loader benchmarks", file=sys.stderr, flush=True)
    gpu_result = gpu.run_gpu(store, sizes, repeats=repeats)
    loader_result = loader.run_loader(store, sizes, repeats=min(repeats, loader.FULL_EPOCHS))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python3", "-m", "benchmarks.run", *sys.argv[1:]]),
        "quick": mode.quick,
        "repeats": repeats,
        "machine": machine_info(),
        "gpuimg_revision": source_revision(Path(gpuimg.__file__).resolve().parent.parent),
        "volumes": {
            spec.kind: {"shape": list(spec.shape), "seed": spec.seed, "nbytes_int16": spec.nvox * 2}
            for spec in (sizes.t1, sizes.fmri, sizes.seg)
        },
        "rows": rows,
        "gpu": gpu_result,
        "loader": loader_result,
        "total_seconds": round(time.perf_counter() - started, 1),
        # other processes competing for the cores show here; the 1-minute figure at start and end
        "load_average_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = mode_parser("Benchmark gpuimg against nibabel.", full_repeats=FULL_REPEATS)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the result")
    args = parser.parse_args(argv)
    result = run(mode_of(args))
    print(render(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(result, indent=1, default=_json_default) + "\n", encoding="utf-8"
    )
    print(f"\nwrote {args.json} ({result['total_seconds']} s)")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


if __name__ == "__main__":
    main()
