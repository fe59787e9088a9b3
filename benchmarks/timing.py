"""Alternating timer, summary statistics and a description of the machine.

Both libraries run the same case back to back, in alternating order, after one untimed warm-up each
(which also warms the page cache), so drift in the machine's speed hits them equally.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import nibabel._compression
import numpy as np

#: Timed runs per case in full mode (quick mode: 1).
FULL_REPEATS = 7

#: setup(lib) -> state, untimed; op(lib, state) -> result, timed. ``lib`` is whatever is being
#: compared: a library module (nibabel, gpuimg), a loader object, a device path.
Setup = Callable[[Any], Any]
Op = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class Stats:
    """Wall times of the repeats of one case for one library, in seconds."""

    median: float
    min: float
    max: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        """Summarise ``samples`` (at least one)."""
        return cls(float(np.median(samples)), min(samples), max(samples), tuple(samples))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["samples"] = list(self.samples)
        return out


def no_setup(lib: Any) -> None:
    """The default setup: no state."""
    return None


def _timed(lib: Any, setup: Setup, op: Op) -> float:
    state = setup(lib)
    gc.collect()
    start = time.perf_counter()
    result = op(lib, state)
    elapsed = time.perf_counter() - start
    del result, state
    return elapsed


def time_alternating(
    libs: Mapping[str, Any], op: Op, *, repeats: int, setup: Setup = no_setup
) -> dict[str, Stats]:
    """Time ``op`` for every library in ``libs``, alternating which one goes first.

    Parameters
    ----------
    libs : mapping of str to object
        Name -> what is passed to ``setup`` and ``op`` as ``lib`` (the ``nibabel`` or ``gpuimg``
        module, a loader, ...).
    op : callable
        ``op(lib, state)``: the timed work; its result is dropped after the clock stops.
    repeats : int
        Timed runs per library, after one untimed warm-up each.
    setup : callable, optional
        ``setup(lib) -> state``, run untimed before every run (for example a fresh image).

    Returns
    -------
    dict of str to Stats
    """
    names = list(libs)
    for name in names:
        _timed(libs[name], setup, op)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else reversed(names):
            samples[name].append(_timed(libs[name], setup, op))
    return {name: Stats.of(values) for name, values in samples.items()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions(modules: tuple[str, ...]) -> dict[str, str | None]:
    """Version of each module: ``__version__`` when imported, else package metadata (no import)."""
    dists = metadata.packages_distributions()
    out: dict[str, str | None] = {}
    for module in modules:
        names = dists.get(module, [])
        if module in sys.modules:
            out[module] = str(getattr(sys.modules[module], "__version__", "unknown"))
        else:
            out[module] = metadata.version(names[0]) if names else None
    return out


def source_revision(root: Path) -> str | None:
    """Git commit of ``root`` plus ``+dirty`` when ``gpuimg/`` has uncommitted changes; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "gpuimg")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, library versions and which gzip backends are installed."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(pages * os.sysconf("SC_PAGE_SIZE") / 2**30, 1) if pages else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": _versions(("numpy", "nibabel", "gpuimg", "cupy", "torch")),
        "gzip_backends_installed": _versions(("isal", "deflate", "zlib_ng", "indexed_gzip")),
        "nibabel_gzip_reader": (
            "indexed_gzip" if nibabel._compression.HAVE_INDEXED_GZIP else "gzip (stdlib)"
        ),
    }
