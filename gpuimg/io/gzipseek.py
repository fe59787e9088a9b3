"""Seekable gzip: :class:`GzipReader` and the checkpoint index it shares across re-opens.

Forward seeks decompress and discard, leaving checkpoints (decompressor snapshots) in a
:class:`GzipIndex`; backward seeks restart from the nearest checkpoint, so random access costs at most
one checkpoint spacing of decompression once the file has been read through. The memory of every live
index is held under ``gpuimg.config.settings.gzip_index_bytes`` (least recently used emptied first).
"""

from __future__ import annotations

import bisect
import io
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

from gpuimg.config import reset_after_fork, settings
from gpuimg.errors import CompressedStreamError
from gpuimg.io.gzipstream import _STREAM_ERRORS, _stream_engine
from gpuimg.io.positioned import PositionedReader, file_identity

__all__ = ["READ_AHEAD_BYTES", "GzipIndex", "GzipReader"]

#: volume of a 4D image, say) is served from memory.
READ_AHEAD_BYTES = 1 << 20

#: Memory of one checkpoint's decompressor snapshot (measured 40-50 KiB), for the memory cap.
_CHECKPOINT_BYTES = 48 << 10
_INPUT_CHUNK = 64 * 1024  # compressed bytes fed per call: small keeps unconsumed_tail cheap
_OUTPUT_CHUNK = 256 * 1024  # largest intermediate bytes object a streaming read makes


@dataclass(frozen=True)
class _Checkpoint:
    out_pos: int  # uncompressed position
    comp_pos: int  # compressed offset of the next byte to feed
    decompressor: Any  # snapshot to .copy() from; None between members


_START = _Checkpoint(0, 0, None)


class GzipIndex:
    """Checkpoints into one gzip file, shared by the readers that open it.

    An index outlives the readers that fill it, so a file re-opened for every
    read keeps its random access cheap. It is tied to the file it indexes
    (size, modification time, inode) and empties itself when given another.
    Pickling gives an empty index. Each checkpoint holds a decompressor
    snapshot of roughly 40-50 KiB.

    Parameters
    ----------
    spacing : int
        Uncompressed bytes between checkpoints.
    """

    def __init__(self, spacing: int | None = None, window: int | None = None) -> None:
        spacing = settings.checkpoint_spacing if spacing is None else spacing
        if spacing <= 0:
            raise ValueError(f"checkpoint spacing is {spacing}, expected a positive byte count")
        self.spacing = int(spacing)
        self.window = int(settings.window_bytes if window is None else window)
        self._recent = (
            b""  # the last decompressed bytes (with read-ahead), kept for the next reader
        )
        self._recent_start = 0
        self._lock = threading.Lock()
        self._points: list[_Checkpoint] = []
        self._positions: list[int] = []
        self._identity: tuple[int, ...] | None = None
        self._resume: _Checkpoint | None = None
        self.uncompressed_size: int | None = None
        """Total decompressed size, once a reader has reached the end."""
        reset_after_fork(self)

    def __len__(self) -> int:
        return len(self._points)

    def _after_fork(self) -> None:
        """Rebuild the lock in a forked child (see :func:`gpuimg.config.reset_after_fork`)."""
        if (
            self._lock.locked()
        ):  # held by a thread that is gone: the checkpoints may be half-updated
            self._identity = ()  # matches no file, so the next bind empties the index
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[type[GzipIndex], tuple[int, int]]:
        return (type(self), (self.spacing, self.window))

    def remember_recent(self, start: int, data: bytes) -> None:
        """Keep ``data`` (decompressed bytes from ``start``), at most the last ``window`` bytes of it."""
        if len(data) > self.window:
            start, data = start + len(data) - self.window, data[-self.window :]
        with self._lock:
            self._recent_start, self._recent = start, data
        _index_memory.report(self, self.nbytes)

    @property
    def nbytes(self) -> int:
        """Memory the index holds: its checkpoints (estimated) and its kept bytes."""
        return len(self._points) * _CHECKPOINT_BYTES + len(self._recent)

    def empty(self) -> None:
        """Drop the checkpoints and kept bytes (to free memory); reads rebuild them as they go."""
        with self._lock:
            self._empty_locked()

    def _empty_locked(self) -> None:
        self._points.clear()
        self._positions.clear()
        self._resume = None
        self._recent = b""

    def copy_recent(self, position: int, dest: memoryview) -> int:
        """Copy what the kept bytes hold from ``position`` into ``dest``; the count (0 if none)."""
        with self._lock:
            offset = position - self._recent_start
            if not 0 <= offset < len(self._recent):
                return 0
            count = min(dest.nbytes, len(self._recent) - offset)
            dest[:count] = self._recent[offset : offset + count]
            return count

    def bind(self, identity: tuple[int, ...] | None) -> None:
        """Tie the index to a file identity, emptying it if it indexed another."""
        with self._lock:
            if identity != self._identity:
                self._empty_locked()
                self.uncompressed_size = None
                self._identity = identity

    @property
    def furthest(self) -> int:
        """Uncompressed position of the last checkpoint (0 when empty)."""
        return self._positions[-1] if self._positions else 0

    def add(self, checkpoint: _Checkpoint) -> None:
        """Append a checkpoint beyond the furthest one (others are ignored)."""
        with self._lock:
            if checkpoint.out_pos <= self.furthest:
                return
            self._points.append(checkpoint)
            self._positions.append(checkpoint.out_pos)
        _index_memory.report(self, self.nbytes)

    def remember_resume_point(self, checkpoint: _Checkpoint) -> None:
        """Keep where the last reader stopped, so a next reader of what follows starts right there.

        Reading volume t and then volume t+1 through readers opened one after the other (a proxy with
        ``keep_file_open=False``) then costs no decompression beyond the bytes read.
        """
        with self._lock:
            self._resume = checkpoint

    def nearest(self, position: int) -> _Checkpoint:
        """The checkpoint closest before (or at) ``position``; the stream start if none."""
        with self._lock:
            index = bisect.bisect_right(self._positions, position) - 1
            best = self._points[index] if index >= 0 else _START
            resume = self._resume
            if resume is not None and best.out_pos < resume.out_pos <= position:
                return resume
            return best


class _IndexMemory:
    """The memory of every live :class:`GzipIndex`, held under ``settings.gzip_index_bytes`` (LRU).

    An index reports its size after each change, without holding its own lock; the least recently
    changed other indexes are emptied while the total is over the cap. Only this order of locks
    (this one, then an index's) is ever taken, so two indexes reporting at once cannot deadlock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sizes: OrderedDict[int, tuple[weakref.ref[GzipIndex], int]] = OrderedDict()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    def total(self) -> int:
        """Bytes held by the live indexes."""
        with self._lock:
            return sum(size for ref, size in self._sizes.values() if ref() is not None)

    def report(self, index: GzipIndex, size: int) -> None:
        """``index`` now holds ``size`` bytes and was just used; empty others while over the cap."""
        with self._lock:
            self._sizes[id(index)] = (weakref.ref(index), size)
            self._sizes.move_to_end(id(index))
            for key, (ref, _) in list(self._sizes.items()):
                if ref() is None:
                    del self._sizes[key]
            total = sum(size for _, size in self._sizes.values())
            for key, (ref, held) in list(self._sizes.items()):
                if total <= settings.gzip_index_bytes or key == id(index):
                    break
                other = ref()
                if other is not None:
                    other.empty()
                del self._sizes[key]
                total -= held


_index_memory = _IndexMemory()


def _file_identity(raw: Any) -> tuple[int, ...] | None:
    try:
        return file_identity(raw.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


class GzipReader(PositionedReader):
    """Seekable reader of a (possibly multi-member) gzip file.

    Parameters
    ----------
    path_or_fileobj : str, os.PathLike or binary file object
        The compressed file. A file object is read from its start and is
        closed by :meth:`close` only with ``closefd``.
    name : str, optional
        Name for error messages (default: the path, or the object's ``name``).
    index : GzipIndex, optional
        Checkpoint index to use and extend (default: a new one).
    checkpoint_spacing : int or None, optional
        Spacing of a new index (default: ``gpuimg.config.settings.checkpoint_spacing``).
    closefd : bool, optional
        A file object given becomes the reader's, closed by :meth:`close`.

    Notes
    -----
    ``seek`` is lazy: it records the target, and the next read moves there,
    forwards by decompressing (into discarded chunks), backwards from the
    nearest checkpoint. Reading the first few hundred bytes decompresses about
    that much. Not thread-safe, like any file object.
    """

    kind = "gzip reader"

    def __init__(
        self,
        path_or_fileobj: str | os.PathLike[str] | BinaryIO,
        *,
        name: str | None = None,
        index: GzipIndex | None = None,
        checkpoint_spacing: int | None = None,
        closefd: bool = False,
    ) -> None:
        super().__init__()
        self._owns_raw = False  # set first: close() runs even if opening fails
        if isinstance(path_or_fileobj, (str, os.PathLike)):
            self._raw: BinaryIO = open(path_or_fileobj, "rb")  # noqa: SIM115 - closed by close()
            self._owns_raw = True
            default_name = os.fspath(path_or_fileobj)
        else:
            self._raw = path_or_fileobj
            self._owns_raw = closefd
            default_name = getattr(path_or_fileobj, "name", None) or repr(path_or_fileobj)
            self._raw.seek(0)
        self.name = name or default_name
        self._index = GzipIndex(checkpoint_spacing) if index is None else index
        self._index.bind(_file_identity(self._raw))
        self._engine = _stream_engine()
        self._decompressor: Any = None
        self._pending = b""  # compressed bytes read but not yet consumed
        self._comp_pos = 0  # compressed offset just after the bytes read so far
        self._out_pos = 0  # uncompressed position the decompressor has reached
        self._position = 0  # logical position (tell)
        self._at_end = False

    @property
    def index(self) -> GzipIndex:
        """The checkpoint index."""
        return self._index

    @property
    def raw(self) -> BinaryIO:
        """The compressed file being read."""
        return self._raw

    # -- io protocol ------------------------------------------------------------------------------
    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; fewer only at the end.

        Bytes the index still holds from an earlier read come from memory; what is decompressed is
        followed by a read-ahead of :data:`READ_AHEAD_BYTES` kept in the index for the next read.
        """
        self._check_open()
        dest = memoryview(buffer).cast("B")
        filled = self._index.copy_recent(self._position, dest)
        self._position += filled
        if filled == dest.nbytes:
            return filled
        start = self._position
        self._move_to(start)
        while filled < dest.nbytes:
            chunk = self._next_chunk(min(dest.nbytes - filled, _OUTPUT_CHUNK))
            if not chunk:
                break
            dest[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        self._position = self._out_pos
        ahead = [bytes(dest[max(0, filled - self._index.window) : filled])]
        ahead_start = self._out_pos - len(ahead[0])
        while sum(map(len, ahead)) - len(ahead[0]) < READ_AHEAD_BYTES:
            chunk = self._next_chunk(_OUTPUT_CHUNK)
            if not chunk:
                break
            ahead.append(chunk)
        self._index.remember_recent(ahead_start, b"".join(ahead))
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative or None)."""
        self._check_open()
        self._move_to(self._position)
        chunks = []
        remaining = -1 if size is None or size < 0 else size
        while remaining != 0:
            want = _OUTPUT_CHUNK if remaining < 0 else min(remaining, _OUTPUT_CHUNK)
            chunk = self._next_chunk(want)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= 0 if remaining < 0 else len(chunk)
        self._position = self._out_pos
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed and self._decompressor is not None:
            comp_pos = self._comp_pos - len(self._pending)
            self._index.remember_resume_point(
                _Checkpoint(self._out_pos, comp_pos, self._decompressor.copy())
            )
        if not self.closed and self._owns_raw:
            self._raw.close()
        self._decompressor = None
        self._pending = b""
        super().close()

    # -- decompression ----------------------------------------------------------------------------
    def _size(self) -> int:
        """Total decompressed size, decompressing to the end if not yet known."""
        if self._index.uncompressed_size is not None:
            return self._index.uncompressed_size
        self._move_to(max(self._out_pos, self._index.furthest))
        while self._next_chunk(_OUTPUT_CHUNK):
            pass
        return self._out_pos

    def _move_to(self, target: int) -> None:
        """Bring the decompressor to ``target`` (or the end of the stream before it)."""
        checkpoint = self._index.nearest(target)
        if target < self._out_pos or checkpoint.out_pos > self._out_pos:
            self._restore(checkpoint)
        while self._out_pos < target:
            if not self._next_chunk(min(target - self._out_pos, _OUTPUT_CHUNK)):
                break

    def _restore(self, checkpoint: _Checkpoint) -> None:
        self._raw.seek(checkpoint.comp_pos)
        self._comp_pos = checkpoint.comp_pos
        self._pending = b""
        snapshot = checkpoint.decompressor
        self._decompressor = None if snapshot is None else snapshot.copy()
        self._out_pos = checkpoint.out_pos
        self._at_end = False

    def _refill(self) -> bool:
        """Read more compressed input into ``_pending``; False at the end of the file."""
        data = self._raw.read(_INPUT_CHUNK)
        self._comp_pos += len(data)
        self._pending = data
        return bool(data)

    def _start_member(self) -> bool:
        """Set up a decompressor for the next member; False when no member is left."""
        while True:
            # Like gzip, tolerate zero padding after the last member.
            self._pending = self._pending.lstrip(b"\x00")
            if self._pending:
                break
            if not self._refill():
                self._at_end = True
                self._index.uncompressed_size = self._out_pos
                return False
        self._decompressor = self._engine.decompressobj(31)
        return True

    def _maybe_checkpoint(self) -> int:
        """Record a checkpoint if one is due; return bytes until the next one."""
        index = self._index
        due = index.furthest + index.spacing
        if self._out_pos >= due and self._decompressor is not None:
            comp_pos = self._comp_pos - len(self._pending)
            index.add(_Checkpoint(self._out_pos, comp_pos, self._decompressor.copy()))
            due = self._out_pos + index.spacing
        return max(due - self._out_pos, 1)

    def _next_chunk(self, limit: int) -> bytes:
        """Decompress and return up to ``limit`` (> 0) bytes; b'' at the end of the stream."""
        while not self._at_end:
            if self._decompressor is None and not self._start_member():
                break
            if not self._pending and not self._refill():
                raise CompressedStreamError(
                    f"{self.name}: gzip stream is truncated: the file ends at compressed byte "
                    f"{self._comp_pos} inside a member, after {self._out_pos} decompressed bytes"
                )
            want = min(limit, self._maybe_checkpoint())
            before = len(self._pending)
            try:
                chunk = self._decompressor.decompress(self._pending, want)
            except _STREAM_ERRORS as error:
                raise CompressedStreamError(
                    f"{self.name}: corrupt gzip stream near compressed byte "
                    f"{self._comp_pos - before} ({error})"
                ) from error
            if self._decompressor.eof:
                self._pending = self._decompressor.unused_data
                self._decompressor = None
            else:
                self._pending = self._decompressor.unconsumed_tail
                if not chunk and len(self._pending) == before:
                    raise CompressedStreamError(
                        f"{self.name}: gzip decompressor made no progress at compressed byte "
                        f"{self._comp_pos - before}"
                    )
            if chunk:
                self._out_pos += len(chunk)
                return chunk
        return b""
