"""Peak memory of one ``load(path).get_fdata(dtype=...)``, measured in a fresh interpreter.

A fresh process per measurement means nothing is cached or pooled from an earlier call: what a
library allocates on first use (buffer pools included) counts. Two measures of the same call:

``tracemalloc_peak``
    Peak bytes allocated through Python's allocators during the call (numpy arrays included). It
    misses memory a C library takes with plain ``malloc`` and file pages mapped with ``mmap``.
``rss_delta``
    Peak resident set size during the call minus the resident size just before it, from Linux's
    ``/proc/self/status`` (``VmHWM`` after the call, reset to ``VmRSS`` before it through
    ``/proc/self/clear_refs``; ``ru_maxrss`` would not do: it keeps the parent's peak across
    ``fork`` and ``exec``). It counts everything touched, mapped file pages included, plus
    tracemalloc's own small bookkeeping. None where ``/proc`` is missing.

Run as ``python3 -m benchmarks.memory LIB PATH [DTYPE]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None without /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> None:
    """Make ``VmHWM`` start again from the current RSS (Linux 4.0+); harmless where refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def probe(lib_name: str, path: str | os.PathLike, dtype: str = "float32") -> dict[str, Any]:
    """Measure one ``get_fdata`` call in this process (meant for a fresh one; see module docstring).

    Parameters
    ----------
    lib_name : str
        Importable module with ``load`` (``'nibabel'`` or ``'gpuimg'``).
    path : path-like
        Image file.
    dtype : str, optional
        Floating point dtype passed to ``get_fdata``.

    Returns
    -------
    dict
        ``out_nbytes``, ``tracemalloc_peak`` and ``rss_delta`` (None where /proc is missing), bytes.
    """
    lib = importlib.import_module(lib_name)
    img = lib.load(path)
    gc.collect()
    _reset_peak_rss()
    before = _status_bytes("VmRSS")
    tracemalloc.start()
    data = img.get_fdata(dtype=np.dtype(dtype))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    high = _status_bytes("VmHWM")
    return {
        "out_nbytes": int(data.nbytes),
        "tracemalloc_peak": int(peak),
        "rss_delta": None if before is None or high is None else max(high - before, 0),
    }


def measure(lib_name: str, path: str | os.PathLike, dtype: str = "float32") -> dict[str, Any]:
    """Run :func:`probe` in a fresh ``python3 -m benchmarks.memory`` process and return its result."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", lib_name, os.fspath(path), dtype],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe of {lib_name} on {path} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> None:
    """Command line: print :func:`probe`'s result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lib", choices=["nibabel", "gpuimg"])
    parser.add_argument("path")
    parser.add_argument("dtype", nargs="?", default="float32")
    args = parser.parse_args(argv)
    print(json.dumps(probe(args.lib, args.path, args.dtype)))


if __name__ == "__main__":
    main()
