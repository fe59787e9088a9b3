"""Smoke test of the benchmark suite in quick mode: every row produced, JSON written. No speed asserted.

The benchmarks run as a user runs them (``python3 -m benchmarks.run --quick``), in a subprocess
from the repository root, on tiny volumes written to a temporary folder.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel
import pytest

from benchmarks import cases
from benchmarks.volumes import QUICK, VolumeStore

ROOT = Path(__file__).resolve().parent.parent

ROW_KEYS = [
    "t1_gz1_f32",
    "t1_gz6_f32",
    "t1_noisy_gz1_f32",
    "fmri_gz1_f32",
    "t1_nii_f32",
    "t1_nii_f64",
    "seg_gz1_f32",
    "t1_gz1_threads",
    "fmri_vol_fresh",
    "fmri_vol_again",
    "t1_load",
    "t1_save_nii_i16",
    "t1_save_nii_f32",
    "t1_save_nii_f32_c",
    "t1_save_gz_i16",
    "t1_save_gz_f32",
]
MEMORY_KEYS = {"t1_gz1_f32", "t1_gz6_f32", "fmri_gz1_f32", "t1_nii_f32", "seg_gz1_f32"}
LIBS = ("nibabel", "gpuimg")


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "result.json"
    proc = _run("benchmarks.run", "--quick", "--json", out, "--data-dir", tmp / "data")
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text(encoding="utf-8")), proc.stdout, tmp


def _assert_times(stats: dict) -> None:
    assert stats["samples"], stats
    for value in [stats["median"], stats["min"], stats["max"], *stats["samples"]]:
        assert math.isfinite(value) and value > 0, stats


def test_every_row_has_positive_times(quick: tuple[dict, str, Path]) -> None:
    result, _, _ = quick
    assert [row["key"] for row in result["rows"]] == ROW_KEYS
    for row in result["rows"]:
        for lib in LIBS:
            _assert_times(row["times"][lib])
        assert math.isfinite(row["speedup"]) and row["speedup"] > 0


def test_memory_rows(quick: tuple[dict, str, Path]) -> None:
    result, _, _ = quick
    for row in result["rows"]:
        if row["key"] not in MEMORY_KEYS:
            assert row["memory"] is None
            continue
        for lib in LIBS:
            entry = row["memory"][lib]
            assert entry["out_nbytes"] > 0
            assert entry["tracemalloc_peak"] >= entry["out_nbytes"], (row["key"], lib, entry)


def test_machine_and_table(quick: tuple[dict, str, Path]) -> None:
    result, stdout, _ = quick
    machine = result["machine"]
    assert machine["usable_cores"] >= 1
    assert machine["versions"]["nibabel"] and machine["versions"]["numpy"]
    assert machine["nibabel_gzip_reader"] in ("indexed_gzip", "gzip (stdlib)")
    assert result["quick"] is True and result["repeats"] == 1
    for row in result["rows"]:
        assert row["label"] in stdout


def test_gpu_and_loader_sections(quick: tuple[dict, str, Path]) -> None:
    result, _, _ = quick
    gpu = result["gpu"]
    if "skipped" in gpu:
        assert gpu["skipped"].startswith("no GPU")
    else:
        for row in gpu["rows"]:
            for lib in LIBS:
                _assert_times(row["libs"][lib]["wall"])
    loader = result["loader"]
    if "skipped" not in loader:
        for entry in loader["loaders"].values():
            _assert_times(entry["epoch"])
            assert entry["volumes_per_s"] > 0
        # Every loader and floor row ran, or is named as missing; every ratio of two that ran is there.
        names = set(loader["loaders"]) | set(loader["missing"])
        assert len(names) == 9 and not set(loader["loaders"]) & set(loader["missing"])
        if not loader["missing"]:
            assert len(loader["ratios"]) == 7
        for ratio in loader["ratios"].values():
            assert math.isfinite(ratio) and ratio > 0


def test_gpu_command_skips_or_runs(quick: tuple[dict, str, Path]) -> None:
    _, _, tmp = quick
    proc = _run("benchmarks.gpu", "--quick", "--data-dir", tmp / "data")
    assert proc.returncode == 0, proc.stderr
    if "skipped" in quick[0]["gpu"]:
        assert proc.stdout.startswith("skipped: no GPU")
    else:
        assert json.loads(proc.stdout)["rows"]


def test_report_renders_saved_result(quick: tuple[dict, str, Path]) -> None:
    result, _, tmp = quick
    png = tmp / "ratios.png"
    proc = _run("benchmarks.report", tmp / "result.json", "--markdown", "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("| case |")
    assert png.exists() or "plot skipped" in proc.stdout


def test_hotspots_profiles_each_row(quick: tuple[dict, str, Path]) -> None:
    _, _, tmp = quick
    proc = _run("benchmarks.hotspots", "--quick", "--repeats", "1", "--data-dir", tmp / "data")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("### ") == 6
    assert "| own ms | cumulative ms | calls | function |" in proc.stdout


def test_a_decoders_floor_is_its_faster_row() -> None:
    """The loader's ratios are taken against the faster of a decoder's two floor rows."""
    from benchmarks import loader

    handed, freed = loader.FLOOR_ROWS[loader.LIBDEFLATE_FLOOR]
    rates = loader._rates({handed: {"volumes_per_s": 100.0}, freed: {"volumes_per_s": 180.0}})
    assert rates[loader.LIBDEFLATE_FLOOR] == 180.0
    assert loader.ISAL_FLOOR not in rates  # no row of it ran


def test_saves_command_times_the_save_rows(quick: tuple[dict, str, Path]) -> None:
    _, _, tmp = quick
    out = tmp / "saves.json"
    proc = _run("benchmarks.saves", "--quick", "--data-dir", tmp / "data", "--json", out)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert [row["key"] for row in rows] == [key for key in ROW_KEYS if key.startswith("t1_save")]
    for row in rows:
        assert f"| {row['label']} |" in proc.stdout
        for lib in LIBS:
            _assert_times(row["times"][lib])


def test_each_save_runs_on_a_drained_disk(tmp_path, monkeypatch) -> None:
    """The untimed setup of every save row ends with os.sync(), after the image is built."""
    events: list[str] = []
    monkeypatch.setattr(cases.os, "sync", lambda: events.append("sync"))
    monkeypatch.setattr(cases, "_image_to_save", lambda *args: events.append("image"))
    for case in cases.save_cases(QUICK, VolumeStore(tmp_path)):
        events.clear()
        case.setup(nibabel)
        assert events == ["image", "sync"], case.key
