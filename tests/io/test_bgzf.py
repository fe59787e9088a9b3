"""Tests for gpuimg.io.bgzf: the BGZF writer, the block table, the reader and its checks."""

from __future__ import annotations

import gzip
import os
import struct
import threading
import zlib

import numpy as np
import pytest

from gpuimg import config
from gpuimg.errors import CompressedStreamError, TruncatedDataError
from gpuimg.io import bgzf
from gpuimg.io.bgzf import (
    BLOCK_DATA_SIZE,
    EOF_BLOCK,
    MAX_BLOCK_SIZE,
    BgzfIndex,
    BgzfReader,
    BgzfWriter,
    compress_block,
    is_bgzf_file,
    is_bgzf_header,
)
from gpuimg.io.openers import GzipReader, open_image_file


@pytest.fixture(scope="module")
def truth() -> bytes:
    """About 600 kB (ten blocks) of int16-like data that compresses a few times over."""
    rng = np.random.default_rng(7)
    return rng.integers(0, 40, 300_000, dtype=np.int16).tobytes()


def write_bgzf(path, data: bytes, *, level: int = 1, piece: int = 70_001) -> None:
    """Write ``data`` in pieces of odd sizes, so blocks never line up with writes."""
    with BgzfWriter(path, level) as writer:
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])


def blocks_of(raw: bytes) -> list[bytes]:
    """Split a BGZF file into its blocks using the BC fields of the files this writer makes."""
    blocks, position = [], 0
    while position < len(raw):
        size = struct.unpack_from("<H", raw, position + 16)[0] + 1
        blocks.append(raw[position : position + size])
        position += size
    return blocks


@pytest.fixture(scope="module")
def bgzf_path(tmp_path_factory, truth):
    path = tmp_path_factory.mktemp("bgzf") / "data.nii.gz"
    write_bgzf(path, truth)
    return path


# -- writing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, BLOCK_DATA_SIZE, 3 * BLOCK_DATA_SIZE + 5])
def test_writer_round_trip_and_layout(tmp_path, truth, size):
    data = (truth * 2)[:size]
    path = tmp_path / "x.gz"
    write_bgzf(path, data)
    raw = path.read_bytes()
    assert gzip.decompress(raw) == data
    assert raw.endswith(EOF_BLOCK)
    blocks = blocks_of(raw)
    assert b"".join(blocks) == raw
    assert len(blocks) == -(-size // BLOCK_DATA_SIZE) + 1  # data blocks and the EOF block
    for block in blocks:
        assert len(block) <= MAX_BLOCK_SIZE
        assert is_bgzf_header(block)
        assert zlib.decompressobj(31).decompress(block) == gzip.decompress(block)


@pytest.mark.parametrize("level", range(10))
def test_every_level_round_trips(tmp_path, truth, level):
    path = tmp_path / "x.gz"
    write_bgzf(path, truth[:200_000], level=level)
    assert gzip.decompress(path.read_bytes()) == truth[:200_000]


def test_incompressible_blocks_are_stored_to_stay_within_64k():
    noise = np.random.default_rng(1).integers(0, 256, BLOCK_DATA_SIZE, dtype=np.uint8).tobytes()
    block = compress_block(noise, 0)  # ISA-L's level 0 expands noise past 64 KiB
    assert len(block) <= MAX_BLOCK_SIZE
    assert gzip.decompress(block) == noise


@pytest.mark.parametrize("level", [1, 6])
def test_blocks_do_not_depend_on_the_thread_count(tmp_path, truth, level):
    layouts = []
    for threads in (1, 2, 3):
        path = tmp_path / f"t{threads}.gz"
        with config.configure(threads=threads):
            write_bgzf(path, truth * 3, level=level)
        layouts.append([gzip.decompress(block) for block in blocks_of(path.read_bytes())])
        if level == 6:  # libdeflate is deterministic; one ISA-L run was seen to differ in bytes
            layouts[-1].append(path.read_bytes())
    assert layouts[0] == layouts[1] == layouts[2]


def test_writer_compresses_on_several_threads_within_the_budget(tmp_path, truth, monkeypatch):
    threads, active, most = set(), [0], [0]
    lock = threading.Lock()
    original = bgzf.compress_block

    def spy(data, level):
        with lock:
            threads.add(threading.get_ident())
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            return original(data, level)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(bgzf, "compress_block", spy)
    with config.configure(threads=2):
        write_bgzf(tmp_path / "x.gz", truth * 8)
    assert len(threads) >= 2
    assert most[0] <= 2


def test_writer_rejects_bad_levels_and_closed_writes(tmp_path):
    with pytest.raises(ValueError, match="x.gz: compresslevel is 10, expected an int in 0-9"):
        BgzfWriter(tmp_path / "x.gz", 10)
    writer = BgzfWriter(tmp_path / "y.gz", 1)
    writer.close()
    with pytest.raises(ValueError, match="y.gz: write to a closed BGZF writer"):
        writer.write(b"abc")


def test_open_image_file_writes_bgzf_on_request(tmp_path, truth):
    with open_image_file(tmp_path / "a.nii.gz", "wb", bgzf=True) as f:
        f.write(truth)
    with open_image_file(tmp_path / "b.nii.gz", "wb") as f:
        f.write(truth)
    assert is_bgzf_file(tmp_path / "a.nii.gz")
    assert not is_bgzf_file(tmp_path / "b.nii.gz")


# -- detection ----------------------------------------------------------------------------------------


def test_detection_needs_a_bc_subfield(tmp_path, bgzf_path):
    plain = tmp_path / "plain.gz"
    plain.write_bytes(gzip.compress(b"abc"))
    other_extra = tmp_path / "extra.gz"  # FEXTRA with only an 'AP' subfield
    other_extra.write_bytes(bytes.fromhex("1f8b0804000000000000") + b"\x06\x00AP\x02\x00xx")
    short = tmp_path / "short.gz"
    short.write_bytes(b"\x1f\x8b")
    assert is_bgzf_file(bgzf_path)
    assert not is_bgzf_file(plain)
    assert not is_bgzf_file(other_extra)
    assert not is_bgzf_file(short)
    assert not is_bgzf_header(bgzf_path.read_bytes()[:13])  # extra field cut off


def test_bc_found_after_other_subfields(tmp_path, truth):
    """The spec allows other subfields in the extra field; BSIZE counts them too."""
    data = truth[:1000]
    payload = zlib.compress(data, 1, wbits=-15)
    extra = b"AP\x03\x00xyz" + b"BC\x02\x00"
    size = 12 + len(extra) + 2 + len(payload) + 8
    block = (
        bytes.fromhex("1f8b08040000000000ff")
        + struct.pack("<H", len(extra) + 2)
        + extra
        + struct.pack("<H", size - 1)
        + payload
        + struct.pack("<II", zlib.crc32(data), len(data))
    )
    path = tmp_path / "x.gz"
    path.write_bytes(block + EOF_BLOCK)
    assert gzip.decompress(path.read_bytes()) == data
    with BgzfReader(path) as reader:
        assert reader.read() == data


# -- reading ------------------------------------------------------------------------------------------


def test_reader_reads_ranges_and_seeks(bgzf_path, truth):
    rng = np.random.default_rng(3)
    with BgzfReader(bgzf_path) as reader:
        assert reader.size() == len(truth)
        assert reader.read() == truth
        for start, length in zip(
            rng.integers(0, len(truth), 20), rng.integers(0, 3 * BLOCK_DATA_SIZE, 20), strict=True
        ):
            reader.seek(int(start))
            assert reader.read(int(length)) == truth[start : start + length]
            target = bytearray(min(int(length), len(truth) - int(start)))
            reader.read_at(int(start), target)
            assert bytes(target) == truth[start : start + len(target)]
        assert reader.seek(-10, os.SEEK_END) == len(truth) - 10
        assert reader.read() == truth[-10:]
        assert reader.read(5) == b""


def test_index_walks_only_as_far_as_reads_go(bgzf_path, truth):
    with BgzfReader(bgzf_path) as reader:
        reader.read(348)
        assert len(reader.index) == 1
        reader.seek(2 * BLOCK_DATA_SIZE + 10)
        reader.read(10)
        assert len(reader.index) == 3
        reader.size()
        assert len(reader.index) == -(-len(truth) // BLOCK_DATA_SIZE) + 1


def test_slices_decode_only_the_blocks_they_touch(bgzf_path, monkeypatch):
    decoded = []
    original = BgzfReader._decode

    def spy(self, number, *block):
        decoded.append(number)
        return original(self, number, *block)

    monkeypatch.setattr(BgzfReader, "_decode", spy)
    with BgzfReader(bgzf_path) as reader:
        reader.seek(4 * BLOCK_DATA_SIZE - 2)
        reader.read(4)
        reader.read(100)  # the block just decoded is kept for the next small read
        assert decoded == [3, 4]
        reader.read_at(7 * BLOCK_DATA_SIZE + 1, bytearray(10))
        assert decoded == [3, 4, 7]
        reader.read(BLOCK_DATA_SIZE)  # from block 4, kept, into block 5
        assert decoded == [3, 4, 7, 5]


@pytest.fixture
def file_reads(monkeypatch):
    """Every read of a file's bytes, as (kind, offset)."""
    calls: list[tuple[str, int]] = []
    for kind in ("pread", "preadv"):
        original = getattr(os, kind)

        def spy(fd, data, offset, kind=kind, original=original):
            calls.append((kind, offset))
            return original(fd, data, offset)

        monkeypatch.setattr(os, kind, spy)
    return calls


def test_walking_the_table_reads_many_headers_at_once(tmp_path, file_reads):
    path = tmp_path / "x.gz"
    data = np.random.default_rng(3).integers(0, 9, 2_000_000, dtype=np.uint8).tobytes()
    write_bgzf(path, data)
    with BgzfReader(path) as reader:
        file_reads.clear()
        assert reader.size() == len(data)
        blocks = len(reader.index)
    assert blocks > 30
    # Each header is read from a window holding many (its trailer's ISIZE and CRC32 too).
    assert len(file_reads) <= -(-path.stat().st_size // (1 << 17)) + 1


def test_a_positioned_read_reads_its_compressed_blocks_at_once(bgzf_path, truth, file_reads):
    with BgzfReader(bgzf_path) as reader:
        reader.size()
        file_reads.clear()
        dest = bytearray(5 * BLOCK_DATA_SIZE)
        reader.read_at(BLOCK_DATA_SIZE + 7, dest)
    assert dest == truth[BLOCK_DATA_SIZE + 7 : 6 * BLOCK_DATA_SIZE + 7]
    assert len(file_reads) == 1  # six blocks' payloads, one read


def test_index_follows_the_file_it_indexes(tmp_path, truth):
    path = tmp_path / "x.gz"
    write_bgzf(path, truth)
    index = BgzfIndex()
    with BgzfReader(path, index=index) as reader:
        reader.size()
    write_bgzf(path, truth[:1000])
    with BgzfReader(path, index=index) as reader:
        assert reader.size() == 1000
        assert reader.read() == truth[:1000]


@pytest.mark.parametrize("itemsize", [1, 2, 3, 8])
def test_chunk_bounds_cover_the_range_on_element_boundaries(bgzf_path, truth, itemsize):
    start, nbytes = 352, (len(truth) - 352) // itemsize * itemsize
    with BgzfReader(bgzf_path) as reader:
        bounds = reader.chunk_bounds(start, nbytes, itemsize, blocks=2)
    assert bounds[0][0] == 0 and bounds[-1][1] == nbytes
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(lo % itemsize == 0 and hi > lo for lo, hi in bounds)
    assert len(bounds) == pytest.approx(len(truth) / (2 * BLOCK_DATA_SIZE), abs=1)


def test_reader_of_an_empty_file_and_past_the_end(tmp_path, bgzf_path, truth):
    empty = tmp_path / "empty.gz"
    empty.write_bytes(b"")
    with BgzfReader(empty) as reader:
        assert reader.read() == b""
    with BgzfReader(bgzf_path) as reader:
        with pytest.raises(TruncatedDataError, match=f"data.nii.gz: .* end at byte {len(truth)}"):
            reader.read_at(len(truth) - 4, bytearray(8))
    with pytest.raises(ValueError, match="closed BGZF reader"):
        reader.read(1)


def corrupt(path, offset: int, value: bytes):
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(value)] = value
    path.write_bytes(bytes(raw))


def test_every_block_read_is_checked(tmp_path, truth):
    path = tmp_path / "x.gz"
    write_bgzf(path, truth)
    blocks = blocks_of(path.read_bytes())
    second = len(blocks[0])
    crc_at = second + len(blocks[1]) - 8
    cases = {
        "crc": (crc_at, b"\x00\x00\x00\x00", "BGZF block 1 .*CRC32 is 0x[0-9a-f]+, expected 0x0"),
        "isize": (crc_at + 4, struct.pack("<I", BLOCK_DATA_SIZE - 2), "block 1 .*corrupt|ISIZE"),
        "payload": (second + 30, b"\xff" * 40, "BGZF block 1 .*(corrupt|CRC32)"),
    }
    for key, (offset, value, message) in cases.items():
        write_bgzf(path, truth)
        corrupt(path, offset, value)
        with BgzfReader(path) as reader:
            assert reader.read(100) == truth[:100]  # block 0 is fine
            with pytest.raises(CompressedStreamError, match=message):
                reader.read_at(BLOCK_DATA_SIZE, bytearray(10))
        assert key


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "BGZF block 1 at compressed byte .*truncated"),
        ("not-gzip", "BGZF block 1 .*expected a gzip member with an extra field"),
        ("plain-member", "BGZF block 1 .*header is 1f8b0800, expected a gzip member with an extra"),
        ("other-extra", "BGZF block 1 .*no 'BC' subfield"),
        ("bsize", "BGZF block 1 .*BSIZE is 5, expected at least"),
        ("huge-isize", "BGZF block 1 .*ISIZE is 2147483648, expected at most 65536"),
    ],
)
def test_broken_block_headers_raise_naming_file_and_block(tmp_path, truth, damage, message):
    path = tmp_path / "x.gz"
    write_bgzf(path, truth)
    raw = path.read_bytes()
    first = len(blocks_of(raw)[0])
    if damage == "truncate":
        path.write_bytes(raw[: first + 100])
    elif damage == "not-gzip":
        corrupt(path, first, b"PK\x03\x04")
    elif damage == "plain-member":
        path.write_bytes(raw[:first] + gzip.compress(b"abc"))
    elif damage == "other-extra":
        corrupt(path, first + 12, b"AP")
    elif damage == "huge-isize":  # a hostile size: the walk must not trust it for an allocation
        corrupt(path, first + len(blocks_of(raw)[1]) - 4, struct.pack("<I", 1 << 31))
    else:
        corrupt(path, first + 16, struct.pack("<H", 5))
    with BgzfReader(path, name="given.nii.gz") as reader:
        with pytest.raises(CompressedStreamError, match=f"given.nii.gz: {message}"):
            reader.size()


def test_handles_and_openers_read_bgzf_through_the_block_reader(bgzf_path, truth):
    from gpuimg.io.handles import FileHandle

    with open_image_file(bgzf_path) as f:
        assert isinstance(f, BgzfReader)
        assert f.read(1000) == truth[:1000]
    handle = FileHandle(bgzf_path, keep_file_open=False)
    for _ in range(2):  # the block table outlives each reader
        with handle.open() as f:
            assert isinstance(f, BgzfReader)
            assert f.index is handle.bgzf_index
            f.seek(500_000)
            assert f.read(10) == truth[500_000:500_010]
    assert len(handle.bgzf_index) > 1
    plain = bgzf_path.with_name("plain.nii.gz")
    plain.write_bytes(gzip.compress(truth))
    with FileHandle(plain).open() as f:
        assert isinstance(f, GzipReader)
