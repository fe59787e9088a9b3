"""Tests for gpuimg.io.openers and the gzip readers behind it (gzipstream: backends; gzipseek: the
seekable reader and its index)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tracemalloc

import numpy as np
import pytest

from gpuimg.errors import CompressedStreamError
from gpuimg.io import gzipseek, gzipstream, openers
from gpuimg.io.openers import (
    GzipIndex,
    GzipReader,
    available_gzip_backends,
    gzip_backend,
    gzip_uncompressed_size,
    is_gzip_path,
    open_image_file,
    open_sequential,
)

BACKENDS = available_gzip_backends()
STREAM_ENGINES = [b for b in ("zlib", "zlib-ng") if b in BACKENDS]
SPACING = 64 * 1024


@pytest.fixture(scope="module")
def truth() -> bytes:
    """About 1 MB of int16-like data that compresses roughly 2x."""
    rng = np.random.default_rng(42)
    return rng.integers(0, 300, 500_000, dtype=np.int16).tobytes()


@pytest.fixture(scope="module")
def gz_files(tmp_path_factory, truth):
    root = tmp_path_factory.mktemp("gz")
    third = len(truth) // 3
    variants = {
        "single": gzip.compress(truth, 1),
        "multi": b"".join(
            gzip.compress(truth[i : i + third], 6) for i in range(0, len(truth), third)
        ),
        "padded": gzip.compress(truth, 1) + b"\x00" * 100,
    }
    paths = {}
    for key, data in variants.items():
        paths[key] = root / f"{key}.nii.gz"
        paths[key].write_bytes(data)
    return paths


def write_variant(tmp_path, data: bytes, name: str = "bad.nii.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


class CountingFile(io.BytesIO):
    """BytesIO that counts the compressed bytes read from it."""

    count = 0

    def read(self, size=-1):
        data = super().read(size)
        self.count += len(data)
        return data


# -- open_sequential -------------------------------------------------------------------------------


def decompress_into(path, out) -> int:
    """Fill ``out`` from a sequential reader of ``path``; the count, checking the trailer if it all fits."""
    dest = memoryview(out).cast("B")
    filled = 0
    with open_sequential(path) as reader:
        while filled < dest.nbytes:
            n = reader.readinto(dest[filled:])
            if not n:
                return filled
            filled += n
        reader.read(1)
    return filled


@pytest.fixture(params=["direct", "gzipfile"])
def reader_kind(request, monkeypatch) -> str:
    """Read through isal's / zlib-ng's C reader where present, or (as without it) their GzipFile."""
    if request.param == "gzipfile":
        monkeypatch.setattr(gzipstream, "_DIRECT_READERS", {})
    return request.param


def test_the_c_reader_is_used_where_present(gz_files):
    """isal (a dependency) has the C reader here; a release without it would lose the fast path."""
    assert "isal" in gzipstream._DIRECT_READERS
    with gzip_backend("isal"), open_sequential(gz_files["single"]) as reader:
        assert isinstance(reader._reader, io.BufferedReader)
    with gzip_backend("zlib"), open_sequential(gz_files["single"]) as reader:
        assert isinstance(reader._reader, gzip.GzipFile)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["single", "multi", "padded"])
def test_every_backend_gives_identical_bytes(backend, variant, gz_files, truth, reader_kind):
    out = np.zeros(len(truth), np.uint8)
    with gzip_backend(backend):
        assert openers.get_gzip_backend() == backend
        assert decompress_into(gz_files[variant], out) == len(truth)
    assert out.tobytes() == truth


@pytest.mark.parametrize("backend", BACKENDS)
def test_buffer_sizes_shorter_and_longer_than_stream(backend, gz_files, truth):
    with gzip_backend(backend):
        short = bytearray(1000)
        assert decompress_into(gz_files["multi"], short) == 1000
        assert bytes(short) == truth[:1000]
        long = np.full(len(truth) + 50, 255, np.uint8)
        assert decompress_into(gz_files["single"], long) == len(truth)
        assert long[: len(truth)].tobytes() == truth
        assert decompress_into(gz_files["single"], bytearray()) == 0


CORRUPTIONS = ["body", "crc", "isize", "garbage_after", "cut_half", "cut_trailer", "cut_header"]
CORRUPTIONS += ["lone_magic_after"]


def corruptions(data: bytes) -> dict[str, bytes]:
    body = bytearray(data)
    for position in range(len(data) // 3, len(data) // 3 + 40, 4):
        body[position] ^= 0x5A
    crc, size = bytearray(data), bytearray(data)
    crc[-8] ^= 1
    size[-1] ^= 1
    return {
        "body": bytes(body),
        "crc": bytes(crc),
        "isize": bytes(size),
        "garbage_after": data + b"not gzip",
        "cut_half": data[: len(data) // 2],
        "cut_trailer": data[:-3],
        "cut_header": data[:6],
        "lone_magic_after": data + b"\x1f",
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_or_truncated_stream_raises_naming_file(
    backend, kind, tmp_path, truth, reader_kind
):
    path = write_variant(tmp_path, corruptions(gzip.compress(truth, 1))[kind])
    out = np.zeros(len(truth), np.uint8)
    with gzip_backend(backend), pytest.raises(CompressedStreamError, match="bad.nii.gz"):
        decompress_into(path, out)


@pytest.mark.parametrize("engine", STREAM_ENGINES)
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_reader_raises_on_corrupt_or_truncated_stream(engine, kind, tmp_path, truth):
    path = write_variant(tmp_path, corruptions(gzip.compress(truth, 1))[kind])
    with gzip_backend(engine), GzipReader(path) as reader:
        with pytest.raises(CompressedStreamError, match="bad.nii.gz"):
            reader.read()


def test_hostile_isize_allocates_nothing_large(tmp_path, truth):
    data = bytearray(gzip.compress(truth, 1))
    data[-4:] = b"\xff\xff\xff\xff"
    path = write_variant(tmp_path, bytes(data))
    assert gzip_uncompressed_size(path) == 2**32 - 1
    out = np.zeros(len(truth), np.uint8)
    for backend in BACKENDS:
        tracemalloc.start()
        try:
            with gzip_backend(backend), pytest.raises(CompressedStreamError):
                decompress_into(path, out)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * len(truth), backend


def test_uncompressed_size_hint(gz_files, tmp_path, truth):
    assert gzip_uncompressed_size(gz_files["single"]) == len(truth)
    assert gzip_uncompressed_size(write_variant(tmp_path, b"\x1f\x8b")) == 0


def test_empty_file_is_an_empty_stream(tmp_path):
    path = write_variant(tmp_path, b"", "empty.gz")
    for backend in BACKENDS:
        with gzip_backend(backend):
            assert decompress_into(path, bytearray(10)) == 0
    with GzipReader(path) as reader:
        assert reader.read() == b""


def test_backend_selection():
    assert openers.get_gzip_backend() == BACKENDS[0]
    with pytest.raises(ValueError, match="gzip_backend is .snappy."):
        openers.set_gzip_backend("snappy")
    with gzip_backend("zlib"):
        with gzip_backend(None):
            assert openers.get_gzip_backend() == BACKENDS[0]
        assert openers.get_gzip_backend() == "zlib"


# -- GzipReader ------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", STREAM_ENGINES)
@pytest.mark.parametrize("variant", ["single", "multi", "padded"])
def test_reader_random_seeks_match_truth(engine, variant, gz_files, truth):
    rng = np.random.default_rng(1)
    with gzip_backend(engine), GzipReader(gz_files[variant], checkpoint_spacing=SPACING) as reader:
        for _ in range(60):
            pos = int(rng.integers(0, len(truth) + 100))
            n = int(rng.integers(0, 70_000))
            assert reader.seek(pos) == pos and reader.tell() == pos
            if rng.random() < 0.5:
                assert reader.read(n) == truth[pos : pos + n]
            else:
                buf = bytearray(n)
                got = reader.readinto(buf)
                assert bytes(buf[:got]) == truth[pos : pos + n]
            assert reader.tell() == max(pos, min(pos + n, len(truth)))
        assert reader.seek(-10, os.SEEK_END) == len(truth) - 10
        assert reader.read() == truth[-10:]
        reader.seek(100)
        reader.seek(-40, os.SEEK_CUR)
        assert reader.read(5) == truth[60:65]
        assert reader.index.uncompressed_size == len(truth)


def test_reader_reads_all_with_read_none_and_readall(gz_files, truth):
    with GzipReader(gz_files["multi"]) as reader:
        assert reader.read(None) == truth
        assert reader.readinto(bytearray(5)) == 0
        reader.seek(0)
        assert reader.readall() == truth


def test_header_read_decompresses_little(truth):
    big = truth * 4
    raw = CountingFile(gzip.compress(big, 1))
    with GzipReader(raw, name="big.nii.gz") as reader:
        assert reader.read(352) == big[:352]
        assert raw.count <= gzipseek._INPUT_CHUNK
    assert not raw.closed  # a caller's file object is left open


def test_backward_seek_costs_at_most_one_spacing(truth):
    compressed = gzip.compress(truth, 1)
    raw = CountingFile(compressed)
    with GzipReader(raw, checkpoint_spacing=SPACING) as reader:
        reader.read()
        assert len(reader.index) >= len(truth) // SPACING - 1
        for pos in (len(truth) - 1000, 5000, len(truth) // 2):
            raw.count = 0
            reader.seek(pos)
            assert reader.read(100) == truth[pos : pos + 100]
            # one spacing of compressed input, plus one input chunk of slack
            assert raw.count < len(compressed) * SPACING / len(truth) + 2 * gzipseek._INPUT_CHUNK


def test_index_outlives_reader_and_is_shared(gz_files, truth):
    index = GzipIndex(SPACING)
    with GzipReader(gz_files["single"], index=index) as reader:
        reader.read()
    assert len(index) > 0 and index.uncompressed_size == len(truth)
    with GzipReader(gz_files["single"], index=index) as again:
        assert again.index is index
        assert again.seek(0, os.SEEK_END) == len(truth)  # known: no decompression
        again.seek(len(truth) - 20)
        assert again.read() == truth[-20:]
    clone = pickle.loads(pickle.dumps(index))
    assert len(clone) == 0 and clone.spacing == SPACING and clone.uncompressed_size is None


def test_index_forgets_a_rewritten_file(tmp_path, truth):
    path = write_variant(tmp_path, gzip.compress(truth, 1), "changing.nii.gz")
    index = GzipIndex(SPACING)
    with GzipReader(path, index=index) as reader:
        reader.read()
    other = truth[::-1] + b"extra"
    path.write_bytes(gzip.compress(other, 6))
    with GzipReader(path, index=index) as reader:
        reader.seek(len(other) - 100)
        assert reader.read() == other[-100:]
    assert index.uncompressed_size == len(other)


def test_reader_misuse(gz_files):
    reader = GzipReader(gz_files["single"])
    with pytest.raises(ValueError, match="negative"):
        reader.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        reader.seek(0, 3)
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(reader)
    assert reader.readable() and reader.seekable()
    reader.close()
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)
    with pytest.raises(ValueError, match="spacing"):
        GzipIndex(0)


# -- opening ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [1, 3, 6])
def test_gzip_writer_is_standard_and_deterministic(tmp_path, truth, level):
    outputs = []
    for name in ("a.nii.gz", "b.nii.gz"):
        with open_image_file(tmp_path / name, "wb", compresslevel=level) as f:
            f.write(truth)
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0][3] == 0 and outputs[0][4:8] == b"\0\0\0\0"  # no name, mtime 0
    assert gzip.decompress(outputs[0]) == truth
    with open_image_file(tmp_path / "a.nii.gz") as f:
        assert isinstance(f, GzipReader) and f.read() == truth


def test_plain_files_and_mode_checks(tmp_path):
    path = tmp_path / "plain.nii"
    with open_image_file(path, "wb") as f:
        f.write(b"hello")
    with open_image_file(path) as f:
        buf = bytearray(5)
        assert f.readinto(buf) == 5 and bytes(buf) == b"hello"
    with pytest.raises(ValueError, match="mode"):
        open_image_file(path, "r+b")
    with pytest.raises(ValueError, match="compresslevel"):
        open_image_file(tmp_path / "x.gz", "wb", compresslevel=11)
    with pytest.raises(FileNotFoundError):
        open_image_file(tmp_path / "missing.nii.gz")


def test_is_gzip_path(tmp_path):
    assert is_gzip_path("a.nii.gz") and is_gzip_path(tmp_path / "A.NII.GZ")
    assert not is_gzip_path("a.nii") and not is_gzip_path(io.BytesIO())


def test_a_closed_reader_leaves_a_resume_point(truth):
    data = gzip.compress(truth, 1)
    index = GzipIndex(spacing=1 << 30)  # no regular checkpoints: only the resume point can help
    first = CountingFile(data)
    with GzipReader(first, index=index) as reader:
        reader.seek(600_000)
        assert reader.read(1000) == truth[600_000:601_000]
    second = CountingFile(data)
    with GzipReader(second, index=index) as reader:
        reader.seek(601_000)
        assert reader.read(1000) == truth[601_000:602_000]
    assert second.count < first.count / 4
    third = CountingFile(data)
    with GzipReader(third, index=index) as reader:
        reader.seek(10)  # before the resume point: from the start again, still correct
        assert reader.read(100) == truth[10:110]


def test_read_ahead_serves_the_next_read_from_memory(truth):
    data = gzip.compress(truth, 1)
    index = GzipIndex(spacing=1 << 30)
    with GzipReader(CountingFile(data), index=index) as reader:
        reader.seek(100_000)
        assert reader.read(1000) == truth[100_000:101_000]  # read() does no read-ahead
        out = bytearray(5000)
        assert reader.readinto(out) == 5000 and bytes(out) == truth[101_000:106_000]
    following = CountingFile(data)
    with GzipReader(following, index=index) as reader:
        reader.seek(106_000)
        out = bytearray(20_000)
        assert reader.readinto(out) == 20_000
        assert bytes(out) == truth[106_000:126_000]
    assert following.count == 0, "the bytes after the last read come from the index's window"
    with GzipReader(CountingFile(data), index=index) as reader:
        reader.seek(len(truth) - 10)
        out = bytearray(50)
        assert reader.readinto(out) == 10 and bytes(out[:10]) == truth[-10:]


def test_gzip_indexes_stay_under_the_memory_cap_and_rebuild(gz_files, truth, monkeypatch):
    """Indexes over ``gzip_index_bytes`` are emptied least recently used first; reads stay right.

    The index being read is never emptied by its own report, so the cap is at least one index.
    """
    full = GzipIndex(SPACING, window=0)
    with GzipReader(gz_files["single"], index=full) as reader:
        reader.read()
    assert full.nbytes >= 3 * gzipseek._CHECKPOINT_BYTES  # a full index holds several checkpoints
    monkeypatch.setattr(gzipseek.settings, "gzip_index_bytes", full.nbytes * 3 // 2)
    indexes = [GzipIndex(SPACING, window=0) for _ in range(3)]
    for index in indexes:
        with GzipReader(gz_files["single"], index=index) as reader:
            assert reader.read() == truth
        assert gzipseek._index_memory.total() <= gzipseek.settings.gzip_index_bytes
    assert len(full) == 0 and len(indexes[0]) == 0 and len(indexes[-1]) > 0  # oldest went first
    with GzipReader(gz_files["single"], index=indexes[0]) as reader:  # rebuilds transparently
        reader.seek(len(truth) - 100)
        assert reader.read() == truth[-100:]
    assert len(indexes[0]) > 0
    assert gzipseek._index_memory.total() <= gzipseek.settings.gzip_index_bytes
