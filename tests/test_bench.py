"""``gpuimg bench``: gpuimg against nibabel in one run, on files and on the generated sample volumes."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import gpuimg
from gpuimg import bench
from gpuimg.cli import main

SMALL_SAMPLES = (
    bench.SampleVolume("t1_256", (24, 20, 16), (1.0, 1.0, 1.0)),
    bench.SampleVolume("bold_4d", (8, 6, 5, 4), (3.0, 3.0, 3.0, 2.0)),
)


@pytest.fixture
def small_samples(monkeypatch, tmp_path):
    """Small sample volumes, cached under ``tmp_path`` (the real ones are 256³ and a 4D series)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(bench, "SAMPLE_VOLUMES", SMALL_SAMPLES)
    return tmp_path


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_real_samples_are_realistic():
    t1, series = bench.SAMPLE_VOLUMES
    assert t1.shape == (256, 256, 256)
    assert len(series.shape) == 4 and np.prod(series.shape) > 10**7


def test_sample_is_generated_once_as_scaled_int16(capsys, small_samples):
    code, out, err = _run(capsys, "bench", "--sample", "--repeat", "1", "--device", "cpu")
    assert code == 0
    assert err.count("writing the sample") == 2
    paths = bench.sample_files()
    assert [os.path.basename(p) for p in paths] == [
        "t1_256.nii",
        "t1_256.nii.gz",
        "bold_4d.nii",
        "bold_4d.nii.gz",
    ]
    assert all(p.startswith(str(small_samples / "gpuimg")) for p in paths)
    for plain, gzipped, volume in zip(paths[::2], paths[1::2], SMALL_SAMPLES, strict=True):
        img = gpuimg.load(plain)
        assert img.shape == volume.shape and img.header.get_zooms() == volume.zooms
        assert img.get_data_dtype() == np.int16 and img.dataobj.slope != 1.0
        np.testing.assert_array_equal(
            np.asanyarray(gpuimg.load(gzipped).dataobj), np.asanyarray(img.dataobj)
        )
    modified = [os.path.getmtime(p) for p in paths]
    code, _, err = _run(capsys, "bench", "--sample", "--repeat", "1", "--device", "cpu")
    assert code == 0 and "writing" not in err
    assert [os.path.getmtime(p) for p in paths] == modified


def test_sample_table_compares_with_nibabel(capsys, small_samples):
    code, out, _ = _run(capsys, "bench", "--sample", "--repeat", "1", "--dtype", "float64")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "dtype float64, best of 1"
    assert lines[1].split() == ["file", "device", "library", "seconds", "MB/s", "speed-up"]
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows[::2]] == [
        "t1_256.nii",
        "t1_256.nii.gz",
        "bold_4d.nii",
        "bold_4d.nii.gz",
    ]
    assert all(row[1:3] == ["cpu", "gpuimg"] and row[-1].endswith("x") for row in rows[::2])
    assert all(row[1:3] == ["cpu", "nibabel"] for row in rows[1::2])


def test_bench_json_compares_with_nibabel(capsys):
    path = os.fspath(gpuimg.data.sample_path())
    code, out, _ = _run(capsys, "bench", path, "--repeat", "1", "--device", "cpu", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["devices"], report["dtype"], report["repeat"]) == (["cpu"], "float32", 1)
    (record,) = report["results"]
    assert (record["file"], record["device"]) == (path, "cpu")
    assert record["gpuimg"]["seconds"] > 0 and record["nibabel"]["seconds"] > 0
    assert record["speedup"] == pytest.approx(
        record["nibabel"]["seconds"] / record["gpuimg"]["seconds"]
    )
    assert record["gpuimg"]["bytes_to_device"] == 0


def test_bench_on_a_gpu_runs_cpu_and_gpu_and_counts_bytes_to_device(capsys, xp):
    path = os.fspath(gpuimg.data.sample_path())
    code, out, _ = _run(capsys, "bench", path, "--repeat", "1", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["devices"] == ["cpu", "cuda"]
    on_cpu, on_gpu = report["results"]
    assert (on_cpu["device"], on_gpu["device"]) == ("cpu", "cuda")
    voxels = int(np.prod(gpuimg.load(path).shape))
    assert on_gpu["gpuimg"]["bytes_to_device"] == voxels * 2  # raw int16 crosses PCIe
    assert on_gpu["nibabel"]["bytes_to_device"] == voxels * 4  # scaled float32 does
    code, out, _ = _run(capsys, "bench", path, "--repeat", "1")
    assert "to device" in out.splitlines()[1]


def test_bench_without_nibabel_runs_and_says_how_to_compare(capsys, monkeypatch, small_samples):
    monkeypatch.setitem(sys.modules, "nibabel", None)
    code, out, err = _run(capsys, "bench", "--sample", "--repeat", "1", "--device", "cpu")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert len(rows) == 4 and all(row[2] == "gpuimg" for row in rows)
    assert "nibabel is not installed" in err and "pip install" in err


def test_bench_progress_bar_on_a_terminal(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    path = os.fspath(gpuimg.data.sample_path())
    code, _, err = _run(capsys, "bench", path, "--repeat", "6", "--device", "cpu")
    assert code == 0 and "0/12" in err and "load/s" in err


def test_bench_errors(capsys, tmp_path):
    code, _, err = _run(capsys, "bench")
    assert code == 2 and "--sample" in err
    code, _, err = _run(capsys, "bench", str(tmp_path / "missing.nii.gz"), "--device", "cpu")
    assert code == 1 and "missing.nii.gz" in err and "Traceback" not in err


def test_cache_dir_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bench.cache_dir().parent == tmp_path / "gpuimg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bench.cache_dir().parent == tmp_path / "home" / ".cache" / "gpuimg"
