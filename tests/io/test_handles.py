"""Tests for gpuimg.io.handles: picklable, thread-safe file handles."""

from __future__ import annotations

import gc
import gzip
import io
import os
import pickle
import threading

import numpy as np
import pytest

from gpuimg import config
from gpuimg.io.handles import FileHandle, open_files_count
from gpuimg.io.openers import GzipReader
from gpuimg.io.positioned import ReadableFile


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


def test_by_default_the_file_is_kept_while_few_are(path, truth):
    handle = FileHandle(path)
    assert handle.keep_file_open is None
    with handle.open() as first:
        first.seek(0)
        first.read(10)
    with handle.open() as second:
        assert second is first and not first.closed
    with config.configure(open_files=0):  # none kept: closed now, and a new file each time
        assert first.closed
        with handle.open() as third:
            assert third is not first
        assert third.closed


def _used(handle: FileHandle) -> ReadableFile:
    with handle.open() as fileobj:
        fileobj.seek(0)
        fileobj.read(4)
    return fileobj


def test_files_kept_by_default_are_bounded_least_recently_used_first(path, truth):
    with config.configure(open_files=2):
        handles = [FileHandle(path) for _ in range(4)]
        files = [_used(handle) for handle in handles]
        assert [f.closed for f in files] == [True, True, False, False]
        assert open_files_count() == 2
        _used(handles[2])  # now the most recent: handles[3] is the oldest
        reopened = _used(handles[0])
        assert files[3].closed and not files[2].closed and not reopened.closed
        with handles[0].open() as f:
            f.seek(100)
            assert f.read(8) == truth[100:108]
        for handle in handles:
            handle.close()
        assert open_files_count() == 0


def test_files_kept_on_request_are_never_closed_by_the_bound(path):
    with config.configure(open_files=1):
        kept = [FileHandle(path, keep_file_open=True) for _ in range(3)]
        kept_files = [_used(handle) for handle in kept]
        auto_files = [_used(FileHandle(path)) for _ in range(2)]
        assert not any(f.closed for f in kept_files)
        assert auto_files[0].closed
        for handle in kept:
            handle.close()


def test_a_file_in_use_is_not_closed_by_the_bound(path, truth):
    with config.configure(open_files=1):
        first, second = FileHandle(path), FileHandle(path)
        with first.open() as f:
            _used(second)  # over the bound, but the first file is being read
            f.seek(20)
            assert f.read(4) == truth[20:24]
        assert open_files_count() <= 2
        _used(second)
        assert f.closed and open_files_count() == 1
        second.close()


def test_a_default_kept_file_busy_in_another_thread_gives_a_new_descriptor(path):
    handle = FileHandle(path)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with handle.open():
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(30)
        with handle.open_descriptor() as fd:  # whole reads of a default handle run side by side
            assert os.pread(fd, 2, 0)
    finally:
        release.set()
        thread.join()
    handle.close()


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
