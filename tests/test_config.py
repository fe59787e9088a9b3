"""Settings and the process-wide helper-thread budget that concurrent reads share."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import gpuimg
from gpuimg import config, device
from gpuimg.io import openers
from tests.oracle import FORMATS, nib, write_with_nibabel


def test_configure_restores_and_rejects_unknown_names():
    before = config.settings.threads
    with config.configure(threads=before + 3):
        assert config.settings.threads == before + 3
    assert config.settings.threads == before
    with pytest.raises(TypeError, match="unknown gpuimg settings"), config.configure(cores=2):
        pass
    with pytest.raises(TypeError, match="unknown gpuimg settings"):
        config.settings.cores = 2


def test_configure_restores_on_an_exception():
    before = (config.settings.fsync, config.settings.compresslevel)
    with (
        pytest.raises(RuntimeError, match="inside"),
        config.configure(fsync=False, compresslevel=7),
    ):
        assert (config.settings.fsync, config.settings.compresslevel) == (False, 7)
        raise RuntimeError("inside")
    assert (config.settings.fsync, config.settings.compresslevel) == before


def test_configure_without_with_changes_the_setting(monkeypatch):
    monkeypatch.setattr(config.settings, "compresslevel", config.settings.compresslevel)
    config.configure(compresslevel=4)
    assert config.settings.compresslevel == 4


#: Each setting with a value it accepts and values it refuses.
VALUES = {
    "threads": (3, [0, -1, 2.0, "2", True]),
    "bgzf": (True, [1, "yes", None]),
    "compresslevel": (9, [-1, 10, 1.5]),
    "fsync": (False, [0, "false"]),
    "pipeline_chunk_bytes": (4096, [0, 1.0]),
    "pipeline_slots": (2, [0]),
    "pinned_buffer_size": (1024, [15, 0]),
    "pinned_max_buffers": (2, [0]),
    "gzip_backend": ("zlib", ["snappy", "", 3]),
    "checkpoint_spacing": (1 << 16, [0, -5]),
    "window_bytes": (0, [-1, None]),
    "gzip_index_bytes": (1 << 20, [-1, 1.5]),
    "open_files": (4, [-1, 2.5, None]),
}


def test_every_setting_has_validator_cases():
    assert set(VALUES) == set(config.OPTIONS)


@pytest.mark.parametrize(
    ("name", "bad"), [(name, bad) for name, (_, bads) in VALUES.items() for bad in bads]
)
def test_a_refused_value_says_expected_and_found_and_changes_nothing(name, bad):
    before = {n: getattr(config.settings, n) for n in config.OPTIONS}
    good = VALUES[name][0]
    message = f"gpuimg setting {name} is {bad!r}, expected "
    other = "compresslevel" if name == "threads" else "threads"  # a good value set alongside
    with pytest.raises(ValueError) as raised, config.configure(**{other: 5, name: bad}):
        pass
    assert str(raised.value).startswith(message), raised.value
    with pytest.raises(ValueError, match="expected"):
        setattr(config.settings, name, bad)
    assert {n: getattr(config.settings, n) for n in config.OPTIONS} == before
    with config.configure(**{name: good}):
        assert getattr(config.settings, name) == good
    assert getattr(config.settings, name) == before[name]


def test_integers_are_stored_as_int():
    with config.configure(threads=np.int64(3)):
        assert type(config.settings.threads) is int


def test_environment_variables_are_parsed_and_checked():
    found = config.from_environment(
        {
            "GPUIMG_THREADS": "3",
            "GPUIMG_FSYNC": "off",
            "GPUIMG_BGZF": "Yes",
            "GPUIMG_GZIP_BACKEND": "zlib",
            "GPUIMG_NOT_A_SETTING": "1",
            "PATH": "/bin",
        }
    )
    assert found == {"threads": 3, "bgzf": True, "fsync": False, "gzip_backend": "zlib"}
    assert config.from_environment({"GPUIMG_GZIP_BACKEND": ""}) == {"gzip_backend": None}
    for variable, text in [
        ("GPUIMG_THREADS", "many"),
        ("GPUIMG_THREADS", "0"),
        ("GPUIMG_FSYNC", "maybe"),
        ("GPUIMG_COMPRESSLEVEL", "12"),
    ]:
        with pytest.raises(
            ValueError, match=f"environment variable {variable} is '{text}', expected"
        ):
            config.from_environment({variable: text})


def _import_with(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from gpuimg import config; print(config.settings.threads, config.settings.fsync)"
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environment, "PYTHONPATH": ":".join(sys.path)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_reads_the_environment():
    done = _import_with({"GPUIMG_THREADS": "5", "GPUIMG_FSYNC": "0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "False"]
    refused = _import_with({"GPUIMG_THREADS": "lots"})
    assert refused.returncode != 0
    assert (
        "environment variable GPUIMG_THREADS is 'lots', expected an integer >= 1" in refused.stderr
    )


def test_the_helper_pool_follows_threads():
    """``threads`` helpers can all run at once: the pool is not capped below the setting."""
    helpers = 11
    with config.configure(threads=helpers + 1):
        barrier = threading.Barrier(helpers, timeout=10)
        jobs = [config.executor().submit(barrier.wait) for _ in range(helpers)]
        assert sorted(job.result() for job in jobs) == list(range(helpers))
    with config.configure(threads=3):
        names = set()
        barrier = threading.Barrier(2, timeout=10)

        def named() -> None:
            barrier.wait()
            names.add(threading.current_thread().name)

        for job in [config.executor().submit(named) for _ in range(2)]:
            job.result()
        assert len(names) == 2
        assert config.executor() is config.executor()  # reused while threads stays the same


def test_the_default_pinned_pool_follows_the_settings():
    before = device.default_pinned_pool().stats()
    with config.configure(pinned_buffer_size=4096, pinned_max_buffers=2):
        stats = device.default_pinned_pool().stats()
        assert (stats.buffer_size, stats.max_buffers) == (4096, 2)
    stats = device.default_pinned_pool().stats()
    assert (stats.buffer_size, stats.max_buffers) == (before.buffer_size, before.max_buffers)
    with config.configure():
        device.set_pinned_pool_limits(max_buffers=3)
        assert config.settings.pinned_max_buffers == 3
        assert config.settings.pinned_buffer_size == before.buffer_size
        with pytest.raises(ValueError, match="pinned_buffer_size is 8, expected"):
            device.set_pinned_pool_limits(buffer_size=8)
    device.set_pinned_pool_limits(max_buffers=before.max_buffers)


def test_gzip_backend_and_index_sizes_come_from_the_settings():
    with openers.gzip_backend("zlib"):
        assert config.settings.gzip_backend == "zlib"
    assert config.settings.gzip_backend is None
    with config.configure(gzip_backend="zlib"):
        assert openers.get_gzip_backend() == "zlib"
    with config.configure(checkpoint_spacing=1 << 16, window_bytes=1 << 12):
        index = openers.GzipIndex()
        assert (index.spacing, index.window) == (1 << 16, 1 << 12)


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
    monkeypatch.setattr(gpuimg.config.settings, "pipeline_chunk_bytes", 4096)
    submitted = []
    real_executor = config.executor

    class CountingExecutor:
        def submit(self, *args, **kwargs):
            submitted.append(threading.current_thread().name)
            return real_executor().submit(*args, **kwargs)

    monkeypatch.setattr(gpuimg.io.pipeline, "executor", CountingExecutor)
    expected = nib.load(path).get_fdata(dtype=np.float32)
    with config.configure(threads=1):
        got = gpuimg.load(path).get_fdata(dtype=np.float32)
    assert submitted == []
    with config.configure(threads=2):
        again = gpuimg.load(path).get_fdata(dtype=np.float32)
    assert len(submitted) == 1  # one helper read the chunks ahead
    np.testing.assert_array_equal(got, expected, strict=True)
    np.testing.assert_array_equal(again, expected, strict=True)
