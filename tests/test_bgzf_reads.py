"""BGZF images through the proxy: saved on request, decoded in parallel straight into the result,
sliced block by block, checked against their headers, and read the same by the Loader."""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc

import numpy as np
import pytest

import gpuimg
from gpuimg import config
from gpuimg.errors import TruncatedDataError
from gpuimg.hostread import ScaleSink
from gpuimg.io.bgzf import BLOCK_DATA_SIZE, BgzfReader, BgzfWriter, is_bgzf_file
from gpuimg.loader import Loader
from tests.oracle import nib

SHAPE = (64, 48, 32, 6)  # int16: about 3 blocks per volume


def make_image() -> gpuimg.Nifti1Image:
    rng = np.random.default_rng(11)
    data = rng.integers(-500, 2000, SHAPE, dtype=np.int16)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(1.25, -8.0)
    return img


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("bgzf_reads")
    img = make_image()
    found = {"bgzf": root / "b.nii.gz", "single": root / "s.nii.gz"}
    gpuimg.save(img, found["bgzf"], bgzf=True)
    gpuimg.save(img, found["single"])
    return found


@pytest.fixture
def decoded(monkeypatch):
    """Every block decode, as (block number, thread id); each takes at least a millisecond, so a
    helper thread always starts before the calling thread has taken every chunk of a read."""
    calls: list[tuple[int, int]] = []
    original = BgzfReader._decode

    def spy(self, number, *block):
        calls.append((number, threading.get_ident()))
        time.sleep(0.001)
        return original(self, number, *block)

    monkeypatch.setattr(BgzfReader, "_decode", spy)
    return calls


def test_save_writes_bgzf_on_request_or_by_setting(tmp_path):
    img = make_image()
    for name, option, setting, expected in [
        ("default", None, False, False),
        ("option", True, False, True),
        ("setting", None, True, True),
        ("option-over-setting", False, True, False),
    ]:
        path = tmp_path / f"{name}.nii.gz"
        with config.configure(bgzf=setting):
            if option is None:
                img.to_filename(path)
            else:
                gpuimg.save(img, path, bgzf=option)
        assert is_bgzf_file(path) == expected, name
    pair = tmp_path / "pair.img.gz"
    gpuimg.save(gpuimg.Nifti1Pair.from_image(img), pair, bgzf=True)
    assert is_bgzf_file(pair) and is_bgzf_file(tmp_path / "pair.hdr.gz")


def test_whole_reads_match_the_single_stream_and_nibabel(paths):
    reference = nib.load(paths["single"]).get_fdata(dtype=np.float32)
    img = gpuimg.load(paths["bgzf"])
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), reference, strict=True)
    np.testing.assert_array_equal(
        img.dataobj.get_unscaled(), gpuimg.load(paths["single"]).dataobj.get_unscaled()
    )


@pytest.fixture
def threads_meet(monkeypatch, decoded):
    """While set, a block decode waits (up to 5 s) until a second thread has decoded one too, so a
    loaded machine that starts the helper late cannot let the calling thread take every block; a
    helper that never comes still fails the test."""
    meet = threading.Event()
    second_thread = threading.Event()
    spy = BgzfReader._decode

    def waiting(self, number, *block):
        result = spy(self, number, *block)
        if len({thread for _, thread in decoded}) > 1:
            second_thread.set()
        if meet.is_set() and not second_thread.wait(timeout=5):
            meet.clear()  # no helper came: wait no more, the assertion will say so
        return result

    monkeypatch.setattr(BgzfReader, "_decode", waiting)
    return meet


def test_whole_reads_decode_every_block_once_on_several_threads(paths, decoded, threads_meet):
    with config.configure(threads=2):
        img = gpuimg.load(paths["bgzf"])
        decoded.clear()  # loading decoded block 0 (sniffing, then the header)
        threads_meet.set()
        img.get_fdata(dtype=np.float32)
        threads_meet.clear()
    blocks = sorted(number for number, _ in decoded)
    assert blocks == list(range(len(blocks)))
    assert len({thread for _, thread in decoded}) == 2
    decoded.clear()
    with config.configure(threads=1):
        gpuimg.load(paths["bgzf"]).dataobj.get_unscaled()
    assert len({thread for _, thread in decoded}) == 1


def test_whole_scaled_reads_write_the_result_on_the_calling_thread(
    tmp_path, decoded, threads_meet, monkeypatch
):
    """The helper decodes; the calling thread scales into the fresh result, so the helper faults
    (next to) none of its pages: it puts a chunk only when the caller falls behind (a loaded
    machine) or both finish at once at the end. Interleaved, as before, it put about half."""
    path = tmp_path / "eight_chunks.nii.gz"
    data = np.random.default_rng(4).integers(-300, 900, (128, 128, 64, 4), dtype=np.int16)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, 3.0)
    gpuimg.save(img, path, bgzf=True)
    putters: list[int] = []
    put = ScaleSink.put

    def spy(self, start, raw):
        putters.append(threading.get_ident())
        put(self, start, raw)

    monkeypatch.setattr(ScaleSink, "put", spy)
    with config.configure(threads=2):
        loaded = gpuimg.load(path)
        decoded.clear()
        threads_meet.set()
        got = loaded.get_fdata(dtype=np.float32)
        threads_meet.clear()
    assert len({thread for _, thread in decoded}) == 2
    assert len(putters) >= 8
    assert sum(thread != threading.get_ident() for thread in putters) <= 2
    np.testing.assert_array_equal(got, data.astype(np.float32) * 0.5 + 3.0, strict=True)


@pytest.mark.parametrize("scaled", [True, False], ids=["scaled", "raw"])
def test_whole_reads_make_no_full_size_copy(tmp_path, scaled):
    path = tmp_path / "big.nii.gz"
    data = np.random.default_rng(2).integers(0, 100, (128, 128, 64, 4), dtype=np.int16)
    gpuimg.save(gpuimg.Nifti1Image(data, np.eye(4)), path, bgzf=True)
    proxy = gpuimg.load(path).dataobj
    read = (lambda: proxy.get_scaled(np.float32)) if scaled else proxy.get_unscaled
    read()  # the staging pool is warm
    tracemalloc.start()
    try:
        out = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - out.nbytes < out.nbytes / 4


def test_slices_decode_only_the_blocks_they_touch(paths, decoded):
    img = gpuimg.load(paths["bgzf"], keep_file_open=False)
    decoded.clear()
    reference = nib.load(paths["single"]).dataobj
    volume = int(np.prod(SHAPE[:3])) * 2  # bytes per volume
    np.testing.assert_array_equal(img.dataobj[..., 4], reference[..., 4])
    first, last = (352 + 4 * volume) // BLOCK_DATA_SIZE, (352 + 5 * volume - 1) // BLOCK_DATA_SIZE
    assert sorted(n for n, _ in decoded) == list(range(first, last + 1))
    decoded.clear()
    np.testing.assert_array_equal(img.dataobj[10, 5:9, 3, 1], reference[10, 5:9, 3, 1])
    assert len(decoded) == 1
    with img.dataobj._handle.open() as f:  # headers walked only as far as volume 4 ends
        assert len(f.index) == last + 1


def test_a_header_promising_more_than_the_blocks_hold(tmp_path, paths):
    raw = nib.load(paths["single"])
    short = tmp_path / "short.nii.gz"
    with BgzfWriter(short) as writer:
        writer.write(gzip.decompress(paths["single"].read_bytes())[:-100])
    img = gpuimg.load(short)
    with pytest.raises(TruncatedDataError, match="short.nii.gz: data block holds"):
        img.get_fdata()
    np.testing.assert_array_equal(img.dataobj[..., 0], raw.dataobj[..., 0])
    with pytest.raises(TruncatedDataError, match="short.nii.gz"):
        img.dataobj[..., -1]


def test_loader_reads_bgzf_through_the_block_reader(paths, decoded):
    with Loader([paths["bgzf"], paths["single"]], batch_size=2, num_threads=1) as loader:
        (batch,) = list(loader)
    assert decoded
    np.testing.assert_array_equal(batch[0], batch[1])
