"""What the ``fsync`` of a save costs: ``gpuimg.save`` with ``settings.fsync`` on and off, interleaved.

Run as ``python3 -m benchmarks.save_fsync [--repeats N] [--dir DIR]`` (DIR: a folder on the file system
to measure; a temporary folder by default). Prints a markdown table of median times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import gpuimg
from gpuimg import config


def _cases() -> list[tuple[str, str, gpuimg.Nifti1Image]]:
    data = np.random.default_rng(0).integers(0, 4000, (128, 128, 128, 8)).astype(np.int16)
    small = np.ascontiguousarray(data[:32, :32, :32, 0])
    return [
        ("64 KiB int16", ".nii", gpuimg.Nifti1Image(small, np.eye(4))),
        ("32 MiB int16", ".nii", gpuimg.Nifti1Image(data, np.eye(4))),
        ("32 MiB int16", ".nii.gz", gpuimg.Nifti1Image(data, np.eye(4))),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print("| image | file | fsync on, ms | fsync off, ms | on/off |")
        print("|---|---|---:|---:|---:|")
        for label, ext, img in _cases():
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(args.repeats):
                for fsync in (True, False):
                    with config.configure(fsync=fsync):
                        start = time.perf_counter()
                        gpuimg.save(img, str(Path(folder) / f"out{ext}"))
                        times[fsync].append(time.perf_counter() - start)
            on, off = (statistics.median(times[flag]) * 1e3 for flag in (True, False))
            print(f"| {label} | `{ext}` | {on:.1f} | {off:.1f} | {on / off:.2f} |")


if __name__ == "__main__":
    main()
