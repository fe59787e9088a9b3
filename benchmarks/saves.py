"""The save rows alone: gpuimg against nibabel, each save on a drained disk.

``python3 -m benchmarks.saves [--quick] [--repeats N] [--data-dir DIR] [--no-fsync] [--json OUT]``

Times the ``t1_save_*`` rows of :mod:`benchmarks.cases` exactly as :mod:`benchmarks.run` does
(alternating libraries, the disk drained by an untimed :func:`os.sync` before every run), prints a
markdown table of medians with the 1-minute load average at the start and the end, and writes the
rows as JSON when asked. Run it through the shared lock on a shared machine::

    flock /tmp/bench.lock chrt -f 10 python3 -m benchmarks.saves

``--no-fsync`` times gpuimg with ``settings.fsync = False`` (not durable, like nibabel's save).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from benchmarks.cases import save_cases
from benchmarks.cli import mode_of, mode_parser
from benchmarks.run import LIBRARIES, run_case
from gpuimg import config

REPEATS = 9


def main(argv: list[str] | None = None) -> None:
    """Command line entry point (see the module docstring)."""
    parser = mode_parser(__doc__.splitlines()[0], full_repeats=REPEATS)
    parser.add_argument("--no-fsync", action="store_true", help="gpuimg saves without fsync")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    mode = mode_of(args)
    cases = save_cases(mode.sizes, mode.store)
    load_start = os.getloadavg()[0]
    fsync = contextlib.nullcontext() if not args.no_fsync else config.configure(fsync=False)
    with fsync:
        rows = [run_case(case, LIBRARIES, mode.repeats) for case in cases]
    load_end = os.getloadavg()[0]
    print(f"{mode.repeats} runs each, median; load (1 min) {load_start:.2f} → {load_end:.2f}")
    print("| row | nibabel ms | gpuimg ms | speed-up | target |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        nib_ms, gpu_ms = (row["times"][lib]["median"] * 1e3 for lib in LIBRARIES)
        target = "" if row["target"] is None else f"≥{row['target']:g}×"
        print(
            f"| {row['label']} | {nib_ms:.1f} | {gpu_ms:.1f} | {row['speedup']:.2f}× | {target} |"
        )
    if args.json is not None:
        result = {"load_average_1min": [load_start, load_end], "fsync": not args.no_fsync}
        args.json.write_text(json.dumps({**result, "rows": rows}, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
