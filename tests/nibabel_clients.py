"""The nibabel names that MONAI, TorchIO and nilearn use, found in their installed sources.

Each client module is parsed (never imported); a name counts when the code imports it from nibabel
(``from nibabel.x import y``, MONAI's ``optional_import("nibabel.x", name="y")``) or reaches it as an
attribute of a name bound to nibabel (``nib.orientations.aff2axcodes``). Test modules are skipped.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

CLIENTS = ("monai", "torchio", "nilearn")


def _optional_import(node: ast.AST) -> str | None:
    """``nibabel.x[.name]`` for ``optional_import("nibabel.x", name="name")``, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    first = node.args[0]
    if called != "optional_import" or not isinstance(first, ast.Constant):
        return None
    if not str(first.value).split(".")[0] == "nibabel":
        return None
    name = next((k.value.value for k in node.keywords if k.arg == "name"), None)
    return first.value if name is None else f"{first.value}.{name}"


def _names_in(tree: ast.AST) -> set[str]:
    aliases: dict[str, str] = {}
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nibabel":
                    aliases[alias.asname or "nibabel"] = alias.name if alias.asname else "nibabel"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nibabel":
            for alias in node.names:
                names.add(f"{node.module}.{alias.name}")
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Assign) and (found := _optional_import(node.value)):
            target = node.targets[0]
            target = target.elts[0] if isinstance(target, ast.Tuple) else target
            names.add(found)
            if isinstance(target, ast.Name):
                aliases[target.id] = found
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = []
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            if isinstance(node, ast.Name) and node.id in aliases:
                names.add(".".join([aliases[node.id], *reversed(chain)]))
    return names


def client_names(package: str) -> dict[str, str] | None:
    """``{nibabel name: first module using it}`` for an installed ``package``; None if not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if {"tests", "testing"} & set(path.relative_to(root).parts):
            continue
        source = path.read_text(encoding="utf-8")
        if "nibabel" not in source:
            continue
        for name in sorted(_names_in(ast.parse(source))):
            found.setdefault(name, str(path.relative_to(root.parent)))
    return found
