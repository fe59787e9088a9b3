"""Where the blocks of a BGZF file are: block headers and trailers, read without decompressing.

A BGZF block is a gzip member whose extra field holds a ``BC`` subfield (``BSIZE``, the block's total
size minus 1), so the next block starts ``BSIZE + 1`` bytes after this one, and the block's trailer
(CRC32, ISIZE) sits just before it (SAM/BAM specification §4.1).

* :func:`is_bgzf_header` / :func:`is_bgzf_file` tell a BGZF file from its first member's header.
* :class:`CompressedFile` reads an open file's compressed bytes with ``pread`` (thread-safe).
* :class:`BgzfIndex` is the block table of one file, built by walking the headers only as far as a
  read needs; each row (:class:`Block`) holds everything a decoder needs, the trailer's CRC32
  included, so a block's compressed bytes are all that is read again to decode it.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
from typing import Any, NamedTuple

from gpuimg.config import reset_after_fork
from gpuimg.errors import CompressedStreamError

__all__ = ["TRAILER", "Block", "BgzfIndex", "CompressedFile", "is_bgzf_file", "is_bgzf_header"]

# ID1 ID2 CM FLG, MTIME, XFL OS, XLEN: the fixed part of a gzip member header (RFC 1952).
_HEADER = struct.Struct("<4BIBBH")
_SUBFIELD = struct.Struct("<2sH")  # SI1 SI2, SLEN
#: A member's trailer: CRC32 and ISIZE of its data.
TRAILER = struct.Struct("<II")
_FEXTRA = 0x04
_BC = b"BC"
# The fixed header, XLEN 6 and one subfield 'BC' of 2 bytes holding BSIZE: every block htslib and
# gpuimg write, parsed with one unpack.
_COMMON = struct.Struct("<4BIBBH2sHH")
_BC_ONLY = (6, _BC, 2)  # XLEN, SI1 SI2, SLEN of that layout
#: Compressed bytes read at once while walking headers: one ``pread`` covers several blocks (about
#: 15 kB each for a T1), where reading each header and trailer on its own took four.
_WALK_WINDOW = 1 << 17
#: The most data a BGZF block holds (SAM/BAM specification §4.1): a larger ISIZE is a broken or
#: hostile file, whose sizes must not be trusted for the result's allocation.
MAX_BLOCK_DATA = 1 << 16


class Block(NamedTuple):
    """One block: its deflate payload in the compressed file, its data in the uncompressed one."""

    payload_start: int
    payload_stop: int
    data_start: int
    data_stop: int
    crc: int


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


class CompressedFile:
    """The compressed bytes of an open file, read with ``pread``.

    No shared file position, so threads read at once; and a file that shrinks under a reader gives
    short reads (reported as truncation), where a memory map would kill the process with SIGBUS.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def __len__(self) -> int:
        return self._size

    def read(self, offset: int, nbytes: int) -> bytes:
        """Up to ``nbytes`` bytes from ``offset`` (fewer at the end of the file)."""
        return os.pread(self._fd, max(nbytes, 0), offset)

    def readinto(self, offset: int, view: memoryview) -> int:
        """Fill ``view`` from ``offset``; the number of bytes read (fewer at the end of the file)."""
        filled = 0
        while filled < view.nbytes:
            count = os.preadv(self._fd, [view[filled:]], offset + filled)
            if count == 0:
                break
            filled += count
        return filled


class BgzfIndex:
    """Where the blocks of one BGZF file are, found by walking their headers only.

    The table grows as reads need it (:meth:`locate`), so reading the start of a file walks one
    header. The walk reads the compressed file in windows of 128 KiB, kept until the table is
    complete. Like :class:`~gpuimg.io.openers.GzipIndex` it is tied to the file it indexes (device,
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
        self._blocks: list[Block] = []
        self._data_ends: list[int] = []  # uncompressed offset just past each block, for bisect
        self._next_comp = 0  # compressed offset of the first block not walked yet
        self._complete = False
        self._window, self._window_start = b"", 0  # compressed bytes read ahead by the walk

    def __len__(self) -> int:
        return len(self._blocks)

    def bind(self, identity: tuple[int, ...] | None) -> None:
        """Tie the index to a file identity, emptying it if it indexed another."""
        with self._lock:
            if identity is None or identity != self._identity:
                self._clear()
                self._identity = identity

    def blocks(self, first: int, stop: int) -> list[Block]:
        """Indexed blocks ``first`` to ``stop - 1``."""
        with self._lock:
            return self._blocks[first:stop]

    def locate(self, source: CompressedFile, position: int, name: str) -> int:
        """Number of the block holding uncompressed byte ``position`` (``len(self)`` past the end).

        Walks further block headers of ``source`` as needed.
        """
        with self._lock:
            if not self._complete and (not self._data_ends or self._data_ends[-1] <= position):
                self._walk(source, name, position)
            return bisect.bisect_right(self._data_ends, position)

    def size(self, source: CompressedFile, name: str) -> int:
        """Total uncompressed size (walks every remaining header)."""
        with self._lock:
            if not self._complete:
                self._walk(source, name, None)
            return self._data_ends[-1] if self._data_ends else 0

    def _walk(self, source: CompressedFile, name: str, position: int | None) -> None:
        """Append blocks until one holds uncompressed byte ``position`` or the file ends (None).

        One loop with the table in locals: it runs once per block of every file read whole, under
        the GIL, so per-block Python is kept to a few struct unpacks.
        """
        blocks, ends, total = self._blocks, self._data_ends, len(source)
        data_end = ends[-1] if ends else 0
        start = self._next_comp
        while position is None or data_end <= position:
            if start >= total:
                self._complete, self._window = True, b""
                return
            window, at = self._bytes_at(source, start, _COMMON.size)
            fields = _COMMON.unpack_from(window, at) if len(window) - at >= _COMMON.size else ()
            if fields[:3] == (0x1F, 0x8B, 8) and fields[3] & _FEXTRA and fields[7:10] == _BC_ONLY:
                xlen, size = 6, fields[10] + 1
            else:  # another extra field layout, or a broken header: the general parser says which
                xlen, size = self._parse_header(source, start, name)
            payload_start, payload_stop = start + _HEADER.size + xlen, start + size - TRAILER.size
            if payload_stop < payload_start:
                raise CompressedStreamError(
                    f"{self._where(name, start)}: BSIZE is {size - 1}, expected at least "
                    f"{payload_start + TRAILER.size - start - 1}"
                )
            window, at = self._bytes_at(source, payload_stop, TRAILER.size)
            if start + size > total or len(window) - at < TRAILER.size:
                raise CompressedStreamError(
                    f"{self._where(name, start)}: block of {size} bytes is truncated, the file "
                    f"ends {total - start} bytes after its start"
                )
            crc, isize = TRAILER.unpack_from(window, at)
            if isize > MAX_BLOCK_DATA:
                raise CompressedStreamError(
                    f"{self._where(name, start)}: ISIZE is {isize}, expected at most "
                    f"{MAX_BLOCK_DATA} (a BGZF block's data)"
                )
            blocks.append(Block(payload_start, payload_stop, data_end, data_end + isize, crc))
            data_end += isize
            ends.append(data_end)
            start += size
            self._next_comp = start

    def _where(self, name: str, start: int) -> str:
        """The block at compressed byte ``start`` (the next one to append), for messages."""
        return f"{name}: BGZF block {len(self._blocks)} at compressed byte {start}"

    def _parse_header(self, source: CompressedFile, start: int, name: str) -> tuple[int, int]:
        """``(XLEN, BSIZE + 1)`` of the block header at ``start``, any extra field layout."""
        window, at = self._bytes_at(source, start, _HEADER.size)
        if len(window) - at < _HEADER.size:
            raise CompressedStreamError(
                f"{self._where(name, start)}: truncated header ({len(window) - at} bytes)"
            )
        id1, id2, method, flags, _, _, _, xlen = _HEADER.unpack_from(window, at)
        if (id1, id2, method) != (0x1F, 0x8B, 8) or not flags & _FEXTRA:
            raise CompressedStreamError(
                f"{self._where(name, start)}: header is {window[at : at + 4].hex()}, expected a "
                "gzip member with an extra field (1f8b08 and FEXTRA)"
            )
        window, at = self._bytes_at(source, start, _HEADER.size + xlen)
        bsize_at = _bc_field(window, at + _HEADER.size, xlen)
        if bsize_at is None:
            raise CompressedStreamError(
                f"{self._where(name, start)}: no 'BC' subfield in the gzip extra field, expected "
                "one in every block"
            )
        return xlen, int.from_bytes(window[bsize_at : bsize_at + 2], "little") + 1

    def _bytes_at(self, source: CompressedFile, start: int, nbytes: int) -> tuple[bytes, int]:
        """``(buffer, offset)``: compressed bytes from ``start`` are ``buffer[offset:]``.

        The buffer holds ``nbytes`` bytes from ``offset``, or fewer where the file ends.
        """
        offset = start - self._window_start
        if offset < 0 or offset + nbytes > len(self._window):
            self._window = source.read(start, max(nbytes, _WALK_WINDOW))
            self._window_start, offset = start, 0
        return self._window, offset
