"""BGZF: gzip files cut into independent members of at most 64 KiB (SAM/BAM specification §4.1).

A BGZF file is an ordinary multi-member gzip file, so every gzip reader reads it as the same bytes.
Each member (a *block*) carries its own compressed size in a ``BC`` subfield of the gzip extra field
(``BSIZE``, the block's total size minus 1), holds at most 64 KiB of data, and the file ends with a
fixed 28-byte empty block. A reader that knows the layout can therefore find every block by walking
the headers alone, decode blocks on several threads, and read any byte range by decoding only the
blocks that hold it.

* :func:`is_bgzf_header` / :func:`is_bgzf_file` tell a BGZF file from its first member's header.
* :class:`BgzfIndex` holds the block table of one file, built lazily by walking block headers (no
  decompression) only as far as a read needs; it outlives the readers that fill it.
* :class:`BgzfReader` is a seekable file object over a BGZF file; :meth:`BgzfReader.read_at` is its
  thread-safe positional read, and :meth:`BgzfReader.chunk_bounds` cuts a byte range at block
  boundaries for parallel reads. Every block decoded has its CRC32 and ISIZE checked.
* :class:`BgzfWriter` writes BGZF, compressing batches of blocks in parallel on the configured
  threads (ISA-L for levels 0-3, libdeflate for 4-9; both release the GIL).
"""

from __future__ import annotations

import bisect
import io
import os
import struct
import threading
from typing import Any

import deflate
from isal import isal_zlib

from gpuimg.config import parallel_for_each, reset_after_fork, settings
from gpuimg.errors import CompressedStreamError, TruncatedDataError
from gpuimg.io.positioned import PositionedReader, WritableFile, file_identity

__all__ = [
    "BLOCK_DATA_SIZE",
    "EOF_BLOCK",
    "BgzfIndex",
    "BgzfReader",
    "BgzfWriter",
    "is_bgzf_file",
    "compress_block",
    "is_bgzf_header",
]

#: Uncompressed bytes per block written: htslib's ``BGZF_BLOCK_SIZE`` (0xff00), a multiple of 16, so
#: blocks start on element (and GPU alignment) boundaries whenever the data offset does.
BLOCK_DATA_SIZE = 0xFF00
#: The most bytes a whole block (header, payload and trailer) may hold.
MAX_BLOCK_SIZE = 1 << 16
#: The empty block every BGZF file ends with (§4.1.2).
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")

# ID1 ID2 CM FLG, MTIME, XFL OS, XLEN: the fixed part of a gzip member header (RFC 1952).
_HEADER = struct.Struct("<4BIBBH")
_SUBFIELD = struct.Struct("<2sH")  # SI1 SI2, SLEN
_TRAILER = struct.Struct("<II")  # CRC32, ISIZE
_FEXTRA = 0x04
_BC = b"BC"
# The block header gpuimg writes: FEXTRA, mtime 0, XFL 0, OS 255 (unknown), XLEN 6, 'BC', SLEN 2.
_WRITE_PREFIX = bytes.fromhex("1f8b08040000000000ff060042430200")
_OVERHEAD = len(_WRITE_PREFIX) + 2 + _TRAILER.size  # + BSIZE, + CRC32 and ISIZE
_ISAL_LEVELS = range(0, 4)
#: Blocks one thread decodes per task of a parallel read: about 1 MiB, small enough to stay in cache
#: between decoding and scaling.
BLOCKS_PER_CHUNK = 16


def is_bgzf_header(head: bytes) -> bool:
    """True when ``head`` starts with a gzip member header holding a ``BC`` subfield of 2 bytes.

    ``head`` must hold the fixed header (12 bytes) and the whole extra field (``XLEN`` more).
    """
    if len(head) < _HEADER.size:
        return False
    id1, id2, method, flags, _, _, _, xlen = _HEADER.unpack_from(head)
    if (id1, id2, method) != (0x1F, 0x8B, 8) or not flags & _FEXTRA:
        return False
    return _bc_field(head, _HEADER.size, xlen) is not None


def _bc_field(buffer: Any, start: int, xlen: int) -> int | None:
    """Offset of the BSIZE value inside the extra field at ``start``, or None when there is none."""
    position, end = start, start + xlen
    if end > len(buffer):
        return None
    while position + _SUBFIELD.size <= end:
        ident, length = _SUBFIELD.unpack_from(buffer, position)
        position += _SUBFIELD.size
        if ident == _BC and length == 2 and position + 2 <= end:
            return position
        position += length
    return None


def is_bgzf_file(path: str | os.PathLike[str] | int) -> bool:
    """True when the first member of the gzip file at ``path`` is a BGZF block (reads its header).

    ``path`` may be an open descriptor (read with ``pread``, its position unchanged).
    """
    if not isinstance(path, int):
        with open(path, "rb") as raw:
            return is_bgzf_file(raw.fileno())
    head = os.pread(path, _HEADER.size, 0)
    if len(head) < _HEADER.size:
        return False
    return is_bgzf_header(head + os.pread(path, _HEADER.unpack_from(head)[-1], _HEADER.size))


# -- the block table ------------------------------------------------------------------------------


class BgzfIndex:
    """Where the blocks of one BGZF file are, found by walking their headers only.

    The table grows as reads need it (:meth:`locate`), so reading the start of a file walks one
    header. Like :class:`~gpuimg.io.openers.GzipIndex` it is tied to the file it indexes (device,
    inode, size, modification time) and empties itself when given another. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._identity: tuple[int, ...] | None = None
        self._clear()
        reset_after_fork(self)

    def _after_fork(self) -> None:
        """Rebuild the lock in a forked child (see :func:`gpuimg.config.reset_after_fork`)."""
        if self._lock.locked():  # held by a thread that is gone: the table may be half-updated
            self._identity = ()  # matches no file, so the next bind empties the table
        self._lock = threading.Lock()

    def _clear(self) -> None:
        self._comp_starts: list[int] = []  # compressed offset of each block
        self._payloads: list[tuple[int, int]] = []  # (start, stop) of each block's deflate data
        self._data_ends: list[int] = []  # uncompressed offset just past each block
        self._next_comp = 0  # compressed offset of the first block not walked yet
        self._complete = False

    def __len__(self) -> int:
        return len(self._comp_starts)

    def bind(self, identity: tuple[int, ...] | None) -> None:
        """Tie the index to a file identity, emptying it if it indexed another."""
        with self._lock:
            if identity is None or identity != self._identity:
                self._clear()
                self._identity = identity

    def block(self, number: int) -> tuple[int, int, int, int]:
        """``(payload_start, payload_stop, data_start, data_stop)`` of an indexed block."""
        with self._lock:
            start = self._data_ends[number - 1] if number else 0
            return (*self._payloads[number], start, self._data_ends[number])

    def locate(self, buffer: _Compressed, position: int, name: str) -> int:
        """Number of the block holding uncompressed byte ``position`` (``len(self)`` past the end).

        Walks further block headers of ``buffer`` (the compressed file) as needed.
        """
        with self._lock:
            while not self._complete and (not self._data_ends or self._data_ends[-1] <= position):
                self._walk_one(buffer, name)
            return bisect.bisect_right(self._data_ends, position)

    def size(self, buffer: _Compressed, name: str) -> int:
        """Total uncompressed size (walks every remaining header)."""
        with self._lock:
            while not self._complete:
                self._walk_one(buffer, name)
            return self._data_ends[-1] if self._data_ends else 0

    def _walk_one(self, buffer: _Compressed, name: str) -> None:
        """Append the block at ``_next_comp`` to the table (or mark the table complete at the end)."""
        start, total = self._next_comp, len(buffer)
        if start >= total:
            self._complete = True
            return
        number = len(self._comp_starts)
        where = f"{name}: BGZF block {number} at compressed byte {start}"
        head = buffer[start : start + _HEADER.size]
        if len(head) < _HEADER.size:
            raise CompressedStreamError(f"{where}: truncated header ({len(head)} bytes)")
        id1, id2, method, flags, _, _, _, xlen = _HEADER.unpack(head)
        if (id1, id2, method) != (0x1F, 0x8B, 8) or not flags & _FEXTRA:
            raise CompressedStreamError(
                f"{where}: header is {head[:4].hex()}, expected a gzip member with an extra field "
                "(1f8b08 and FEXTRA)"
            )
        extra = buffer[start + _HEADER.size : start + _HEADER.size + xlen]
        bsize_at = _bc_field(extra, 0, xlen)
        if bsize_at is None:
            raise CompressedStreamError(
                f"{where}: no 'BC' subfield in the gzip extra field, expected one in every block"
            )
        size = int.from_bytes(extra[bsize_at : bsize_at + 2], "little") + 1
        payload_start = start + _HEADER.size + xlen
        payload_stop = start + size - _TRAILER.size
        if payload_stop < payload_start:
            raise CompressedStreamError(
                f"{where}: BSIZE is {size - 1}, expected at least "
                f"{payload_start + _TRAILER.size - start - 1}"
            )
        isize = buffer[payload_stop + 4 : payload_stop + 8]
        if start + size > total or len(isize) < 4:
            raise CompressedStreamError(
                f"{where}: block of {size} bytes is truncated, the file ends {total - start} bytes "
                "after its start"
            )
        self._comp_starts.append(start)
        self._payloads.append((payload_start, payload_stop))
        data_start = self._data_ends[-1] if self._data_ends else 0
        self._data_ends.append(data_start + int.from_bytes(isize, "little"))
        self._next_comp = start + size


class _Compressed:
    """The compressed bytes of an open file, sliced with ``pread``.

    No shared file position, so threads read at once; and a file that shrinks under a reader gives
    short reads (reported as truncation), where a memory map would kill the process with SIGBUS.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        return os.pread(self._fd, max(key.stop - key.start, 0), key.start)


# -- reading --------------------------------------------------------------------------------------


class BgzfReader(PositionedReader):
    """Seekable reader of a BGZF file that decodes only the blocks a read touches.

    Parameters
    ----------
    path : str, os.PathLike or int
        The BGZF file, or an open descriptor of it (left open).
    name : str, optional
        Name for error messages (default: the path).
    index : BgzfIndex, optional
        Block table to use and extend (default: a new one).

    Notes
    -----
    ``seek``/``read``/``readinto`` follow the file protocol and, like any file object, are not
    thread-safe; the last decoded block is kept, so reads of consecutive small runs decode each
    block once. :meth:`read_at` is thread-safe and is what parallel reads use.
    """

    kind = "BGZF reader"

    def __init__(
        self,
        path: str | os.PathLike[str] | int,
        *,
        name: str | None = None,
        index: BgzfIndex | None = None,
    ) -> None:
        super().__init__()
        self.name = name or (f"<fd {path}>" if isinstance(path, int) else os.fspath(path))
        # A descriptor stays the caller's to close.
        self._raw = open(path, "rb", closefd=not isinstance(path, int))  # noqa: SIM115
        fd = self._raw.fileno()
        self._data = _Compressed(fd)
        self._index = BgzfIndex() if index is None else index
        self._index.bind(file_identity(fd))
        self._position = 0
        self._cached: tuple[int, bytes | bytearray] | None = None

    @property
    def index(self) -> BgzfIndex:
        """The block table."""
        return self._index

    @property
    def raw(self) -> io.BufferedReader:
        """The compressed file being read."""
        return self._raw

    def readinto(self, buffer: Any) -> int:
        """Read up to ``len(buffer)`` bytes from the position; fewer only at the end."""
        self._check_open()
        filled = self._copy(self._position, memoryview(buffer).cast("B"), cache=True)
        self._position += filled
        return filled

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative or None)."""
        self._check_open()
        if size is None or size < 0:
            size = max(self.size() - self._position, 0)
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(buffer)])

    def size(self) -> int:
        """Total uncompressed size, from the block headers (nothing is decoded)."""
        self._check_open()
        return self._index.size(self._data, self.name)

    _size = size

    def read_at(self, position: int, dest: Any) -> None:
        """Fill ``dest`` with the uncompressed bytes from ``position``; thread-safe.

        Raises
        ------
        TruncatedDataError
            The file ends before ``dest`` is full.
        """
        self._check_open()
        view = memoryview(dest).cast("B")
        filled = self._copy(position, view, cache=False)
        if filled < view.nbytes:
            raise TruncatedDataError(
                f"{self.name}: uncompressed data end at byte {position + filled}, expected at "
                f"least {position + view.nbytes}"
            )

    def blocks_holding(self, start: int, nbytes: int) -> list[tuple[int, int, int, int]]:
        """``(payload_start, payload_stop, data_start, data_stop)`` of the blocks holding the bytes.

        Payload offsets are in the compressed file, data offsets in the uncompressed one.

        Raises
        ------
        TruncatedDataError
            The file ends before ``start + nbytes``.
        """
        self._check_open()
        index = self._index
        first = index.locate(self._data, start, self.name)
        last = index.locate(self._data, start + max(nbytes, 1) - 1, self.name)
        if last >= len(index):
            raise TruncatedDataError(
                f"{self.name}: uncompressed data end at byte {self.size()}, expected at least "
                f"{start + nbytes}"
            )
        return [index.block(number) for number in range(first, last + 1)]

    def read_compressed(self, offset: int, dest: Any) -> None:
        """Fill ``dest`` with the compressed file's bytes from ``offset`` (a block's payload)."""
        view = memoryview(dest).cast("B")
        if os.preadv(self._raw.fileno(), [view], offset) != view.nbytes:
            raise CompressedStreamError(
                f"{self.name}: the file ends inside the {view.nbytes} compressed bytes at {offset}"
            )

    def chunk_bounds(
        self, start: int, nbytes: int, itemsize: int, blocks: int = BLOCKS_PER_CHUNK
    ) -> list[tuple[int, int]]:
        """Cut bytes ``[start, start + nbytes)`` into ``(lo, hi)`` ranges (relative to ``start``).

        Cuts fall at the first element boundary (a multiple of ``itemsize``) at or after every
        ``blocks``-th block boundary, so each range decodes about ``blocks`` blocks and, when block
        boundaries are element boundaries (as in files gpuimg or bgzip write), no block twice.
        """
        self._check_open()
        index = self._index
        first = index.locate(self._data, start, self.name)
        last = index.locate(self._data, start + nbytes - 1, self.name) if nbytes else first
        cuts = [0]
        for number in range(first + blocks, last + 1, blocks):
            edge = index.block(number)[2] - start
            edge = -(-edge // itemsize) * itemsize
            if cuts[-1] < edge < nbytes:
                cuts.append(edge)
        cuts.append(nbytes)
        return list(zip(cuts[:-1], cuts[1:], strict=True))

    def close(self) -> None:
        if not self.closed and hasattr(self, "_raw"):
            self._raw.close()
        self._cached = None
        super().close()

    def _copy(self, position: int, dest: memoryview, *, cache: bool) -> int:
        """Decode the blocks holding ``[position, position + len(dest))`` into ``dest``; the count."""
        filled = 0
        number = self._index.locate(self._data, position, self.name)
        while filled < dest.nbytes and number < len(self._index):
            data_start = self._index.block(number)[2]
            data = self._block_data(number, cache)
            offset = position + filled - data_start
            count = min(len(data) - offset, dest.nbytes - filled)
            dest[filled : filled + count] = data[offset : offset + count]
            filled += count
            number = self._index.locate(self._data, position + filled, self.name)
        return filled

    def _block_data(self, number: int, cache: bool) -> bytes | bytearray:
        if cache and self._cached is not None and self._cached[0] == number:
            return self._cached[1]
        data = self._decode(number)
        if cache:
            self._cached = (number, data)
        return data

    def _decode(self, number: int) -> bytes | bytearray:
        """Decode one block, checking its ISIZE and CRC32."""
        payload_start, payload_stop, data_start, data_stop = self._index.block(number)
        where = f"{self.name}: BGZF block {number} (uncompressed bytes {data_start}-{data_stop})"
        block = self._data[payload_start : payload_stop + _TRAILER.size]
        if len(block) < payload_stop + _TRAILER.size - payload_start:
            raise CompressedStreamError(f"{where}: the file ends inside the block")
        crc, isize = _TRAILER.unpack_from(block, len(block) - _TRAILER.size)
        try:
            data = deflate.deflate_decompress(memoryview(block)[: -_TRAILER.size], isize)
        except deflate.DeflateError as error:
            raise CompressedStreamError(f"{where}: corrupt deflate data ({error})") from error
        if len(data) != isize:
            raise CompressedStreamError(
                f"{where}: decodes to {len(data)} bytes, ISIZE says {isize}"
            )
        found = isal_zlib.crc32(data)
        if found != crc:
            raise CompressedStreamError(f"{where}: CRC32 is {found:#010x}, expected {crc:#010x}")
        return data


# -- writing --------------------------------------------------------------------------------------


def compress_block(data: bytes | bytearray | memoryview, level: int) -> bytes:
    """One whole BGZF block (header, raw deflate payload, CRC32 and ISIZE) holding ``data``.

    Levels 0-3 use ISA-L, 4-9 libdeflate. Data that would not fit in 64 KiB once compressed (random
    bytes at ISA-L's level 0) are stored uncompressed instead.
    """
    payload: bytes | bytearray
    if level in _ISAL_LEVELS:
        payload = isal_zlib.compress(data, level, wbits=-15)
    else:
        payload = deflate.deflate_compress(data, level)
    if len(payload) + _OVERHEAD > MAX_BLOCK_SIZE:
        payload = deflate.deflate_compress(data, 0)
    size = len(payload) + _OVERHEAD
    trailer = _TRAILER.pack(isal_zlib.crc32(data), len(data))
    return b"".join((_WRITE_PREFIX, (size - 1).to_bytes(2, "little"), payload, trailer))


class BgzfWriter(io.RawIOBase):
    """Write a BGZF file: blocks of :data:`BLOCK_DATA_SIZE` bytes, compressed in parallel.

    Written bytes are collected until a batch of blocks (a few per thread) is full; the batch is
    then compressed on this thread and the helpers the thread budget grants, and written in order.
    ``close`` writes the last, partial block and the EOF block. The blocks hold the same bytes
    whatever the thread count (and at levels 4-9, libdeflate's, the file is byte for byte the same).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (created or truncated).
    compresslevel : int
        0-9; 0-3 use ISA-L, 4-9 libdeflate.
    fileobj : binary file object, optional, keyword only
        Where the bytes go instead of ``path`` (then only its name); not closed by :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        compresslevel: int = 1,
        *,
        fileobj: WritableFile | None = None,
    ) -> None:
        super().__init__()
        if compresslevel not in range(10):
            raise ValueError(
                f"{os.fspath(path)}: compresslevel is {compresslevel}, expected an int in 0-9"
            )
        self._level = compresslevel
        self._pending = bytearray()
        self._written = 0  # uncompressed bytes written so far
        self._owns_file = fileobj is None
        self._file = open(path, "wb") if fileobj is None else fileobj  # noqa: SIM115 - see close()
        self.name = os.fspath(path)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Uncompressed bytes written so far."""
        return self._written

    def write(self, data: Any) -> int:
        """Queue ``data``; full batches of blocks are compressed and written."""
        if self.closed:
            raise ValueError(f"{self.name}: write to a closed BGZF writer")
        view = memoryview(data).cast("B")
        self._pending += view
        self._written += view.nbytes
        batch = BLOCK_DATA_SIZE * BLOCKS_PER_CHUNK * max(settings.threads, 1)
        if len(self._pending) >= batch:
            whole = len(self._pending) // BLOCK_DATA_SIZE * BLOCK_DATA_SIZE
            self._write_blocks(whole)
        return view.nbytes

    def close(self) -> None:
        """Write what is queued and the EOF block, then close the file."""
        if self.closed:
            return
        try:
            self._write_blocks(len(self._pending))
            self._file.write(EOF_BLOCK)
        finally:
            if self._owns_file:
                self._file.close()
            super().close()

    def _write_blocks(self, nbytes: int) -> None:
        """Compress the first ``nbytes`` queued bytes into blocks, in parallel, and write them."""
        source = memoryview(self._pending)
        starts = range(0, nbytes, BLOCK_DATA_SIZE)
        blocks: list[bytes] = [b""] * len(starts)

        def work(number: int) -> None:
            start = starts[number]
            blocks[number] = compress_block(
                source[start : min(start + BLOCK_DATA_SIZE, nbytes)], self._level
            )

        try:
            parallel_for_each(work, len(starts))
            self._file.write(b"".join(blocks))
        finally:
            source.release()
        del self._pending[:nbytes]
