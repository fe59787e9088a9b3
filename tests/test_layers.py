"""The layer table of ``docs/architecture.md`` is true: every module is listed, none imports upward.

Each module may import from its own layer and the layers listed above it, at module level or inside
a function alike; ``gpuimg/__init__.py`` and ``gpuimg/__main__.py`` gather public names and the
command line from every layer.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import gpuimg

PACKAGE = Path(gpuimg.__file__).parent
TABLE = PACKAGE.parent / "docs" / "architecture.md"
ENTRY_POINTS = {"__init__.py", "__main__.py"}


def read_layers(text: str) -> list[tuple[str, list[str]]]:
    """``(layer, [module or folder paths below gpuimg/])`` for each row of the table, top first."""
    layers = []
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and "`gpuimg/" in cells[2]:
            layers.append((cells[1].strip(), re.findall(r"`gpuimg/([\w/.]+)`", cells[2])))
    return layers


def layer_of(relative: str, layers: list[tuple[str, list[str]]]) -> int | None:
    for index, (_, paths) in enumerate(layers):
        if any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in paths):
            return index
    return None


def imported_modules(tree: ast.AST) -> set[str]:
    """Dotted names of gpuimg modules (and names that may be modules) ``tree`` imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] == "gpuimg"}


def module_file(name: str, root: Path) -> Path | None:
    path = root.parent.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def layer_violations(root: Path, text: str) -> list[str]:
    layers = read_layers(text)
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in ENTRY_POINTS:
            continue
        own = layer_of(relative, layers)
        if own is None:
            found.append(f"gpuimg/{relative} is in no layer of the table")
            continue
        for name in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            target = module_file(name, root)
            if target is None or target.name in ENTRY_POINTS and target.parent == root:
                continue
            other = layer_of(target.relative_to(root).as_posix(), layers)
            if other is not None and other > own:
                found.append(
                    f"gpuimg/{relative} ({layers[own][0]}) imports {name} ({layers[other][0]}), "
                    "a layer below it"
                )
    return found


def test_every_module_sits_in_a_layer_and_imports_only_upward() -> None:
    layers = read_layers(TABLE.read_text())
    assert len(layers) > 10 and layers[0][0] == "errors, config"
    violations = layer_violations(PACKAGE, TABLE.read_text())
    assert not violations, "\n".join(violations)


def test_the_check_sees_an_upward_import_and_an_unlisted_module(tmp_path) -> None:
    root = tmp_path / "gpuimg"
    (root / "io").mkdir(parents=True)
    (root / "__init__.py").write_text("from gpuimg.loader import Loader\n")
    (root / "errors.py").write_text("")
    (root / "loader.py").write_text("from gpuimg import errors\n")
    (root / "io" / "openers.py").write_text("def f():\n    from gpuimg.loader import Loader\n")
    (root / "extra.py").write_text("")
    table = "| errors | `gpuimg/errors.py` | x |\n| io | `gpuimg/io/` | x |\n| apps | `gpuimg/loader.py` | x |\n"
    assert layer_violations(root, table) == [
        "gpuimg/extra.py is in no layer of the table",
        "gpuimg/io/openers.py (io) imports gpuimg.loader (apps), a layer below it",
    ]
