"""A batched, prefetching loader of image volumes for training loops, on the host or on a GPU.

:class:`Loader` reads many files into batches stacked on a new first axis: numpy batches on the
host, CuPy batches on a GPU. Worker threads read, decompress and scale each volume straight into its
slot of a reused batch buffer (decompression and numpy release the GIL, so threads scale with cores
without the cost of worker processes: no pickling, no shared-memory copies, no restarts per epoch).
How one volume gets into its slot (a whole ``.nii.gz`` decoded in one libdeflate call, then one
scale pass) is :mod:`gpuimg.loader_fill`.

Layout
------
NIfTI and Analyze data are Fortran-ordered on disk: the first axis varies fastest. Batches have
shape ``(B, X, Y, Z[, T])``, the axes of ``img.shape`` behind the batch axis, and ``order`` says how
they lie in memory:

``order='C'`` (the default)
    Batches are C-contiguous, what PyTorch's convolutions and most frameworks expect. On the host
    each worker scales, casts and transposes its volume from disk order in one pass, in tiles that
    fit in its core's cache (:func:`gpuimg.scaling.scale_transposed_into`): for a 160x192x160 int16
    volume about 6 ms on one core with numba's kernel, against 1.5 ms for scaling in disk order and
    25 ms for scaling followed by a plain strided copy. On a GPU it costs next to nothing: the device
    copy of each volume into its slot does it.
``order='F'`` (host only)
    Every volume ``batch[i]`` keeps its on-disk (Fortran) order, so reading costs no transposition;
    the batch as a whole is neither C- nor F-contiguous. ``torch.from_dlpack`` hands it on without a
    copy, as a non-contiguous tensor; ``tensor.contiguous()`` pays the transposition later instead.

Buffers and lifetime
--------------------
At most ``prefetch`` batches are read ahead while the caller holds one, so memory is bounded by
``prefetch + 1`` batches. With ``reuse=True`` a batch lives in a recycled buffer: it stays valid
until the next batch is asked for (in this epoch or the next); copy it to keep it. Host batch
buffers and the worker threads serve one epoch after another, so later epochs neither start
threads nor fault in fresh memory, and a ``.nii.gz`` file whose header is unchanged since the last
epoch is not parsed again (:class:`gpuimg.loader_fill.KnownHeaders`). Breaking out of the loop, an
exception, :meth:`Loader.close`, garbage collection of the iterator or of the loader stops and joins
every worker thread (a later epoch starts new ones); pinned host buffers used for GPU copies all go
back to the pool.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from gpuimg import device as device_seam
from gpuimg.config import reset_after_fork, settings
from gpuimg.errors import GpuimgError
from gpuimg.loader_fill import BatchSpec, DeviceFiller, HostFiller, KnownHeaders
from gpuimg.loadsave import load

__all__ = ["Loader", "crop_or_pad", "sample_order"]

PathLike = str | os.PathLike


def sample_order(
    n: int,
    *,
    epoch: int = 0,
    shuffle: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> np.ndarray:
    """The indices one rank reads in one epoch, as ``torch.utils.data.DistributedSampler`` picks them.

    Parameters
    ----------
    n : int
        Number of samples.
    epoch : int
        Epoch number; with ``shuffle`` each epoch has its own permutation.
    shuffle : bool
        Permute with a generator seeded from ``(seed, epoch)``; the same on every rank.
    seed : int
        Non-negative seed.
    rank, world_size : int
        This process's rank among ``world_size``. The order is padded by wrapping round to a multiple
        of ``world_size`` and rank ``r`` takes every ``world_size``-th index from ``r``, so every rank
        gets ``ceil(n / world_size)`` indices.

    Returns
    -------
    numpy.ndarray
        int64 indices into the sample list.

    Examples
    --------
    >>> sample_order(5, rank=1, world_size=2)
    array([1, 3, 0])
    """
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n)
    else:
        order = np.arange(n)
    total = -(-n // world_size) * world_size
    # np.resize repeats cyclically: DistributedSampler's padding by wrapping round.
    return np.resize(order, total)[rank:total:world_size].astype(np.int64)


def crop_or_pad(
    shape: Sequence[int], target: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slicers that centre ``shape`` in ``target``: crop axes that are too long, pad the short ones.

    Parameters
    ----------
    shape : sequence of int
        Shape of the source volume.
    target : sequence of int
        Shape wanted, with as many axes.

    Returns
    -------
    source, destination : tuple of slice
        ``out[destination] = volume[source]`` places the centred part; the rest of ``out`` is padding.
        Where the difference is odd, the extra voxel is cropped from (or padded at) the end.

    Examples
    --------
    >>> crop_or_pad((5, 2), (3, 4))
    ((slice(1, 4, None), slice(0, 2, None)), (slice(0, 3, None), slice(1, 3, None)))
    """
    source, destination = [], []
    for have, want in zip(shape, target, strict=True):
        if have >= want:
            start = (have - want) // 2
            source.append(slice(start, start + want))
            destination.append(slice(0, want))
        else:
            start = (want - have) // 2
            source.append(slice(0, have))
            destination.append(slice(start, start + have))
    return tuple(source), tuple(destination)


class Loader:
    """Iterate over image files in batches, read ahead by worker threads.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Image files (anything :func:`gpuimg.load` reads).
    batch_size : int
        Volumes per batch.
    device : None, 'cpu', 'cuda', 'cuda:N', int or cupy.cuda.Device, keyword only
        Where batches live: numpy arrays on the host, CuPy arrays on a GPU.
    dtype : numpy dtype, keyword only
        dtype of the batches; values are scaled exactly as ``get_fdata(dtype=dtype)`` scales them.
    shuffle : bool, keyword only
        Reshuffle every epoch, deterministically from ``seed`` and the epoch number.
    seed : int, optional, keyword only
        Shuffling seed; None draws one at random (not allowed with ``world_size > 1``, where every
        rank must shuffle alike).
    drop_last : bool, keyword only
        Drop the last batch when it is not full.
    num_threads : int, optional, keyword only
        Worker threads (default ``gpuimg.config.settings.threads``).
    prefetch : int, keyword only
        Batches read ahead, at least 1.
    shape : sequence of int, optional, keyword only
        Centre-crop or zero-pad every volume to this shape (see :func:`crop_or_pad`). Without it
        every file must have the shape of the first one.
    transform : callable, optional, keyword only
        Called in the worker on each volume, in its slot of the batch (a numpy or CuPy array of the
        batch's dtype, on the batch's device, on the worker's stream); returns an array of the same
        shape, possibly the very one it was given after changing it in place. It must not keep a
        reference to its argument, which is reused.
    rank, world_size : int, keyword only
        Shard the files as ``torch.utils.data.DistributedSampler`` does (see :func:`sample_order`).
    order : {'C', 'F'}, keyword only
        Memory layout of the batches (see the module docstring); 'F' only on the host.
    reuse : bool, keyword only
        Recycle ``prefetch + 1`` batch buffers (a batch is valid until the next one is asked for);
        False gives every batch fresh memory.

    Examples
    --------
    >>> import gpuimg
    >>> loader = Loader([gpuimg.data.sample_path()] * 3, batch_size=2)
    >>> [batch.shape for batch in loader]
    [(2, 40, 48, 36, 6), (1, 40, 48, 36, 6)]
    """

    def __init__(
        self,
        paths: Sequence[PathLike],
        batch_size: int,
        *,
        device: Any = "cpu",
        dtype: Any = np.float32,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        num_threads: int | None = None,
        prefetch: int = 2,
        shape: Sequence[int] | None = None,
        transform: Callable[[Any], Any] | None = None,
        rank: int = 0,
        world_size: int = 1,
        order: str = "C",
        reuse: bool = True,
    ) -> None:
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError(
                f"paths is one path ({os.fspath(paths)!r}), expected a sequence of paths: "
                "Loader([path], ...)"
            )
        self._paths = [os.fspath(path) for path in paths]
        if not self._paths:
            raise ValueError("paths is empty, expected at least one image file")
        _check_positive(batch_size=batch_size, prefetch=prefetch, world_size=world_size)
        if num_threads is not None:
            _check_positive(num_threads=num_threads)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank is {rank}, expected 0 <= rank < world_size ({world_size})")
        if order not in ("C", "F"):
            raise ValueError(f"order is {order!r}, expected 'C' or 'F'")
        if seed is None:
            if shuffle and world_size > 1:
                raise ValueError(
                    "seed is None with shuffle=True and world_size > 1; pass the same seed= on "
                    "every rank so that all ranks shuffle alike"
                )
            entropy = np.random.SeedSequence().entropy  # fresh OS entropy: an int
            assert isinstance(entropy, int)
            seed = entropy
        elif seed < 0:
            raise ValueError(f"seed is {seed}, expected a non-negative int")
        self.batch_size = int(batch_size)
        self.dtype = np.dtype(dtype)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.num_threads = settings.threads if num_threads is None else int(num_threads)
        self.prefetch = int(prefetch)
        self.transform = transform
        self.rank, self.world_size = int(rank), int(world_size)
        self.order = order
        self.reuse = bool(reuse)
        self._device_id = device_seam.resolve_device(device)
        if self._device_id is not None and order == "F":
            raise ValueError(
                "order='F' is for host batches; on a GPU the C layout costs nothing (the device "
                "copy into each slot transposes), so use order='C'"
            )
        if shape is None:
            self.shape = tuple(load(self._paths[0]).shape)
            self._fixed_shape = False
        else:
            self.shape = tuple(int(n) for n in shape)
            if any(n < 1 for n in self.shape):
                raise ValueError(f"shape is {self.shape}, expected positive lengths")
            self._fixed_shape = True
        self._epoch = 0
        self._active: weakref.WeakSet = weakref.WeakSet()
        self._workers = _Workers()
        # Host batch buffers kept from one epoch to the next (only with reuse=True).
        self._spare_buffers: list[np.ndarray] = []
        self._known = KnownHeaders()
        weakref.finalize(self, self._workers.stop)

    # -- sizes and epochs ---------------------------------------------------------------------------
    @property
    def paths(self) -> list[str]:
        """The image files, in the order given."""
        return list(self._paths)

    @property
    def device(self) -> int | None:
        """CUDA device id of the batches, or None for the host."""
        return self._device_id

    @property
    def epoch(self) -> int:
        """The epoch the next iteration reads (advanced by each iteration, or set by :meth:`set_epoch`)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Read epoch ``epoch`` next (its shuffle), like ``DistributedSampler.set_epoch``."""
        if epoch < 0:
            raise ValueError(f"epoch is {epoch}, expected a non-negative int")
        self._epoch = int(epoch)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """The file indices this rank reads in ``epoch`` (default: the next one), in order."""
        return sample_order(
            len(self._paths),
            epoch=self._epoch if epoch is None else epoch,
            shuffle=self.shuffle,
            seed=self.seed,
            rank=self.rank,
            world_size=self.world_size,
        )

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """The file indices of each batch this rank reads in ``epoch`` (default: the next one)."""
        order = self.indices(epoch)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        return [order[start : start + self.batch_size] for start in range(0, stop, self.batch_size)]

    def __len__(self) -> int:
        per_rank = -(-len(self._paths) // self.world_size)
        if self.drop_last:
            return per_rank // self.batch_size
        return -(-per_rank // self.batch_size)

    # -- iteration ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        batches = self.batches()
        self._epoch += 1
        spec = BatchSpec(
            self.batch_size, self.shape, self.dtype, self.order, self.transform, self._device_id
        )
        filler = (
            HostFiller(spec, self._spare_buffers, self._known)
            if spec.device is None
            else DeviceFiller(spec)
        )
        epoch = _run_epoch(self, filler, batches)
        self._active.add(epoch)
        return epoch

    def close(self) -> None:
        """Stop every iteration in progress: cancel queued reads and join the worker threads.

        Call it from the thread that iterates (or once that thread is done with the iterator).
        """
        for epoch in list(self._active):
            epoch.close()
        self._workers.stop()

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "cpu" if self._device_id is None else f"cuda:{self._device_id}"
        return (
            f"<Loader {len(self._paths)} files, {len(self)} batches of {self.batch_size} "
            f"{self.shape} {self.dtype} order={self.order!r} on {where}>"
        )

    # -- per volume (worker threads) ----------------------------------------------------------------
    def _slicers(self, path: str, shape: tuple[int, ...]) -> tuple[tuple, tuple] | None:
        """(source, destination) slicers for a volume of ``shape``; None when it fits exactly."""
        if shape == self.shape:
            return None
        if not self._fixed_shape:
            raise ValueError(
                f"{path}: image shape is {shape}, expected {self.shape} (the shape of "
                f"{self._paths[0]}); pass shape= to centre-crop or zero-pad every volume to one shape"
            )
        if len(shape) != len(self.shape):
            raise ValueError(
                f"{path}: image has {len(shape)} axes {shape}, expected {len(self.shape)} "
                f"to crop or pad to shape={self.shape}"
            )
        return crop_or_pad(shape, self.shape)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} is {value!r}, expected a positive int")


class _Batch:
    """One batch in flight: its buffer, how many volumes it holds, and their futures."""

    def __init__(self, buffer: Any, count: int, futures: list[Future]) -> None:
        self.buffer = buffer
        self.count = count
        self.futures = futures


class _Workers:
    """A loader's worker threads, kept from one epoch to the next until :meth:`stop`."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        reset_after_fork(self)

    def resize(self, count: int) -> None:
        """Serve the next epoch with ``count`` threads (``Loader.num_threads`` may have changed)."""
        if count != self._count:
            self.stop()
            self._count = count

    def _after_fork(self) -> None:
        """A forked child has none of the parent's threads: start its own when it needs them."""
        self._lock = threading.Lock()
        self._executor = None

    def submit(self, fn: Callable[..., None], *args: Any) -> Future:
        """Run ``fn(*args)`` on a worker thread, starting the threads if they are stopped."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._count, thread_name_prefix="gpuimg-loader")
            return self._executor.submit(fn, *args)

    def stop(self) -> None:
        """Join every worker thread once the reads already queued are done."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def _run_epoch(loader: Loader, filler: HostFiller | DeviceFiller, batches: list) -> Iterator:
    """Yield one epoch's batches; workers read ``prefetch`` batches ahead of the consumer."""
    stopping = threading.Event()
    free: list[Any] = []
    in_flight: list[_Batch] = []
    pending = iter(batches)
    finished = False
    loader._workers.resize(loader.num_threads)

    def submit() -> None:
        indices = next(pending, None)
        if indices is None:
            return
        buffer = free.pop() if free else filler.allocate()
        futures = [
            loader._workers.submit(
                _fill_slot, loader, filler, stopping, buffer, slot, loader._paths[index]
            )
            for slot, index in enumerate(indices)
        ]
        in_flight.append(_Batch(buffer, len(indices), futures))

    try:
        for _ in range(loader.prefetch):
            submit()
        while in_flight:
            batch = in_flight.pop(0)
            submit()
            for future in batch.futures:
                future.result()
            yield batch.buffer[: batch.count]
            if loader.reuse:
                filler.release(batch.buffer)
                free.append(batch.buffer)
        finished = True
    finally:
        stopping.set()
        if not finished:
            for batch in in_flight:
                for future in batch.futures:
                    future.cancel()
            loader._workers.stop()
        filler.keep(free)


def _fill_slot(
    loader: Loader,
    filler: HostFiller | DeviceFiller,
    stopping: threading.Event,
    buffer: Any,
    slot: int,
    path: str,
) -> None:
    """Worker: read one file into ``buffer[slot]``; errors name the file."""
    if stopping.is_set():
        return
    try:
        filler.fill(path, buffer, slot, loader._slicers)
    except Exception as exc:
        if path in str(exc):
            raise
        raise GpuimgError(
            f"{path}: loading failed in a loader worker: {type(exc).__name__}: {exc}"
        ) from exc
