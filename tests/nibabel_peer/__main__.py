"""Run the peer suite by hand: ``PYTHONPATH=.:tests python3 -m nibabel_peer [--prune] [--workdir DIR]``.

Prints the pass counts with gpuimg and with nibabel, then each difference that is not listed in
``expected.txt`` (with gpuimg's failure message), then each listed test that no longer differs.
``--prune`` takes those off the list.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nibabel_peer import suite


def prune(path: Path, agreeing: set[str]) -> None:
    """Rewrite the list at ``path`` without the node ids in ``agreeing`` (comments and sections kept)."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if line.strip() not in agreeing))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nibabel_peer", description=__doc__)
    parser.add_argument("--prune", action="store_true", help="drop listed tests that now agree")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs' reports here")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nibabel-peer-"))
    gpuimg, nibabel = suite.run_both(workdir)
    for name, run in (("gpuimg", gpuimg), ("nibabel", nibabel)):
        counts = ", ".join(f"{run.count(o)} {o}" for o in sorted(set(run.outcomes.values())))
        print(f"{name}: {len(run.outcomes)} tests: {counts}")
    differ = suite.differences(gpuimg, nibabel)
    expected = suite.load_expected()
    print(f"{len(differ)} differ from nibabel; {len(expected)} listed")
    for nodeid, (g, n) in differ.items():
        if nodeid not in expected:
            print(
                f"NOT LISTED {nodeid}: gpuimg {g}, nibabel {n}: {gpuimg.messages.get(nodeid, '')}"
            )
    agreeing = {i for i in expected if i not in differ}
    for nodeid in sorted(agreeing):
        print(f"NOW AGREES {nodeid}")
    if args.prune and agreeing:
        prune(suite.EXPECTED_PATH, agreeing)
        print(f"took {len(agreeing)} tests off {suite.EXPECTED_PATH}")
    print(f"reports in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
