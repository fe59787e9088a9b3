"""One real-GPU run: install what is missing, run the ``cuda`` tests and the GPU benchmarks, report.

Run it as is from the repository root on any CUDA machine (made for an H100/H200: well under ten
minutes in all)::

    python3 scripts/gpu_run.py                      # packages from the index
    python3 scripts/gpu_run.py --wheels /path/wheels  # no index: wheels prepared beforehand
    python3 scripts/gpu_run.py --out gpu-report --no-install

Wheels for a machine without an index are prepared beforehand, on a machine with the same Python
and platform: ``python3 scripts/gpu_run.py --print-requirements > req.txt`` there (or here, to get
the CUDA major right: ``--cuda 12``), then ``pip download -d wheels -r req.txt``.

Steps, each under its own time limit, each recorded even when it fails:

1. ``install``: the packages of pyproject's ``dependencies`` and of the ``test`` and ``cuda12`` (or
   ``cuda13``, from the driver's CUDA version) extras that are not importable yet, with pip, from
   ``--wheels`` only (``--no-index --find-links``) when given. gpuimg itself is not installed: the run
   imports this checkout (``PYTHONPATH``).
2. ``tests``: ``pytest -m cuda`` (the real-GPU tests, real CuPy and real nvCOMP), JUnit XML kept.
3. ``gpu_benchmarks``: ``python -m benchmarks.gpu`` (disk → CuPy for gpuimg and nibabel, plus the
   BGZF row: nvCOMP against host decoding).
4. ``bgzf_benchmarks``: ``python -m benchmarks.bgzf`` (the CPU BGZF rows, on this machine's cores).

Writes ``report.json`` (every step's command, exit code, seconds, output tail and parsed results)
and ``report.md`` into ``--out`` (default ``gpu-report/``); exits non-zero when a step failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip's vendored copy of the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: Distribution name -> module it provides, where the two differ.
MODULES = {
    "cupy-cuda12x": "cupy",
    "cupy-cuda13x": "cupy",
    "nvidia-nvcomp-cu12": "nvidia.nvcomp",
    "nvidia-nvcomp-cu13": "nvidia.nvcomp",
    "zlib-ng": "zlib_ng",
    "indexed_gzip": "indexed_gzip",
    "dask[array]": "dask.array",
    "scikit-image": "skimage",
}
#: Seconds each step may take (ten minutes in all, with room for starting up).
LIMITS = {"install": 120, "tests": 240, "gpu_benchmarks": 120, "bgzf_benchmarks": 75}


def cuda_major() -> int:
    """The CUDA major version the driver supports (12 when it cannot be told)."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 12
    match = re.search(r"CUDA Version:\s*(\d+)", out)
    return int(match.group(1)) if match else 12


def requirements(extra_cuda: str) -> list[str]:
    """pyproject's dependencies plus the test and CUDA extras, as pip requirement strings."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["test"], *extras[extra_cuda]]
    # The test extra pins CUDA 12 packages for CI; on another CUDA they would clash with the extra's.
    other = {"cuda12": ("cuda13x", "-cu13"), "cuda13": ("cuda12x", "-cu12")}[extra_cuda]
    return [r for r in wanted if not any(tag in r.split(">")[0] for tag in other)]


def missing(wanted: list[str]) -> list[str]:
    """The requirements whose module does not import here."""
    out = []
    for requirement in wanted:
        name = re.split(r"[<>=!~; ]", requirement, maxsplit=1)[0]
        module = MODULES.get(name, name.split("[")[0].replace("-", "_"))
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(requirement)
    return out


def run_step(name: str, command: list[str], out_dir: Path, env: dict[str, str]) -> dict:
    """Run one step under its time limit; its record (output tail, exit code, seconds)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=LIMITS[name],
            check=False,
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        code = 124
        output = f"{expired.stdout or ''}{expired.stderr or ''}\n[timed out after {LIMITS[name]} s]"
    (out_dir / f"{name}.log").write_text(output if isinstance(output, str) else output.decode())
    return {
        "command": " ".join(command),
        "exit_code": code,
        "seconds": round(time.perf_counter() - started, 1),
        "tail": str(output)[-3000:],
    }


def parse_json(text: str) -> dict | None:
    """The JSON document a benchmark printed (its output from the first '{'), if any."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def markdown(report: dict) -> str:
    """The report as markdown: steps, then the benchmark tables."""
    lines = [
        "# gpuimg real-GPU run",
        "",
        f"GPU: {report['gpu']}; CUDA {report['cuda_major']}; Python {report['python']}",
        "",
        "| step | exit | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {s['exit_code']} | {s['seconds']} |" for n, s in report["steps"].items()]
    tests = report["steps"].get("tests", {}).get("tail", "").strip().splitlines()
    lines += ["", f"pytest -m cuda: `{tests[-1] if tests else 'no output'}`", ""]
    gpu = report.get("gpu_benchmarks") or {}
    if "rows" not in gpu:
        said = report["steps"].get("gpu_benchmarks", {}).get("tail", "").strip().splitlines()
        lines += [f"GPU benchmarks: `{said[-1] if said else 'no output'}`"]
    else:
        lines += [
            "## Disk → CuPy float32",
            "",
            "| file | gpuimg ms | nibabel ms | speed-up |",
            "|---|---|---|---|",
        ]
        for row in gpu["rows"]:
            ours, theirs = (row["libs"][k]["wall"]["median"] * 1e3 for k in ("gpuimg", "nibabel"))
            lines.append(f"| {row['label']} | {ours:.2f} | {theirs:.2f} | {row['speedup']:.1f}× |")
        for row in gpu.get("bgzf", {}).get("rows", []):
            times = {k: v["median"] * 1e3 for k, v in row["times"].items()}
            lines.append(
                f"| {row['label']} | nvCOMP {times['nvcomp']:.2f} | host decode "
                f"{times['host decode']:.2f} | {row['ratios'][0]['ratio']:.1f}× "
                f"(≤ 3 ms: {'yes' if row['warm_met'] else 'no'}) |"
            )
    bgzf = report.get("bgzf_benchmarks")
    if bgzf:
        # Imported only now: benchmarks needs the packages the install step may have just added.
        sys.path.insert(0, str(ROOT))
        from benchmarks.bgzf import markdown as bgzf_markdown

        lines += ["", "## BGZF rows (this machine's CPU)", "", bgzf_markdown(bgzf)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-report", help="report folder")
    parser.add_argument("--wheels", type=Path, help="install from this folder of wheels only")
    parser.add_argument("--no-install", action="store_true", help="skip the install step")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per benchmark row")
    parser.add_argument(
        "--cuda", type=int, choices=(12, 13), help="CUDA major (default: the driver's)"
    )
    parser.add_argument(
        "--print-requirements", action="store_true", help="print what the run needs, and stop"
    )
    args = parser.parse_args(argv)
    major = args.cuda or cuda_major()
    if args.print_requirements:
        print("\n".join(requirements(f"cuda{major}")))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    report: dict = {
        "cuda_major": major,
        "python": sys.version.split()[0],
        "gpu": "unknown",
        "steps": {},
    }
    todo = [] if args.no_install else missing(requirements(f"cuda{major}"))
    if todo:
        source = ["--no-index", "--find-links", str(args.wheels)] if args.wheels else []
        command = [sys.executable, "-m", "pip", "install", *source, *todo]
        report["steps"]["install"] = run_step("install", command, args.out, env)
    python = [sys.executable, "-m"]
    report["steps"]["tests"] = run_step(
        "tests",
        [*python, "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
         f"--junitxml={args.out / 'junit.xml'}"],
        args.out,
        env,
    )  # fmt: skip
    repeats = ["--repeats", str(args.repeats)]
    for name, module in (
        ("gpu_benchmarks", "benchmarks.gpu"),
        ("bgzf_benchmarks", "benchmarks.bgzf"),
    ):
        step = run_step(name, [*python, module, *repeats], args.out, env)
        report["steps"][name] = step
        report[name] = parse_json((args.out / f"{name}.log").read_text())
    gpu = report.get("gpu_benchmarks") or {}
    report["gpu"] = gpu.get("device", "none found")
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown(report))
    print((args.out / "report.md").read_text())
    return 0 if all(step["exit_code"] == 0 for step in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
