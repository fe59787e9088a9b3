"""The peer suite: nibabel's own tests, run with gpuimg standing in and with nibabel as the baseline.

Every test whose outcome with gpuimg differs from its outcome with nibabel must be listed, with its reason,
in ``tests/nibabel_peer/expected.txt``; a listed test that no longer differs must leave the list. See
``docs/nibabel-peer-suite.md`` (and ``PYTHONPATH=.:tests python3 -m nibabel_peer`` to rerun it by hand).
"""

from __future__ import annotations

import pytest
from nibabel_peer import suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both runs of the suite, side by side in two processes (about 90 s of CPU each)."""
    return suite.run_both(tmp_path_factory.mktemp("peer"))


def test_nibabel_baseline_passes(runs):
    _, nibabel = runs
    failed = sorted(i for i, o in nibabel.outcomes.items() if o == "failed")
    assert len(nibabel.outcomes) > 1700, nibabel.log[-3000:]
    assert not failed, f"nibabel fails its own tests here: {failed[:20]}\n{nibabel.log[-3000:]}"


def test_differences_are_the_listed_ones(runs):
    gpuimg, nibabel = runs
    differ = suite.differences(gpuimg, nibabel)
    expected = suite.load_expected()
    unlisted = {i: differ[i] for i in differ if i not in expected}
    agreeing = sorted(i for i in expected if i not in differ)
    assert not unlisted, (
        "tests that now differ from nibabel (a bug, or list them with a reason):\n"
        + (
            "\n".join(
                f"{i}: gpuimg {g}, nibabel {n}: {gpuimg.messages.get(i, '')}"
                for i, (g, n) in unlisted.items()
            )
        )
    )
    assert not agreeing, (
        "listed tests that now agree with nibabel; take them off tests/nibabel_peer/expected.txt "
        "(python3 -m nibabel_peer --prune does it):\n" + "\n".join(agreeing)
    )
