"""pytest plugin for a run of nibabel's test modules: substitution, left-out formats, an outcome report.

Loaded with ``-p nibabel_peer.plugin`` (see :func:`nibabel_peer.suite.pytest_command`); its hooks run only
in that pytest process, never in gpuimg's own test run.
"""

from __future__ import annotations

import json

import pytest

from nibabel_peer import substitutes

#: Test classes of the formats gpuimg does not implement (MGH, MINC, PAR/REC, GIFTI, AFNI, ECAT): not run.
LEFT_OUT_CLASSES = frozenset(
    {
        "TestMGHAPI",
        "TestMinc1API",
        "TestMinc2API",
        "TestPARRECAPI",
        "TestGiftiAPI",
        "TestAFNIAPI",
        "TestEcatAPI",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nibabel peer suite")
    group.addoption(
        "--peer-impl",
        choices=("gpuimg", "nibabel"),
        default="nibabel",
        help="whose image model runs nibabel's tests",
    )
    group.addoption("--peer-report", default=None, help="write {nodeid: outcome} as JSON here")


def pytest_configure(config: pytest.Config) -> None:
    missing = substitutes.install() if config.getoption("--peer-impl") == "gpuimg" else []
    config.pluginmanager.register(_Recorder(config.getoption("--peer-report"), missing))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, left_out = [], []
    for item in items:
        (left_out if _class_name(item) in LEFT_OUT_CLASSES else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


class _Recorder:
    """Records each test's outcome (passed, failed, skipped, xfailed, xpassed), and why a failure failed."""

    def __init__(self, path: str | None, missing: list[str]) -> None:
        self.path = path
        self.missing = missing
        self.outcomes: dict[str, str] = {}
        self.messages: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        if self.outcomes.get(nodeid) == "failed":
            return
        xfail = hasattr(report, "wasxfail")
        if report.failed:
            self.outcomes[nodeid] = "failed"
            crash = getattr(report.longrepr, "reprcrash", None)
            self.messages[nodeid] = str(report.longrepr) if crash is None else crash.message
        elif report.skipped:
            self.outcomes[nodeid] = "xfailed" if xfail else "skipped"
        elif report.when == "call":
            self.outcomes[nodeid] = "xpassed" if xfail else "passed"

    def pytest_sessionfinish(self) -> None:
        if self.path is not None:
            with open(self.path, "w") as f:
                report = {
                    "outcomes": self.outcomes,
                    "messages": self.messages,
                    "missing": self.missing,
                }
                json.dump(report, f, indent=0)


def _class_name(item: pytest.Item) -> str | None:
    cls = getattr(item, "cls", None)
    return None if cls is None else cls.__name__
