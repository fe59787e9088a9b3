"""One read loop for every read of a data block: a *source* of raw bytes, cut into chunks, fed to a *sink*.

The caller says where the bytes go by passing the sink, as zarr v3 passes a buffer prototype down:
bytes into a host array (:class:`RawSink`), scaled into a host array (:class:`gpuimg.hostread.ScaleSink`),
or uploaded through the pinned pool and scaled on the GPU into a device array
(:class:`gpuimg.gpuread.DeviceSink`). Sources come from
:meth:`gpuimg.io.datablock.DataBlock.source`:

* a plain file read whole: :class:`PreadSource`, positionless ``preadv`` of any chunk;
* a BGZF file read whole: :class:`BgzfSource`, independently compressed blocks, any chunk;
* anything else (a gzip stream, a slice's byte runs, a caller's file object): :class:`StreamSource`,
  read in order.

:func:`run` picks the loop from the two: random-access chunks shared by the threads when the sink may
be fed from several threads (for a source that decodes its chunks and a sink with work of its own,
helpers decode and the calling thread does the sink's work while it keeps up, see
:class:`Overlapped`); a sequential read overlapped with the sink's work (:class:`Overlapped`) when the
sink has work to overlap; else chunks in order on the calling thread.
"""

from __future__ import annotations

import functools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Protocol

import numpy as np

from gpuimg.config import claim_helpers, executor, parallel_for_each, settings
from gpuimg.io.bgzf import BgzfReader
from gpuimg.io.positioned import ReadableFile
from gpuimg.io.slicing import ReadPlan, read_plan_into

__all__ = [
    "BgzfSource",
    "Overlapped",
    "PlannedSource",
    "PreadSource",
    "RandomAccessSource",
    "RawSink",
    "Sink",
    "Source",
    "StreamSource",
    "byte_view",
    "fixed_chunks",
    "ramped_chunks",
    "run",
]


class Source(Protocol):
    """Raw bytes of one read: ``nbytes`` of them, read in any order unless said otherwise."""

    nbytes: int

    def readinto(self, start: int, out: memoryview) -> None:
        """Fill ``out`` with bytes ``[start, start + len(out))`` of the raw block."""


class RandomAccessSource(Source, Protocol):
    """A source whose chunks may be read at the same time, from several threads."""

    def chunk_bounds(self, chunk_bytes: int, itemsize: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of chunks of about ``chunk_bytes``, cut at multiples of ``itemsize``."""


class Sink(Protocol):
    """Where the bytes go; the sink lends the buffer each chunk is read into.

    Attributes
    ----------
    itemsize : int
        Chunks are cut at multiples of it.
    parallel : bool
        ``put`` may run on several threads at once.
    overlap : bool
        ``put`` does work worth overlapping with a sequential read (scaling).
    """

    itemsize: int
    parallel: bool
    overlap: bool

    def chunk_bounds(self, nbytes: int) -> list[tuple[int, int]] | None:
        """The sink's own cuts of a sequential read, or None for the pipeline's."""

    def staging(self, start: int, nbytes: int) -> AbstractContextManager[np.ndarray]:
        """A writable uint8 array of ``nbytes`` for bytes ``[start, start + nbytes)``, lent for a block."""

    def put(self, start: int, raw: np.ndarray) -> None:
        """Consume the chunk read into ``raw`` (the array :meth:`staging` lent)."""


def run(source: Source, sink: Sink) -> None:
    """Read every byte of ``source`` into ``sink``, chunk by chunk; errors reach the caller."""
    nbytes = source.nbytes
    if nbytes == 0:
        return
    # A random-access source has chunk_bounds: a plain attribute look-up, where a runtime Protocol
    # check made about 90 more Python calls per read (a fifth of a small slice's).
    chunk_bounds = getattr(source, "chunk_bounds", None)
    if sink.parallel and chunk_bounds is not None:
        bounds = chunk_bounds(settings.pipeline_chunk_bytes, sink.itemsize)
        if sink.overlap and getattr(source, "decodes", False):
            _overlapped(source, sink, bounds, independent=True)
        else:
            parallel_for_each(lambda number: _move(source, sink, *bounds[number]), len(bounds))
        return
    if sink.overlap:
        _overlapped(
            source, sink, ramped_chunks(nbytes, settings.pipeline_chunk_bytes, sink.itemsize)
        )
        return
    for start, stop in sink.chunk_bounds(nbytes) or [(0, nbytes)]:
        _move(source, sink, start, stop)


def _move(source: Source, sink: Sink, start: int, stop: int) -> None:
    with sink.staging(start, stop - start) as target:
        source.readinto(start, memoryview(target))
        sink.put(start, target)


def _overlapped(
    source: Source, sink: Sink, bounds: list[tuple[int, int]], *, independent: bool = False
) -> None:
    """Chunks read while chunks already read go to the sink: a sequential read (one thread reads at a
    time, one helper), or ``independent`` chunks (read on every thread, helpers as the budget grants;
    see :class:`Overlapped`)."""
    wanted = settings.threads - 1 if independent else 1
    with claim_helpers(wanted) as helpers, ExitStack() as lent:

        def read(index: int) -> tuple[np.ndarray, ExitStack]:
            start, stop = bounds[index]
            # Lent until its put; one an error leaves unput goes back when ``lent`` closes.
            chunk = ExitStack()
            lent.callback(chunk.close)
            target = chunk.enter_context(sink.staging(start, stop - start))
            source.readinto(start, memoryview(target))
            return target, chunk

        def put(index: int, staged: tuple[np.ndarray, ExitStack]) -> None:
            target, chunk = staged
            with chunk:
                sink.put(bounds[index][0], target)

        if independent:  # one chunk being read per thread, and pipeline_slots read ones waiting
            Overlapped(
                read, put, len(bounds), helpers + 1 + settings.pipeline_slots, independent=True
            ).run(helpers)
            return
        slots = settings.pipeline_slots if helpers else 1
        Overlapped(read, put, len(bounds), slots).run(helpers)


def ramped_chunks(nbytes: int, chunk_bytes: int, itemsize: int) -> list[tuple[int, int]]:
    """``(start, stop)`` byte ranges of a sequential read: small at both ends, whole chunks between.

    The first chunks grow from 1/8 chunk, so the sink starts soon after the read does; the last
    whole chunk is cut in halves, so little is left for the sink after the read ends; whole chunks
    keep the per-chunk overhead small in between. Every cut is a multiple of ``itemsize``.
    """
    smallest = max(itemsize, chunk_bytes // 8 // itemsize * itemsize)
    largest = max(itemsize, chunk_bytes // itemsize * itemsize)
    bounds: list[tuple[int, int]] = []
    start, size = 0, smallest
    while start < nbytes:
        bounds.append((start, min(start + size, nbytes)))
        start, size = bounds[-1][1], min(2 * size, largest)
    if bounds:
        start, stop = bounds.pop()
        while stop - start > 2 * smallest:
            half = (stop - start) // 2 // itemsize * itemsize
            bounds.append((start, start + half))
            start += half
        bounds.append((start, stop))
    return bounds


def fixed_chunks(nbytes: int, chunk_bytes: int, itemsize: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of chunks of ``chunk_bytes`` (rounded down to whole items, at least one)."""
    chunk = max(itemsize, chunk_bytes // itemsize * itemsize)
    return [(start, min(start + chunk, nbytes)) for start in range(0, nbytes, chunk)]


class Overlapped:
    """Chunks read by one thread at a time (a stream), or by all (independent chunks), and put.

    Sequential (the default): every thread (the caller and its helpers) loops: read the next chunk
    if no one is reading and a slot is free (the stream is the bottleneck, so reading comes first),
    else put a chunk that is ready, else wait. While decompression is slow, one thread reads and the
    other scales; where it is fast (runs of zeros), chunks pile up in the slots and both threads put
    them, so neither core idles and no backlog is left for the end.

    ``independent``: the chunks can be read at once (BGZF blocks), and reading them (decoding) is
    most of the work. The calling thread puts every ready chunk first and reads only when none is
    ready; helpers read, and put only when no slot is free and more than one chunk waits (the
    caller falls behind), and stop when nothing is left to read. With a few threads, the caller
    alone writes the result: on a 2-vCPU VM a helper's first write to a
    fresh 2 MiB page of the result took 6-7 ms, against a fraction of a millisecond for the caller
    (measured, ``docs/performance.md``, BGZF section); with many, helpers share the puts.

    Parameters
    ----------
    read : callable
        ``read(index)`` reads chunk ``index`` and returns what ``put`` gets.
    put : callable
        ``put(index, raw)`` hands chunk ``index`` on.
    count : int
        Number of chunks.
    slots : int
        How many chunks can be being read or read and not yet put.
    independent : bool, keyword only
        The chunks are independent (see above).
    """

    def __init__(
        self,
        read: Callable[[int], Any],
        put: Callable[[int, Any], None],
        count: int,
        slots: int,
        *,
        independent: bool = False,
    ) -> None:
        self._read, self._put, self._count = read, put, count
        self._free_slots = slots
        self._ready: list[tuple[int, Any]] = []
        self._next_read = 0
        self._done = 0
        self._readers = 0
        self._independent = independent
        self._error: BaseException | None = None
        self._changed = threading.Condition()

    def run(self, helpers: int) -> None:
        """Work on this thread and ``helpers`` pool threads until every chunk is put (or one fails)."""
        jobs = [executor().submit(self._work, False) for _ in range(helpers)]
        try:
            self._work(True)
        finally:
            for job in jobs:
                job.result()
        if self._error is not None:
            raise self._error

    def _work(self, caller: bool) -> None:
        while (task := self._next_task(caller)) is not None:
            try:
                task()
            except BaseException as error:  # raised again by run() on the calling thread
                with self._changed:
                    self._error = self._error or error
                    self._changed.notify_all()
                return

    def _read_next(self, index: int) -> None:
        raw = self._read(index)
        with self._changed:
            self._ready.append((index, raw))
            self._readers -= 1
            self._changed.notify_all()

    def _put_ready(self, index: int, raw: Any) -> None:
        self._put(index, raw)
        with self._changed:
            self._free_slots += 1
            self._done += 1
            self._changed.notify_all()

    def _next_task(self, caller: bool) -> Callable[[], None] | None:
        puts_first = caller and self._independent
        with self._changed:
            while True:
                if self._error is not None or self._done == self._count:
                    return None
                if puts_first and self._ready:
                    return functools.partial(self._put_ready, *self._ready.pop(0))
                may_read = self._independent or not self._readers
                if may_read and self._free_slots and self._next_read < self._count:
                    self._readers += 1
                    self._free_slots -= 1
                    self._next_read += 1
                    return functools.partial(self._read_next, self._next_read - 1)
                # A helper of independent chunks puts only what the caller is not about to take.
                backlog = 1 if self._independent and not caller else 0
                if len(self._ready) > backlog:
                    return functools.partial(self._put_ready, *self._ready.pop(0))
                if backlog and self._next_read == self._count:
                    return None  # nothing left to read: the caller puts the rest
                self._changed.wait()


class RawSink:
    """The raw bytes themselves, read straight into ``target`` (a flat uint8 array): nothing to scale."""

    parallel = True
    overlap = False

    def __init__(self, target: np.ndarray, itemsize: int) -> None:
        self._target = target
        self.itemsize = itemsize

    def chunk_bounds(self, nbytes: int) -> None:
        """One read of everything (no staging to bound)."""

    @contextmanager
    def staging(self, start: int, nbytes: int) -> Iterator[np.ndarray]:
        yield self._target[start : start + nbytes]

    def put(self, start: int, raw: np.ndarray) -> None:
        """Nothing to do: the bytes were read in place."""


class PlannedSource(ABC):
    """A source of the raw block a :class:`~gpuimg.io.slicing.ReadPlan` reads, of on-disk ``dtype``.

    Besides :class:`Source`, it tells what the bytes are (``dtype``, ``raw_shape``) and how they
    become the result (``post_slicer``, ``out_shape``): the source protocol of
    :func:`gpuimg.gpuread.stream_to_device`.
    """

    def __init__(self, plan: ReadPlan, dtype: np.dtype) -> None:
        self.plan, self.dtype, self.nbytes = plan, dtype, plan.nbytes

    @property
    def raw_shape(self) -> tuple[int, ...]:
        return self.plan.raw_shape

    @property
    def post_slicer(self) -> tuple[Any, ...]:
        return self.plan.post_slicer

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.plan.out_shape

    @abstractmethod
    def readinto(self, start: int, out: memoryview) -> None:
        """Fill ``out`` with bytes ``[start, start + len(out))`` of the raw block."""


class PreadSource(PlannedSource):
    """A plain file's whole data block, read with ``preadv`` (no shared position: from any thread)."""

    def __init__(
        self,
        fd: int,
        offset: int,
        plan: ReadPlan,
        dtype: np.dtype,
        truncated: Callable[[int], Exception],
    ) -> None:
        super().__init__(plan, dtype)
        self._fd, self._offset, self._truncated = fd, offset, truncated

    def chunk_bounds(self, chunk_bytes: int, itemsize: int) -> list[tuple[int, int]]:
        return fixed_chunks(self.nbytes, chunk_bytes, itemsize)

    def readinto(self, start: int, out: memoryview) -> None:
        target = memoryview(out).cast("B")
        filled = 0
        while filled < target.nbytes:
            count = os.preadv(self._fd, [target[filled:]], self._offset + start + filled)
            if count == 0:
                raise self._truncated(start + filled)
            filled += count


class BgzfSource(PlannedSource):
    """A BGZF file's whole data block: each chunk decodes its own blocks (thread-safe, GIL released).

    ``decodes``: reading a chunk is most of a read's work (see :func:`run`).
    """

    decodes = True

    def __init__(self, reader: BgzfReader, offset: int, plan: ReadPlan, dtype: np.dtype) -> None:
        super().__init__(plan, dtype)
        self._reader, self._offset = reader, offset

    def chunk_bounds(self, chunk_bytes: int, itemsize: int) -> list[tuple[int, int]]:
        """Cuts at block boundaries (see :meth:`gpuimg.io.bgzf.BgzfReader.chunk_bounds`)."""
        return self._reader.chunk_bounds(self._offset, self.nbytes, itemsize)

    def readinto(self, start: int, out: memoryview) -> None:
        self._reader.read_at(self._offset + start, out)


class StreamSource(PlannedSource):
    """The byte runs of a read plan, read in order through a file object (seeking forward only).

    ``trailer_at``: for a gzip file, where its data block ends; a read reaching it reads on, so the
    stream's CRC32 and length are checked.
    """

    def __init__(
        self,
        fileobj: ReadableFile,
        plan: ReadPlan,
        dtype: np.dtype,
        *,
        name: str,
        trailer_at: int | None,
    ) -> None:
        super().__init__(plan, dtype)
        self._fileobj, self._name, self._trailer_at = fileobj, name, trailer_at

    def readinto(self, start: int, out: memoryview) -> None:
        """:func:`~gpuimg.io.slicing.read_plan_into`; reaching ``trailer_at`` checks the gzip trailer."""
        read_plan_into(self._fileobj, self.plan, out, start=start, name=self._name)
        if self.plan.runs and start + memoryview(out).nbytes == self.plan.nbytes:
            offset, length = self.plan.runs[-1]
            if offset + length == self._trailer_at:
                self._fileobj.read(1)  # reads on to the trailer, whose CRC32 and length are checked


def byte_view(array: np.ndarray) -> np.ndarray:
    """A writable flat uint8 view of a contiguous array (Fortran or C)."""
    return array.reshape(-1, order="F" if array.flags.f_contiguous else "C").view(np.uint8)
