"""Run the peer suite (nibabel's test modules, with gpuimg or with nibabel) and compare the outcomes.

The list of tests expected to differ lives in ``expected.txt`` beside this module: sections that start with
``[key] reason`` followed by one pytest node id a line; ``#`` starts a comment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel

#: nibabel's test modules that exercise the image model gpuimg reproduces (NIfTI-1/2, Analyze, SPM).
MODULES = (
    "test_image_api",
    "test_proxy_api",
    "test_dataobj_images",
    "test_filebasedimages",
    "test_spatialimages",
    "test_arrayproxy",
    "test_analyze",
    "test_spm99analyze",
    "test_spm2analyze",
    "test_nifti1",
    "test_nifti2",
    "test_loadsave",
    "test_image_load_save",
    "test_round_trip",
)

EXPECTED_PATH = Path(__file__).with_name("expected.txt")
_ROOT = Path(__file__).resolve().parents[2]
#: Where node ids are relative to: the folder holding the installed ``nibabel`` package.
SITE = Path(nibabel.__file__).resolve().parents[1]


def pytest_command(impl: str, report: Path, ini: Path) -> list[str]:
    """The pytest command line of one run of the suite with ``impl`` ('gpuimg' or 'nibabel')."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(ini),
        "-p",
        "nibabel_peer.plugin",
        "-p",
        "no:cacheprovider",
        "--peer-impl",
        impl,
        "--peer-report",
        str(report),
        "--rootdir",
        str(SITE),
        "-q",
        "--no-header",
        "--tb=short",
        "--disable-warnings",
        "--pyargs",
        *(f"nibabel.tests.{module}" for module in MODULES),
    ]


def start(impl: str, workdir: Path) -> subprocess.Popen:
    """Start one run in ``workdir`` (its report lands in ``workdir/report.json``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT), str(_ROOT / "tests")]))
    return subprocess.Popen(
        pytest_command(impl, workdir / "report.json", ini),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass(frozen=True)
class Run:
    """The outcome of every test in one run, and the nibabel names gpuimg had no stand-in for."""

    outcomes: dict[str, str]
    messages: dict[str, str]
    missing: list[str]
    log: str

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)


def finish(process: subprocess.Popen, workdir: Path) -> Run:
    """Wait for a run started by :func:`start`; raise with its log when it wrote no report."""
    log, _ = process.communicate()
    report = workdir / "report.json"
    if not report.exists():
        raise RuntimeError(
            f"the peer-suite run wrote no report (exit {process.returncode}):\n{log}"
        )
    data = json.loads(report.read_text())
    return Run(data["outcomes"], data["messages"], data["missing"], log)


def run_both(workdir: Path) -> tuple[Run, Run]:
    """Run the suite with gpuimg and with nibabel side by side; return ``(gpuimg, nibabel)``."""
    processes = {impl: start(impl, workdir / impl) for impl in ("gpuimg", "nibabel")}
    runs = {impl: finish(process, workdir / impl) for impl, process in processes.items()}
    return runs["gpuimg"], runs["nibabel"]


def differences(gpuimg: Run, nibabel: Run) -> dict[str, tuple[str, str]]:
    """``{node id: (gpuimg outcome, nibabel outcome)}`` for every test whose outcomes differ."""
    ids = set(gpuimg.outcomes) | set(nibabel.outcomes)
    pairs = {
        i: (gpuimg.outcomes.get(i, "not run"), nibabel.outcomes.get(i, "not run")) for i in ids
    }
    return {i: pair for i, pair in sorted(pairs.items()) if pair[0] != pair[1]}


def load_expected(path: Path = EXPECTED_PATH) -> dict[str, str]:
    """``{node id: section key}`` from the expected-differences file."""
    expected: dict[str, str] = {}
    key = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            key = line[1 : line.index("]")]
        elif key is None:
            raise ValueError(f"{path}:{number}: node id before any [section]")
        elif line in expected:
            raise ValueError(f"{path}:{number}: {line} listed twice")
        else:
            expected[line] = key
    return expected
