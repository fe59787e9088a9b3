"""Peak memory of one ``load(path).get_fdata(dtype=...)``, measured in a fresh interpreter.

A fresh process per measurement means nothing is cached or pooled from an earlier call: what a
library allocates on first use (buffer pools included) counts. Two measures of the same call:

``tracemalloc_peak``
    Peak bytes allocated through Python's allocators during the call (numpy arrays included). It
    misses memory a C library takes with plain ``malloc`` and file pages mapped with ``mmap``.
``rss_delta``
    Peak resident set size during the call (``ru_maxrss``) minus the resident size just before it
    (Linux ``/proc/self/statm``). It counts everything touched, mapped file pages included, plus
    tracemalloc's own small bookkeeping.

Run as ``python3 -m benchmarks.memory LIB PATH [DTYPE]``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


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
    before = _resident_bytes()
    tracemalloc.start()
    data = img.get_fdata(dtype=np.dtype(dtype))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "out_nbytes": int(data.nbytes),
        "tracemalloc_peak": int(peak),
        "rss_delta": None if before is None else max(max_rss - before, 0),
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
