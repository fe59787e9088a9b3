"""``gpuimg.device`` is the single CuPy seam: no other module of gpuimg touches CuPy or nvCOMP.

Other modules call the operations the seam exports (``device.empty``, ``device.using_device``,
``device.current_stream``, ...) and use the arrays, streams and events they get back through those
objects' own methods. The check reads the source (no import), so it holds on machines without CuPy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gpuimg

PACKAGE = Path(gpuimg.__file__).parent
SEAM = PACKAGE / "device"
# CuPy itself, gpuimg's handles on the backend, and CuPy's ``cuda`` namespace (``x.cuda.Stream``).
FORBIDDEN_NAMES = {"cupy", "_cupy", "get_cupy", "get_nvcomp", "loaded_backend", "cuda"}
FORBIDDEN_MODULES = ("cupy", "cupyx", "nvidia")


def _module_name(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Attribute, ast.Name))
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def seam_violations(path: Path) -> list[str]:
    """``'file:line: what'`` for every place ``path`` reaches CuPy other than through the seam."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        line = getattr(node, "lineno", 0)
        for module in _module_name(node):
            if module.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{path.name}:{line}: imports {module}")
            elif module.startswith("gpuimg.device."):
                found.append(f"{path.name}:{line}: imports the seam's inside, {module}")
        name = (
            node.id
            if isinstance(node, ast.Name)
            else node.attr
            if isinstance(node, ast.Attribute)
            else node.arg
            if isinstance(node, ast.arg)
            else None
        )
        if name in FORBIDDEN_NAMES:
            found.append(f"{path.name}:{line}: uses {name}")
    return found


def outside_the_seam(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if (root / "device") not in p.parents)


def test_no_module_outside_the_seam_touches_cupy() -> None:
    modules = outside_the_seam(PACKAGE)
    assert len(modules) > 40 and PACKAGE / "gpuread.py" in modules
    violations = [v for path in modules for v in seam_violations(path)]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cupy = device.get_cupy()\n", ["uses cupy", "uses get_cupy"]),
        ("with self._cupy.cuda.Device(0): pass\n", ["uses _cupy", "uses cuda"]),
        ("import cupy\n", ["imports cupy"]),
        ("from nvidia import nvcomp\n", ["imports nvidia"]),
        ("importlib.import_module('cupyx.scipy')\n", ["imports cupyx.scipy"]),
        (
            "from gpuimg.device.backend import resolve_device\n",
            ["imports the seam's inside, gpuimg.device.backend"],
        ),
        ("def f(cupy): pass\n", ["uses cupy"]),
        ("device.empty((2,), 'f4', device=0).set(x, stream=device.current_stream())\n", []),
    ],
)
def test_the_check_sees_each_way_in(tmp_path, source, expected) -> None:
    path = tmp_path / "module.py"
    path.write_text(source)
    assert sorted(v.split(": ", 1)[1] for v in seam_violations(path)) == expected
