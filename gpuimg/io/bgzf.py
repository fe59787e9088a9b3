"""BGZF: gzip files cut into independent members of at most 64 KiB (SAM/BAM specification §4.1).

A BGZF file is an ordinary multi-member gzip file, so every gzip reader reads it as the same bytes.
Each member (a *block*) carries its own compressed size in a ``BC`` subfield of the gzip extra field
(``BSIZE``, the block's total size minus 1), holds at most 64 KiB of data, and the file ends with a
fixed 28-byte empty block. A reader that knows the layout can therefore find every block by walking
the headers alone, decode blocks on several threads, and read any byte range by decoding only the
blocks that hold it.

* :func:`is_bgzf_header` / :func:`is_bgzf_file` tell a BGZF file from its first member's header, and
  :class:`BgzfIndex` holds the block table of one file, built lazily by walking block headers (no
  decompression) only as far as a read needs; it outlives the readers that fill it. All three live
  in :mod:`gpuimg.io.bgzf_index` and are named here too.
* :class:`BgzfReader` is a seekable file object over a BGZF file; :meth:`BgzfReader.read_at` is its
  thread-safe positional read, and :meth:`BgzfReader.chunk_bounds` cuts a byte range at block
  boundaries for parallel reads. Every block decoded has its CRC32 and ISIZE checked.
* :class:`BgzfWriter` writes BGZF, compressing batches of blocks in parallel on the configured
  threads (ISA-L for levels 0-3, libdeflate for 4-9; both release the GIL).
"""

from __future__ import annotations

import io
import os
from typing import Any

import deflate
from isal import isal_zlib

from gpuimg.config import parallel_for_each, settings
from gpuimg.errors import CompressedStreamError, TruncatedDataError
from gpuimg.io.bgzf_index import (
    TRAILER,
    BgzfIndex,
    Block,
    CompressedFile,
    is_bgzf_file,
    is_bgzf_header,
)
from gpuimg.io.buffers import default_pool
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

# The block header gpuimg writes: FEXTRA, mtime 0, XFL 0, OS 255 (unknown), XLEN 6, 'BC', SLEN 2.
_WRITE_PREFIX = bytes.fromhex("1f8b08040000000000ff060042430200")
_OVERHEAD = len(_WRITE_PREFIX) + 2 + TRAILER.size  # + BSIZE, + CRC32 and ISIZE
_ISAL_LEVELS = range(0, 4)
#: Blocks one thread decodes per task of a parallel read: about 1 MiB, small enough to stay in cache
#: between decoding and scaling.
BLOCKS_PER_CHUNK = 16


# -- reading --------------------------------------------------------------------------------------


class BgzfReader(PositionedReader):
    """Seekable reader of a BGZF file that decodes only the blocks a read touches.

    Parameters
    ----------
    path : str, os.PathLike or int
        The BGZF file, or an open descriptor of it (left open unless ``closefd``).
    name : str, optional
        Name for error messages (default: the path).
    index : BgzfIndex, optional
        Block table to use and extend (default: a new one).
    closefd : bool, optional
        A descriptor given becomes the reader's, closed by :meth:`close`.

    Notes
    -----
    ``seek``/``read``/``readinto`` follow the file protocol and, like any file object, are not
    thread-safe; the last decoded block is kept, so reads of consecutive small runs decode each
    block once. :meth:`read_at` is thread-safe and is what parallel reads use: it reads the
    compressed bytes of all the blocks it needs with one ``pread``, then decodes them one by one
    (libdeflate, which releases the GIL) into the destination.
    """

    kind = "BGZF reader"

    def __init__(
        self,
        path: str | os.PathLike[str] | int,
        *,
        name: str | None = None,
        index: BgzfIndex | None = None,
        closefd: bool = False,
    ) -> None:
        super().__init__()
        self.name = name or (f"<fd {path}>" if isinstance(path, int) else os.fspath(path))
        # A descriptor stays the caller's to close, unless closefd hands it over.
        self._raw = open(path, "rb", closefd=closefd or not isinstance(path, int))  # noqa: SIM115
        fd = self._raw.fileno()
        self._data = CompressedFile(fd)
        self._index = BgzfIndex() if index is None else index
        self._index.bind(file_identity(fd))
        self._position = 0
        self._cached: tuple[Block, bytearray] | None = None

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
        filled = self._fill(self._position, memoryview(buffer).cast("B"), cache=True)
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
        filled = self._fill(position, view, cache=False)
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
        return [block[:4] for block in index.blocks(first, last + 1)]

    def read_compressed(self, offset: int, dest: Any) -> None:
        """Fill ``dest`` with the compressed file's bytes from ``offset`` (a block's payload)."""
        view = memoryview(dest).cast("B")
        if self._data.readinto(offset, view) != view.nbytes:
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
        for block in index.blocks(first + blocks, last + 1)[::blocks]:
            edge = -(-(block.data_start - start) // itemsize) * itemsize
            if cuts[-1] < edge < nbytes:
                cuts.append(edge)
        cuts.append(nbytes)
        return list(zip(cuts[:-1], cuts[1:], strict=True))

    def close(self) -> None:
        if not self.closed and hasattr(self, "_raw"):
            self._raw.close()
        self._cached = None
        super().close()

    def _fill(self, position: int, dest: memoryview, *, cache: bool) -> int:
        """Decode the blocks holding ``[position, position + len(dest))`` into ``dest``; the count.

        The compressed bytes of all the blocks are read at once. With ``cache``, the last block
        decoded is kept, and reused when the next read starts inside it.
        """
        if not dest.nbytes:
            return 0
        stop, index = position + dest.nbytes, self._index
        first = index.locate(self._data, position, self.name)
        blocks = index.blocks(first, index.locate(self._data, stop - 1, self.name) + 1)
        if not blocks:
            return 0
        reused = self._cached if cache and self._cached and self._cached[0] == blocks[0] else None
        todo = blocks[1:] if reused else blocks
        base = todo[0].payload_start if todo else 0
        nbytes = todo[-1].payload_stop - base if todo else 0
        with default_pool.borrow(nbytes) as compressed:
            payloads = memoryview(compressed)[:nbytes]
            if self._data.readinto(base, payloads) < payloads.nbytes:
                raise CompressedStreamError(
                    f"{self.name}: the file ends inside BGZF blocks {first}-{first + len(blocks) - 1}"
                )
            for number, block in enumerate(blocks, first):
                if reused and number == first:
                    data = reused[1]
                else:
                    payload = payloads[block.payload_start - base : block.payload_stop - base]
                    data = self._decode(number, block, payload)
                lo, hi = max(position, block.data_start), min(stop, block.data_stop)
                dest[lo - position : hi - position] = memoryview(data)[
                    lo - block.data_start : hi - block.data_start
                ]
        if cache:
            self._cached = (block, data)
        return min(stop, blocks[-1].data_stop) - position

    def _decode(self, number: int, block: Block, payload: memoryview) -> bytearray:
        """Decode block ``number`` from its deflate ``payload``, checking its ISIZE and CRC32."""
        isize = block.data_stop - block.data_start
        try:
            data = deflate.deflate_decompress(payload, isize)
        except deflate.DeflateError as error:
            raise self._block_error(number, block, f"corrupt deflate data ({error})") from error
        if len(data) != isize:
            raise self._block_error(
                number, block, f"decodes to {len(data)} bytes, ISIZE says {isize}"
            )
        # libdeflate's CRC32 (4 µs a block) holds the GIL, and so does the copy into the destination
        # (about as long): on two threads, measured, that beats zlib-ng's CRC32 and numpy's copy,
        # which release it for so short a time that the threads pay more handing it back and forth.
        found = deflate.crc32(data)
        if found != block.crc:
            raise self._block_error(
                number, block, f"CRC32 is {found:#010x}, expected {block.crc:#010x}"
            )
        return data

    def _block_error(self, number: int, block: Block, problem: str) -> CompressedStreamError:
        return CompressedStreamError(
            f"{self.name}: BGZF block {number} (uncompressed bytes {block.data_start}-"
            f"{block.data_stop}): {problem}"
        )


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
    trailer = TRAILER.pack(isal_zlib.crc32(data), len(data))
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
