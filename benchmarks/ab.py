"""A/B: gpuimg's read rows timed for two source trees, in alternating fresh processes.

``python3 -m benchmarks.ab OLD_TREE NEW_TREE [--rounds N] [--repeats N] [--rows KEY ...] [--quick]
[--data-dir DIR]``

Each tree is a folder holding a ``gpuimg`` package (a checkout, or ``git archive`` of a commit).
Every round starts one process per tree, old first in even rounds and new first in odd ones, and
each process times every row (one warm-up, then ``--repeats`` runs, median) with its own
``gpuimg``. On a shared machine the load moves from one minute to the next; alternating rounds
expose both trees to the same load, and the median over rounds of each tree's medians is compared.
Rows: the read rows of :mod:`benchmarks.cases` (gpuimg's side), the loader's epochs (C and F order,
host) and a BGZF whole read and volume. Prints a table and the ratio new / old per row.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.cli import mode_of, mode_parser

#: Rows of :mod:`benchmarks.cases` left out: saves do not read.
SKIPPED_PREFIX = "t1_save"


Row = tuple[Callable[[], Any], Callable[[Any], Any]]  # (untimed setup, timed op of its state)


def _rows(mode: Any) -> dict[str, Row]:
    """Every row, with the ``gpuimg`` this process imported."""
    import gpuimg
    from benchmarks import loader
    from benchmarks.bgzf import bgzf_path
    from benchmarks.cases import build_cases

    sizes, store = mode.sizes, mode.store
    rows: dict[str, Row] = {
        case.key: (functools.partial(case.setup, gpuimg), functools.partial(case.op, gpuimg))
        for case in build_cases(sizes, store)
        if not case.key.startswith(SKIPPED_PREFIX)
    }
    paths = store.loader_set(sizes)
    for order in ("C", "F"):
        epochs = gpuimg.Loader(paths, loader.BATCH_SIZE, num_threads=loader.WORKERS, order=order)
        rows[f"loader_{order}"] = (lambda: None, functools.partial(loader._drain, epochs))
    t1, fmri = bgzf_path(store, sizes.t1, 1), bgzf_path(store, sizes.fmri, 1)
    rows["t1_bgzf_f32"] = (lambda: None, lambda _: gpuimg.load(t1).get_fdata(dtype="float32"))
    rows["fmri_bgzf_volume"] = (
        lambda: None,
        lambda _: gpuimg.load(fmri).dataobj[..., sizes.fmri_volume],
    )
    return rows


def _time(row: Row) -> float:
    setup, op = row
    state = setup()
    start = time.perf_counter()
    op(state)
    return time.perf_counter() - start


def child(tree: Path, mode: Any, rows: list[str]) -> dict[str, float]:
    """Median milliseconds of every row, with the ``gpuimg`` of ``tree``."""
    sys.path.insert(0, str(tree))
    import gpuimg

    if Path(gpuimg.__file__).resolve().parent.parent != tree.resolve():
        raise RuntimeError(f"imported {gpuimg.__file__}, expected the gpuimg of {tree}")
    medians = {}
    for key, row in _rows(mode).items():
        if rows and key not in rows:
            continue
        _time(row)
        medians[key] = 1000 * statistics.median(_time(row) for _ in range(mode.repeats))
    return medians


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    parser = mode_parser("A/B of gpuimg's read rows for two trees.", full_repeats=3)
    parser.add_argument("old", type=Path, nargs="?")
    parser.add_argument("new", type=Path, nargs="?")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", nargs="*", default=[], help="only these rows (default: all)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mode = mode_of(args)
    if args.child is not None:
        print(json.dumps(child(args.child, mode, args.rows)))
        return
    _rows(mode)  # writes every volume once, before any timing
    passed = argv if argv is not None else sys.argv[1:]
    options = [a for a in passed if a not in (str(args.old), str(args.new))]
    times: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    loads = []
    for round_number in range(args.rounds):
        order = ("old", "new") if round_number % 2 == 0 else ("new", "old")
        for which in order:
            tree = getattr(args, which)
            command = [sys.executable, "-m", "benchmarks.ab", *options, "--child", str(tree)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            times[which].append(json.loads(output.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"1-minute load average over the rounds: {min(loads):.2f}–{max(loads):.2f}")
    print("| row | old ms | new ms | new / old |")
    print("|---|---|---|---|")
    for key in times["old"][0]:
        old = statistics.median(run[key] for run in times["old"])
        new = statistics.median(run[key] for run in times["new"])
        print(f"| {key} | {old:.3g} | {new:.3g} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
