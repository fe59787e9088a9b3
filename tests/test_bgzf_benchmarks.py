"""Smoke tests of the BGZF benchmark rows (quick mode, no speed asserted) and of the GPU run script's
report, without a GPU: every row and ratio produced, the tables render, the script says what it skipped.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str | Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "error", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bgzf_bench")


def test_bgzf_rows(data_dir):
    proc = _run("-m", "benchmarks.bgzf", "--quick", "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    rows = {row["key"]: row for row in result["rows"]}
    assert list(rows) == ["t1_bgzf_f32", "fmri_bgzf_volume", "t1_bgzf_save", "bgzf_size"]
    for row in rows.values():
        assert row["ratios"]
        for ratio in row["ratios"]:
            assert math.isfinite(ratio["ratio"]) and ratio["ratio"] > 0
            assert ratio["met"] == (
                ratio["ratio"] <= ratio["target"]
                if "level" in ratio
                else ratio["ratio"] >= ratio["target"]
            )
    assert set(rows["t1_bgzf_f32"]["times"]) == {"gpuimg 2 threads", "gpuimg 1 thread", "nibabel"}
    assert {1, 6} == {int(level) for level in rows["bgzf_size"]["sizes"]}
    table = _run("-m", "benchmarks.bgzf", "--quick", "--markdown", "--data-dir", data_dir)
    assert "| t1_bgzf_f32 | gpuimg 1 thread / gpuimg 2 threads |" in table.stdout


def test_bgzf_scaling_row(data_dir):
    """``--scaling``: the read's parts on 1 and 2 threads, measured without a target."""
    from benchmarks.bgzf import markdown

    proc = _run("-m", "benchmarks.bgzf", "--quick", "--scaling", "--data-dir", data_dir)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["rows"]
    parts = ["decode + CRC32 of every block", "scale into a fresh float32 result"]
    assert row["key"] == "t1_bgzf_scaling"
    assert set(row["times"]) == {
        f"{part}, {n}" for part in parts for n in ("1 thread", "2 threads")
    }
    assert [(r["slow"], r["target"], r["met"]) for r in row["ratios"]] == [
        (f"{part}, 1 thread", None, None) for part in parts
    ]
    assert all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in row["ratios"])
    table = markdown({"rows": [row]})
    assert f"| t1_bgzf_scaling | {parts[0]}, 1 thread / {parts[0]}, 2 threads |" in table
    assert table.rstrip().endswith("| — | — |")


def test_gpu_run_script_reports_without_a_gpu(tmp_path, data_dir):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gpu_run
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    wanted = gpu_run.requirements("cuda12")
    assert "nvidia-nvcomp-cu12>=5" in wanted and "cupy-cuda12x>=13" in wanted
    assert gpu_run.missing(["numpy>=1.24", "surely-not-installed-package"]) == [
        "surely-not-installed-package"
    ]
    report = {
        "cuda_major": 12,
        "python": "3.x",
        "gpu": "none found",
        "steps": {
            "tests": {"exit_code": 0, "seconds": 1.0, "tail": "5 skipped in 1.0s"},
            "gpu_benchmarks": {"exit_code": 0, "seconds": 1.0, "tail": "skipped: no GPU (x)"},
        },
        "gpu_benchmarks": None,
        "bgzf_benchmarks": None,
    }
    text = gpu_run.markdown(report)
    assert "| tests | 0 | 1.0 |" in text and "`5 skipped in 1.0s`" in text
    assert "GPU benchmarks: `skipped: no GPU (x)`" in text
