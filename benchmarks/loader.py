"""Training-loop loading: ``gpuimg.Loader`` against PyTorch's ``DataLoader`` over nibabel.

Both read the same distinct T1-like int16 ``.nii.gz`` files (32 of 160×192×160 in full mode) into
float32 batches of 4 volumes, C-ordered ``(B, X, Y, Z)``, with the same parallelism: 2 worker
processes for PyTorch (its default ``fork`` start method, workers restarted every epoch as by default),
2 worker threads for gpuimg. One epoch is timed per run, after one warm-up epoch each.

``python3 -m benchmarks.loader [--quick] [--repeats N] [--data-dir DIR]``; skipped cleanly when
``gpuimg.Loader`` or PyTorch is missing.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import nibabel
import numpy as np

from benchmarks.cli import mode_of, mode_parser
from benchmarks.timing import time_alternating
from benchmarks.volumes import Sizes, VolumeStore

BATCH_SIZE = 4
WORKERS = 2
FULL_EPOCHS = 3  # timed epochs per loader in full mode (quick mode: 1)


class NibabelVolumes:
    """Map-style dataset for ``torch.utils.data.DataLoader``: ``nib.load(path).get_fdata(float32)``."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return nibabel.load(self.paths[index]).get_fdata(dtype=np.float32)


def _drain(batches: Iterable[Any], state: Any) -> int:
    return sum(len(batch) for batch in batches)


def _gpuimg_loader_class() -> Any:
    gpuimg = importlib.import_module("gpuimg")
    found = getattr(gpuimg, "Loader", None)
    if found is None:
        found = getattr(importlib.import_module("gpuimg.loader"), "Loader", None)
    return found


def _skip_reason() -> str | None:
    try:
        importlib.import_module("torch.utils.data")
    except ImportError:
        return "PyTorch is not installed"
    try:
        found = _gpuimg_loader_class()
    except ImportError:
        found = None
    return None if found is not None else "gpuimg.Loader is not available"


def run_loader(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """Time one epoch of each loader ``repeats`` times; ``{'skipped': why}`` when one is missing."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    data = importlib.import_module("torch.utils.data")
    paths = store.loader_set(sizes)
    loaders = {
        f"torch DataLoader + nibabel ({WORKERS} workers)": data.DataLoader(
            NibabelVolumes(paths), batch_size=BATCH_SIZE, num_workers=WORKERS
        ),
        f"gpuimg.Loader ({WORKERS} threads)": _gpuimg_loader_class()(
            paths, BATCH_SIZE, device="cpu", num_threads=WORKERS
        ),
    }
    stats = time_alternating(loaders, _drain, repeats=repeats)
    out = {
        name: {"epoch": s.as_dict(), "volumes_per_s": len(paths) / s.median}
        for name, s in stats.items()
    }
    torch_rate, gpuimg_rate = (entry["volumes_per_s"] for entry in out.values())
    return {
        "files": len(paths),
        "shape": list(sizes.loader_shape),
        "batch_size": BATCH_SIZE,
        "workers": WORKERS,
        "loaders": out,
        "speedup": gpuimg_rate / torch_rate,
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: run the loader benchmark alone and print its result as JSON."""
    parser = mode_parser(
        "gpuimg.Loader vs torch DataLoader + nibabel.",
        full_repeats=FULL_EPOCHS,
        unit="timed epochs",
    )
    mode = mode_of(parser.parse_args(argv))
    result = run_loader(mode.store, mode.sizes, repeats=mode.repeats)
    print(f"skipped: {result['skipped']}" if "skipped" in result else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
