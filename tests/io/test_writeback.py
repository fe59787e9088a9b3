"""Durable saves start the writeback of their bytes while writing them; nothing else changes."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import gpuimg
from gpuimg import config
from gpuimg.io import atomic, writeback
from gpuimg.io.writeback import WINDOW, EarlyWriteback

NBYTES = 4 * WINDOW + 12_345


def _image() -> gpuimg.Nifti1Image:
    """An int16 image of about ``NBYTES`` of random (incompressible) data."""
    rng = np.random.default_rng(0)
    data = rng.integers(-(2**15), 2**15, (NBYTES // 2 // 4096, 64, 64), dtype=np.int16)
    return gpuimg.Nifti1Image(data, np.eye(4))


class _Recorder:
    """A stand-in for ``sync_file_range``: records each call, checks it, answers ``result``."""

    def __init__(self, result: int = 0) -> None:
        self.result = result
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, fd: int, offset: int, nbytes: int, flags: int) -> int:
        assert flags == 2  # SYNC_FILE_RANGE_WRITE: start, never wait
        assert os.fstat(fd).st_size >= offset + nbytes  # only bytes already written
        self.calls.append((fd, offset, nbytes))
        return self.result


@pytest.fixture
def recorder(monkeypatch) -> _Recorder:
    recorder = _Recorder()
    monkeypatch.setattr(writeback, "_sync_file_range", lambda: recorder)
    return recorder


@pytest.mark.parametrize("name", ["out.nii", "out.nii.gz", "out.img"])
def test_a_durable_save_starts_writeback_of_each_whole_window(tmp_path, recorder, name):
    image = _image()
    gpuimg.save(image, str(tmp_path / name))
    written = os.path.getsize(tmp_path / name)
    assert len({fd for fd, _, _ in recorder.calls}) == 1
    ends = [0] + [offset + nbytes for _, offset, nbytes in recorder.calls]
    assert [offset for _, offset, _ in recorder.calls] == ends[:-1]  # in order, each byte once
    assert all(nbytes % WINDOW == 0 for _, _, nbytes in recorder.calls)
    assert ends[-1] == written - written % WINDOW
    np.testing.assert_array_equal(gpuimg.load(tmp_path / name).get_fdata(), image.get_fdata())


def test_no_writeback_without_fsync(tmp_path, recorder):
    with config.configure(fsync=False):
        gpuimg.save(_image(), str(tmp_path / "out.nii"))
    assert recorder.calls == []


def test_small_saves_ask_nothing(tmp_path, recorder):
    gpuimg.save(gpuimg.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)), tmp_path / "a.nii")
    assert recorder.calls == []


@pytest.mark.parametrize("result", [-1, None], ids=["fails", "unavailable"])
def test_a_failing_or_missing_call_changes_nothing_but_the_fsync_stays(
    tmp_path, monkeypatch, result
):
    failing = _Recorder(result=-1)
    monkeypatch.setattr(writeback, "_sync_file_range", lambda: failing if result else None)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    image = _image()
    gpuimg.save(image, str(tmp_path / "out.nii"))
    assert len(failing.calls) == (1 if result else 0)  # a file that refuses is not asked again
    assert len(synced) == 2  # the file and its folder
    np.testing.assert_array_equal(gpuimg.load(tmp_path / "out.nii").get_fdata(), image.get_fdata())


def test_the_bytes_are_those_of_a_save_without_fsync(tmp_path):
    image = _image()
    gpuimg.save(image, str(tmp_path / "durable.nii"))
    with config.configure(fsync=False):
        gpuimg.save(image, str(tmp_path / "scratch.nii"))
    assert (tmp_path / "durable.nii").read_bytes() == (tmp_path / "scratch.nii").read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_real_call_is_found_and_takes_a_file(tmp_path):
    assert writeback._sync_file_range() is not None
    with open(tmp_path / "f", "wb", buffering=0) as f:
        early = EarlyWriteback(f.fileno(), window=4096)
        early.wrote(f.write(bytes(3 * 4096 + 1)))
        early.wrote(f.write(bytes(4095)))
    assert (early.written, early.started) == (4 * 4096, 4 * 4096)
