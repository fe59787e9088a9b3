"""Training-loop loading: ``gpuimg.Loader`` against the loaders people use, and the decompression floor.

Every loader reads the same distinct T1-like int16 ``.nii.gz`` files (32 of 160×192×160 in full mode)
into float32 batches of 4 volumes with the same parallelism, 2 workers:

- PyTorch's ``DataLoader`` over ``nibabel.load(path).get_fdata(dtype=float32)`` (2 worker processes,
  its default ``fork`` start method, restarted every epoch as by default);
- MONAI's ``LoadImaged`` in a ``monai.data.Dataset`` and ``monai.data.DataLoader`` (2 workers);
- TorchIO's ``SubjectsDataset`` of ``ScalarImage`` and ``SubjectsLoader`` (2 workers);
- ``gpuimg.Loader`` with 2 threads, C-ordered batches (the default) and disk-ordered ones
  (``order='F'``).

The floor is what decompressing the same files costs alone, on 2 threads: each file read and
decompressed whole by ISA-L (``isal.igzip.decompress``) and by libdeflate
(``deflate.gzip_decompress``), nothing else. A loader cannot be faster than its decompressor, so the
ratio of its rate to the floor says how much of the machine it uses. Each decoder is timed two ways,
because where its output's memory comes from changes its rate by up to 2× on this machine: its outputs
handed to the consumer (as a loader hands over its batches; the memory is fresh, page faults
included), and each output freed on its own thread as soon as it is decoded (the allocator then
reuses that memory, as a loader reuses its buffers: the decoder alone). A decoder's floor is the
faster of its two rows in the run, so the ratios are taken against the hardest floor measured. One
epoch of each is timed per run, after one warm-up epoch each, alternating the order.

``python3 -m benchmarks.loader [--quick] [--repeats N] [--data-dir DIR]``; skipped cleanly when
``gpuimg.Loader`` or PyTorch is missing; MONAI, TorchIO, ISA-L or libdeflate each drop their row when
missing (the result says which).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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

TORCH = f"torch DataLoader + nibabel ({WORKERS} workers)"
MONAI = f"MONAI LoadImaged + DataLoader ({WORKERS} workers)"
TORCHIO = f"TorchIO SubjectsLoader ({WORKERS} workers)"
GPUIMG_C = f"gpuimg.Loader order='C' ({WORKERS} threads)"
GPUIMG_F = f"gpuimg.Loader order='F' ({WORKERS} threads)"
ISAL_FLOOR = f"decompression alone, ISA-L ({WORKERS} threads)"
LIBDEFLATE_FLOOR = f"decompression alone, libdeflate ({WORKERS} threads)"
FREED = ", each output freed at once"
#: Decoder floor -> its rows (outputs handed over, outputs freed at once); the faster row is the floor.
FLOOR_ROWS = {floor: (floor, floor + FREED) for floor in (ISAL_FLOOR, LIBDEFLATE_FLOOR)}

#: (numerator, denominator, key) of the ratios the result reports.
RATIOS = [
    (GPUIMG_C, ISAL_FLOOR, "gpuimg C / ISA-L floor"),
    (GPUIMG_C, LIBDEFLATE_FLOOR, "gpuimg C / libdeflate floor"),
    (GPUIMG_F, ISAL_FLOOR, "gpuimg F / ISA-L floor"),
    (GPUIMG_F, LIBDEFLATE_FLOOR, "gpuimg F / libdeflate floor"),
    (GPUIMG_C, TORCHIO, "gpuimg C / TorchIO"),
    (GPUIMG_C, MONAI, "gpuimg C / MONAI"),
    (GPUIMG_C, TORCH, "gpuimg C / torch + nibabel"),
]


class NibabelVolumes:
    """Map-style dataset for ``torch.utils.data.DataLoader``: ``nib.load(path).get_fdata(float32)``."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return nibabel.load(self.paths[index]).get_fdata(dtype=np.float32)


class Batches:
    """An epoch of ``loader`` as arrays of volumes: ``volumes(batch)`` picks them out of a batch."""

    def __init__(self, loader: Iterable[Any], volumes: Callable[[Any], Any]) -> None:
        self.loader = loader
        self.volumes = volumes

    def __iter__(self) -> Iterator[Any]:
        return (self.volumes(batch) for batch in self.loader)


class DecompressionFloor:
    """An epoch of nothing but decompression: every file read and decompressed whole, on threads.

    With ``free_at_once`` each output is dropped on its decoding thread (its memory reused by the
    allocator); otherwise it is handed to the consumer, one list of one volume per file.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        decompress: Callable[[bytes], bytes],
        *,
        free_at_once: bool = False,
    ) -> None:
        self.paths = list(paths)
        self.decompress = decompress
        self.free_at_once = free_at_once

    def _one(self, path: Path) -> list[Any]:
        output = self.decompress(path.read_bytes())
        return [len(output)] if self.free_at_once else [output]

    def __iter__(self) -> Iterator[list[bytes]]:
        with ThreadPoolExecutor(WORKERS) as pool:
            yield from pool.map(self._one, self.paths)


def _drain(batches: Iterable[Any], state: Any) -> int:
    return sum(len(batch) for batch in batches)


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _gpuimg_loader_class() -> Any:
    gpuimg = importlib.import_module("gpuimg")
    found = getattr(gpuimg, "Loader", None)
    if found is None:
        found = getattr(importlib.import_module("gpuimg.loader"), "Loader", None)
    return found


def _skip_reason() -> str | None:
    if _optional("torch.utils.data") is None:
        return "PyTorch is not installed"
    try:
        found = _gpuimg_loader_class()
    except ImportError:
        found = None
    return None if found is not None else "gpuimg.Loader is not available"


def _monai(paths: Sequence[Path]) -> Batches | None:
    data, transforms = _optional("monai.data"), _optional("monai.transforms")
    if data is None or transforms is None:
        return None
    dataset = data.Dataset(
        data=[{"image": str(path)} for path in paths],
        transform=transforms.LoadImaged(keys="image", dtype=np.float32, image_only=True),
    )
    loader = data.DataLoader(dataset, batch_size=BATCH_SIZE, num_workers=WORKERS)
    return Batches(loader, lambda batch: batch["image"])


def _torchio(paths: Sequence[Path]) -> Batches | None:
    tio = _optional("torchio")
    if tio is None:
        return None
    subjects = [tio.Subject(image=tio.ScalarImage(path)) for path in paths]
    loader = tio.SubjectsLoader(
        tio.SubjectsDataset(subjects), batch_size=BATCH_SIZE, num_workers=WORKERS
    )
    return Batches(loader, lambda batch: batch["image"][tio.DATA])


def _floors(paths: Sequence[Path]) -> dict[str, DecompressionFloor]:
    floors = {}
    igzip, deflate = _optional("isal.igzip"), _optional("deflate")
    decoders = {
        ISAL_FLOOR: igzip and igzip.decompress,
        LIBDEFLATE_FLOOR: deflate and deflate.gzip_decompress,
    }
    for floor, decompress in decoders.items():
        if decompress is not None:
            handed, freed = FLOOR_ROWS[floor]
            floors[handed] = DecompressionFloor(paths, decompress)
            floors[freed] = DecompressionFloor(paths, decompress, free_at_once=True)
    return floors


def _rates(out: dict[str, Any]) -> dict[str, float]:
    """Volumes/s per loader, and per floor the faster of its rows."""
    rates = {name: row["volumes_per_s"] for name, row in out.items()}
    for floor, rows in FLOOR_ROWS.items():
        measured = [rates[row] for row in rows if row in rates]
        if measured:
            rates[floor] = max(measured)
    return rates


def build_loaders(paths: Sequence[Path]) -> tuple[dict[str, Iterable[Any]], list[str]]:
    """Every loader that can run here, by name, and the names of those that cannot."""
    data = importlib.import_module("torch.utils.data")
    loader_class = _gpuimg_loader_class()
    optional = {MONAI: _monai(paths), TORCHIO: _torchio(paths)}
    loaders: dict[str, Iterable[Any]] = {
        TORCH: data.DataLoader(NibabelVolumes(paths), batch_size=BATCH_SIZE, num_workers=WORKERS),
        **{name: loader for name, loader in optional.items() if loader is not None},
        GPUIMG_C: loader_class(paths, BATCH_SIZE, device="cpu", num_threads=WORKERS),
        GPUIMG_F: loader_class(paths, BATCH_SIZE, device="cpu", num_threads=WORKERS, order="F"),
        **_floors(paths),
    }
    floor_rows = [row for rows in FLOOR_ROWS.values() for row in rows]
    missing = [name for name in (*optional, *floor_rows) if name not in loaders]
    return loaders, missing


def run_loader(store: VolumeStore, sizes: Sizes, *, repeats: int) -> dict[str, Any]:
    """Time one epoch of each loader ``repeats`` times; ``{'skipped': why}`` when one is missing."""
    reason = _skip_reason()
    if reason is not None:
        return {"skipped": reason}
    paths = store.loader_set(sizes)
    loaders, missing = build_loaders(paths)
    stats = time_alternating(loaders, _drain, repeats=repeats)
    out = {
        name: {"epoch": s.as_dict(), "volumes_per_s": len(paths) / s.median}
        for name, s in stats.items()
    }
    rates = _rates(out)
    ratios = {
        key: rates[top] / rates[bottom]
        for top, bottom, key in RATIOS
        if top in rates and bottom in rates
    }
    return {
        "files": len(paths),
        "shape": list(sizes.loader_shape),
        "batch_size": BATCH_SIZE,
        "workers": WORKERS,
        "loaders": out,
        "missing": missing,
        "ratios": ratios,
        "speedup": ratios["gpuimg C / torch + nibabel"],
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: run the loader benchmark alone and print its result as JSON."""
    parser = mode_parser(
        "gpuimg.Loader vs torch DataLoader + nibabel, MONAI and TorchIO, and the decompression floor.",
        full_repeats=FULL_EPOCHS,
        unit="timed epochs",
    )
    mode = mode_of(parser.parse_args(argv))
    result = run_loader(mode.store, mode.sizes, repeats=mode.repeats)
    print(f"skipped: {result['skipped']}" if "skipped" in result else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
