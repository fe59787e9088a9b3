"""gpuimg ships ``py.typed``: its annotations are a promise that mypy checks."""

from __future__ import annotations

from pathlib import Path

import pytest

import gpuimg

ROOT = Path(gpuimg.__file__).parent.parent


def test_py_typed_is_shipped():
    assert (ROOT / "gpuimg" / "py.typed").is_file()


def test_mypy_passes(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mypy`` with pyproject's ``[tool.mypy]`` reports no error in gpuimg."""
    api = pytest.importorskip("mypy.api")
    cache = tmp_path_factory.getbasetemp().parent / "gpuimg-mypy-cache"
    monkeypatch.chdir(ROOT)  # pyproject.toml's [tool.mypy] is found from the working folder
    stdout, stderr, status = api.run(["--cache-dir", str(cache), "gpuimg"])
    assert status == 0, stdout + stderr
