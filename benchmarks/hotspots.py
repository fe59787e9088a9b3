"""Where gpuimg's time goes: cProfile of benchmark rows (gpuimg only), and the floor
that one-thread decompression (libdeflate, ISA-L, zlib-ng) sets for every ``.nii.gz`` row.

cProfile sees Python functions; time spent inside a C extension (decompression, numpy kernels) is
charged to the Python-visible call that entered it (``deflate.gzip_decompress``, ``numpy.multiply``).

``python3 -m benchmarks.hotspots [--quick] [--repeats N] [--top N] [--data-dir DIR]``
"""

from __future__ import annotations

import cProfile
import functools
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import deflate
import numpy as np

import gpuimg
from benchmarks.cli import mode_of, mode_parser
from benchmarks.volumes import Sizes, VolumeStore
from gpuimg.io.openers import gzip_backend, open_sequential

_PREFIXES = sorted({os.path.dirname(os.path.dirname(gpuimg.__file__)), *sys.path}, key=len)[::-1]


def _profiled_rows(store: VolumeStore, sizes: Sizes) -> dict[str, Callable[[], Any]]:
    wanted = [(sizes.t1, "gz1"), (sizes.t1, "nii"), (sizes.seg, "gz1"), (sizes.fmri, "gz1")]
    store.prepare(wanted)
    t1, t1_nii, seg, fmri = (store.path(spec, variant) for spec, variant in wanted)
    vol = sizes.fmri_volume
    used = gpuimg.load(fmri)
    used.dataobj[..., vol]
    return {
        "T1 .nii.gz (gzip 1) → float32": lambda: gpuimg.load(t1).get_fdata(dtype=np.float32),
        "T1 .nii → float32": lambda: gpuimg.load(t1_nii).get_fdata(dtype=np.float32),
        "seg .nii.gz → float32": lambda: gpuimg.load(seg).get_fdata(dtype=np.float32),
        f"fMRI .nii.gz: load + dataobj[..., {vol}]": lambda: gpuimg.load(fmri).dataobj[..., vol],
        f"fMRI .nii.gz: same image, dataobj[..., {vol + 1}]": lambda: used.dataobj[..., vol + 1],
    }


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":  # a builtin or C function
        return name
    for prefix in _PREFIXES:
        if prefix and filename.startswith(prefix + os.sep):
            filename = filename[len(prefix) + 1 :]
            break
    return f"{filename}:{line}({name})"


def profile(fn: Callable[[], Any], *, repeats: int, top: int) -> str:
    """Profile ``repeats`` calls of ``fn`` (after one warm-up) and format the ``top`` functions.

    Parameters
    ----------
    fn : callable
        The work, called without arguments.
    repeats : int
        Profiled calls.
    top : int
        Rows of the table, sorted by own time (``tottime``).

    Returns
    -------
    str
        A Markdown table: own and cumulative milliseconds per call, calls per call, function.
    """
    fn()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeats):
        fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt / repeats * 1e3
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    lines = [
        f"{total:.1f} ms per call under the profiler ({repeats} calls)",
        "",
        "| own ms | cumulative ms | calls | function |",
        "|---:|---:|---:|---|",
    ]
    for func, (_, ncalls, tottime, cumtime, _) in entries:
        lines.append(
            f"| {tottime / repeats * 1e3:.2f} | {cumtime / repeats * 1e3:.2f} "
            f"| {ncalls / repeats:g} | `{_where(func)}` |"
        )
    return "\n".join(lines)


def _whole_libdeflate(path: Path) -> int:
    return len(deflate.gzip_decompress(path.read_bytes()))


_STREAM_BUFFER = bytearray(1 << 20)


def _streamed(backend: str, path: Path) -> int:
    """Decompress ``path`` as gpuimg streams it with ``backend``: ``readinto`` a reused 1 MiB buffer."""
    total = 0
    with gzip_backend(backend), open_sequential(path) as stream:
        while count := stream.readinto(_STREAM_BUFFER):
            total += count
    return total


DECOMPRESSORS: dict[str, Callable[[Path], int]] = {
    "libdeflate, whole file": _whole_libdeflate,
    "ISA-L, streamed": functools.partial(_streamed, "isal"),
    "zlib-ng, streamed": functools.partial(_streamed, "zlib-ng"),
}


def decompression_floor(store: VolumeStore, sizes: Sizes, *, repeats: int) -> str:
    """Median time of one-thread decompression of each ``.nii.gz`` by each fast library.

    The fastest of them bounds what any single-stream read of the file can cost (gpuimg streams with
    ISA-L); only splitting the decompression of one stream across cores goes below it.
    """
    files = {
        "T1 (gzip 1)": (sizes.t1, "gz1"),
        "T1 (gzip 6)": (sizes.t1, "gz6"),
        "T1, noisy background (gzip 1)": (sizes.t1_noisy_background, "gz1"),
        "fMRI (gzip 1)": (sizes.fmri, "gz1"),
        "seg (gzip 1)": (sizes.seg, "gz1"),
    }
    store.prepare(files.values())
    names = list(DECOMPRESSORS)
    lines = [
        "| file | compressed MB | output MB | "
        + " | ".join(f"{name} ms" for name in names)
        + " | fastest, MB/s of output |",
        "|---|---:|---:|" + "---:|" * (len(names) + 1),
    ]
    for label, (spec, variant) in files.items():
        path = store.path(spec, variant)
        medians, size = [], 0
        for decompress in DECOMPRESSORS.values():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                size = decompress(path)
                times.append(time.perf_counter() - start)
            medians.append(float(np.median(times)))
        lines.append(
            f"| {label} | {path.stat().st_size / 1e6:.1f} | {size / 1e6:.1f} | "
            + " | ".join(f"{m * 1e3:.1f}" for m in medians)
            + f" | {size / min(medians) / 1e6:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: print one profile table per row."""
    parser = mode_parser(
        "cProfile of gpuimg on benchmark rows.",
        full_repeats=5,
        quick_repeats=5,
        unit="profiled calls",
    )
    parser.add_argument("--top", type=int, default=12, help="functions shown per row")
    args = parser.parse_args(argv)
    mode = mode_of(args)
    for label, fn in _profiled_rows(mode.store, mode.sizes).items():
        print(f"### {label}\n\n{profile(fn, repeats=mode.repeats, top=args.top)}\n")
    floor = decompression_floor(mode.store, mode.sizes, repeats=mode.repeats)
    print(f"### Decompression floor (one thread, whole file)\n\n{floor}")


if __name__ == "__main__":
    main()
