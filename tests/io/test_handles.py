"""Tests for gpuimg.io.handles: picklable, thread-safe file handles."""

from __future__ import annotations

import gc
import gzip
import io
import pickle
import threading

import numpy as np
import pytest

from gpuimg.io.handles import KEEP_FILE_OPEN_DEFAULT, FileHandle
from gpuimg.io.openers import GzipReader


@pytest.fixture(scope="module")
def truth() -> bytes:
    return np.random.default_rng(3).integers(0, 50, 200_000, dtype=np.int16).tobytes()


@pytest.fixture(params=["plain", "gzip"])
def path(request, tmp_path, truth):
    if request.param == "plain":
        target = tmp_path / "data.nii"
        target.write_bytes(truth)
    else:
        target = tmp_path / "data.nii.gz"
        target.write_bytes(gzip.compress(truth, 1))
    return target


def test_default_is_not_to_keep_files_open(path):
    assert KEEP_FILE_OPEN_DEFAULT is False
    assert FileHandle(path, keep_file_open=None).keep_file_open is False


def test_new_file_each_time_when_not_kept(path, truth):
    handle = FileHandle(path, keep_file_open=False)
    with handle.open() as first:
        first.seek(10)
        assert first.read(4) == truth[10:14]
    assert first.closed
    with handle.open() as second:
        assert second is not first
    assert handle.name == str(path)


def test_one_file_for_the_lifetime_when_kept(path, truth):
    handle = FileHandle(path, keep_file_open=True)
    with handle.open() as first:
        first.seek(0)
        first.read(100)
    with handle.open() as second:
        assert second is first and not first.closed
        second.seek(len(truth) - 3)
        assert second.read() == truth[-3:]
    handle.close()
    assert first.closed
    with handle, handle.open() as reopened:  # usable again after close
        assert reopened is not first
    assert reopened.closed


def test_gzip_index_persists_across_reopens(tmp_path, truth):
    target = tmp_path / "data.nii.gz"
    target.write_bytes(gzip.compress(truth, 1))
    handle = FileHandle(target, keep_file_open=False)
    index = handle.gzip_index
    with handle.open() as f:
        assert isinstance(f, GzipReader) and f.index is index
        f.read()
    assert index.uncompressed_size == len(truth)  # what the first reader learnt
    with handle.open() as f:
        assert f.index is index
        f.seek(len(truth) - 8)
        assert f.read() == truth[-8:]
    assert FileHandle(tmp_path / "x.nii", keep_file_open=False).gzip_index is None


def test_caller_file_object_is_used_as_is_and_left_open(truth):
    fileobj = io.BytesIO(truth)
    for keep in (True, False):
        handle = FileHandle(fileobj, keep_file_open=keep)
        with handle.open() as f:
            assert f is fileobj
        handle.close()
        assert not fileobj.closed
    assert FileHandle(fileobj, keep_file_open=False).name.startswith("<_io.BytesIO")


@pytest.mark.parametrize("keep", [True, False, None])
def test_pickles_as_path_and_keep_file_open(path, truth, keep):
    handle = FileHandle(path, keep_file_open=keep)
    with handle.open() as f:
        f.seek(0)
        f.read()
    clone = pickle.loads(pickle.dumps(handle))
    assert clone.name == handle.name and clone.keep_file_open == handle.keep_file_open
    assert clone._kept is None
    if clone.gzip_index is not None:
        assert clone.gzip_index is not handle.gzip_index and len(clone.gzip_index) == 0
    with clone.open() as f:
        f.seek(5)
        assert f.read(6) == truth[5:11]
    handle.close()
    clone.close()


def test_unreferenced_handle_closes_its_kept_file(path):
    handle = FileHandle(path, keep_file_open=True)
    with handle.open() as f:
        pass
    del handle
    gc.collect()
    assert f.closed


@pytest.mark.parametrize("keep", [True, False])
def test_threads_share_a_handle_safely(path, truth, keep):
    handle = FileHandle(path, keep_file_open=keep)
    failures = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(30):
            pos, n = int(rng.integers(0, len(truth))), int(rng.integers(1, 3000))
            with handle.open() as f:
                f.seek(pos)
                if f.read(n) != truth[pos : pos + n]:
                    failures.append((pos, n))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handle.close()
    assert not failures
