"""Settings and the process-wide helper-thread budget that concurrent reads share."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpuimg
from gpuimg import config
from tests.oracle import FORMATS, nib, write_with_nibabel


def test_configure_restores_and_rejects_unknown_names():
    before = config.settings.threads
    with config.configure(threads=before + 3):
        assert config.settings.threads == before + 3
    assert config.settings.threads == before
    with pytest.raises(TypeError, match="unknown gpuimg settings"), config.configure(cores=2):
        pass


def test_a_read_alone_gets_every_free_core():
    with config.configure(threads=4), config.claim_helpers(8) as helpers:
        assert helpers == 3


def test_reads_at_the_same_time_share_the_budget():
    with config.configure(threads=4):
        with config.claim_helpers(1) as first:  # 2 of 4 threads busy
            with config.claim_helpers(8) as second:  # this thread + 1 helper
                assert (first, second) == (1, 1)
                with config.claim_helpers(8) as third:
                    assert third == 0
        with config.claim_helpers(8) as again:  # everything was given back
            assert again == 3


def test_a_failed_read_gives_its_helpers_back():
    with config.configure(threads=2):
        with pytest.raises(RuntimeError), config.claim_helpers(1) as helpers:
            assert helpers == 1
            raise RuntimeError("read failed")
        with config.claim_helpers(1) as helpers:
            assert helpers == 1


def test_threads_1_reads_without_helper_threads(tmp_path, monkeypatch):
    """With no helper granted, a gzip read decompresses and scales on the calling thread only."""
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("i2"), (40, 30, 20), big_endian=False, scaled=True, gz=True
    )
    monkeypatch.setattr(gpuimg.arrayproxy, "PIPELINE_CHUNK_BYTES", 4096)
    submitted = []
    real_executor = config.executor

    class CountingExecutor:
        def submit(self, *args, **kwargs):
            submitted.append(threading.current_thread().name)
            return real_executor().submit(*args, **kwargs)

    monkeypatch.setattr(gpuimg.arrayproxy, "executor", CountingExecutor)
    expected = nib.load(path).get_fdata(dtype=np.float32)
    with config.configure(threads=1):
        got = gpuimg.load(path).get_fdata(dtype=np.float32)
    assert submitted == []
    with config.configure(threads=2):
        again = gpuimg.load(path).get_fdata(dtype=np.float32)
    assert len(submitted) == 1  # one helper read the chunks ahead
    np.testing.assert_array_equal(got, expected, strict=True)
    np.testing.assert_array_equal(again, expected, strict=True)
