"""The CuPy and nvCOMP test doubles are held to the real packages (both import without a GPU).

* Every public name a double defines exists in the real package at a path where the double exposes
  it (``cupy_double.Stream`` as ``cupy.cuda.Stream``), and every public member of a double's class
  exists on the real class. Test-only controls are listed and skipped.
* Every call gpuimg makes into a double, recorded while gpuimg reads images to the device, binds to
  the real callable's signature: ``inspect.signature`` where the real one has it, else the
  signature(s) pybind11 / Cython write as the docstring's first line of each overload.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import cupy_double
import numpy as np
import nvcomp_double
import pytest

import gpuimg
from gpuimg import device

cupy = pytest.importorskip("cupy")
nvcomp = pytest.importorskip("nvidia.nvcomp")

DOUBLES = [
    pytest.param(
        cupy_double,
        cupy,
        "cupy",
        {"set_device_count", "pinned_bytes", "stream_from_ptr", "RaceError"},
    ),
    pytest.param(nvcomp_double, nvcomp, "nvidia.nvcomp", {"ALIGNMENT"}),
]


def exposed_paths(double: types.ModuleType) -> dict[int, list[str]]:
    """id(object) -> the dotted paths (below the module) where the double exposes it."""
    paths: dict[int, list[str]] = {}
    pending: list[tuple[str, Any]] = [("", double)]
    while pending:
        prefix, namespace = pending.pop()
        for name, value in vars(namespace).items():
            if name.startswith("_") or isinstance(value, types.ModuleType):
                continue
            path = f"{prefix}{name}"
            paths.setdefault(id(value), []).append(path)
            if isinstance(value, types.SimpleNamespace):
                pending.append((path + ".", value))
    return paths


def resolve(root: Any, path: str) -> Any:
    for part in path.split("."):
        root = getattr(root, part)
    return root


def defined_names(double: types.ModuleType, controls: set[str]) -> list[tuple[str, Any]]:
    """The double's own public objects: functions, classes and namespaces, less test controls."""
    found = []
    for name, value in vars(double).items():
        if name.startswith("_") or name in controls or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, types.SimpleNamespace) or (
            isinstance(value, (types.FunctionType, type)) and value.__module__ == double.__name__
        ):
            found.append((name, value))
    return found


@pytest.mark.parametrize(("double", "real", "real_name", "controls"), DOUBLES)
def test_every_name_a_double_defines_exists_in_the_real_package(double, real, real_name, controls):
    paths = exposed_paths(double)
    for name, value in defined_names(double, controls):
        candidates = paths[id(value)]
        found = [path for path in candidates if _exists(real, path)]
        assert found, f"{double.__name__}.{name}: none of {candidates} exists in {real_name}"
        if isinstance(value, type):
            counterpart = resolve(real, found[0])
            members = [m for m in vars(value) if not m.startswith("_")]
            if issubclass(value, enum.Enum):
                members = list(value.__members__)
            missing = [m for m in members if not hasattr(counterpart, m)]
            assert not missing, f"{real_name}.{found[0]} has no {missing}"


def _exists(root: Any, path: str) -> bool:
    try:
        resolve(root, path)
    except AttributeError:
        return False
    return True


# -- calls ------------------------------------------------------------------------------------------


class Recorder:
    """Wraps a double's callables (functions, class constructors and methods) and records gpuimg's calls.

    A function is wrapped everywhere the double exposes it (at the top and in namespaces such as
    ``cuda``), so the path recorded is the one gpuimg went through.
    """

    def __init__(self, double: types.ModuleType, controls: set[str]) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self._targets: list[tuple[Any, str, Any, str]] = []  # (owner, attribute, original, path)
        owned = {id(value) for _, value in defined_names(double, controls)}
        pending: list[tuple[str, Any]] = [("", double)]
        while pending:
            prefix, owner = pending.pop()
            for name, value in list(vars(owner).items()):
                path = f"{prefix}{name}"
                if isinstance(value, types.SimpleNamespace):
                    pending.append((path + ".", value))
                elif id(value) not in owned:
                    continue
                elif isinstance(value, types.FunctionType):
                    self._targets.append((owner, name, value, path))
                elif isinstance(value, type) and not issubclass(value, enum.Enum):
                    for member, function in list(vars(value).items()):
                        if isinstance(function, types.FunctionType) and (
                            member == "__init__" or not member.startswith("_")
                        ):
                            self._targets.append((value, member, function, f"{path}.{member}"))

    @contextlib.contextmanager
    def recording(self) -> Iterator[Recorder]:
        for owner, attribute, original, path in self._targets:
            setattr(owner, attribute, self._wrap(original, path))
        try:
            yield self
        finally:
            for owner, attribute, original, _ in self._targets:
                setattr(owner, attribute, original)

    def _wrap(self, function: Any, path: str) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            # Only gpuimg's calls: the doubles also call their own functions.
            if sys._getframe(1).f_globals.get("__name__", "").startswith("gpuimg"):
                self.calls.append((path, args, kwargs))
            return function(*args, **kwargs)

        return recorded


def real_signatures(target: Any, name: str) -> list[inspect.Signature]:
    """Signatures of the real callable ``target``: inspect's, else its docstring's overloads."""
    with contextlib.suppress(TypeError, ValueError):
        return [inspect.signature(target)]
    doc = target.__doc__ or ""
    found = []
    pattern = rf"^\s*(?:\d+\. )?(?:[\w.]+\.)?{re.escape(name)}\((.*)\)( ->.*)?$"
    for match in re.finditer(pattern, doc, re.M):
        parameters = []
        named = inspect.Parameter.POSITIONAL_OR_KEYWORD  # KEYWORD_ONLY after * or *args
        for part in _split_parameters(match.group(1)):
            part = part.strip()
            if part in ("*", "/"):
                named = inspect.Parameter.KEYWORD_ONLY if part == "*" else named
                continue
            # "name: type = default" (pybind11) or "type name=default" (Cython)
            pname = re.split(r"[:=]", part, maxsplit=1)[0].split()[-1].lstrip("*")
            kind = named
            if part.startswith("**"):
                kind = inspect.Parameter.VAR_KEYWORD
            elif part.startswith("*"):
                kind = inspect.Parameter.VAR_POSITIONAL
                named = inspect.Parameter.KEYWORD_ONLY
            default = inspect.Parameter.empty if "=" not in part else None
            parameters.append(inspect.Parameter(pname, kind, default=default))
        found.append(inspect.Signature(parameters))
    return found


def _split_parameters(text: str) -> list[str]:
    """Split a parameter list at top-level commas (defaults may hold brackets)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{<"
        depth -= char in ")]}>"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [part for part in [*parts, current] if part.strip()]


def binds(signatures: list[inspect.Signature], args: tuple, kwargs: dict) -> bool:
    for signature in signatures:
        try:
            signature.bind(*args, **kwargs)
        except TypeError:
            continue
        return True
    return False


def run_device_reads(tmp_path) -> None:
    """What gpuimg does on a GPU: whole and sliced reads of a BGZF and a plain file, a pool trim."""
    data = np.arange(40 * 30 * 20 * 3, dtype=">i2").reshape(40, 30, 20, 3)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, 2.0)
    gpuimg.save(img, tmp_path / "b.nii.gz", bgzf=True)
    gpuimg.save(img, tmp_path / "p.nii")
    for name in ("b.nii.gz", "p.nii"):
        loaded = gpuimg.load(tmp_path / name)
        device.to_host(loaded.get_fdata(dtype=np.float32, device="cuda", caching="unchanged"))
        device.to_host(loaded.dataobj.to_device((..., 1)))
    device.to_host(device.to_device(np.ones((3, 4), ">f4")))
    device.empty_cache()


def signatures_of_call(real: Any, path: str, args: tuple) -> tuple[list[inspect.Signature], tuple]:
    """The real signatures a recorded call must bind to, and its arguments as they bind there."""
    if not path.endswith(".__init__"):
        return real_signatures(resolve(real, path), path.rsplit(".", 1)[-1]), args
    cls = resolve(real, path.removesuffix(".__init__"))
    with contextlib.suppress(TypeError, ValueError):
        return [inspect.signature(cls)], args[1:]  # a class's signature leaves self out
    return real_signatures(cls.__init__, "__init__"), args


@pytest.mark.parametrize(("double", "real", "real_name", "controls"), DOUBLES)
def test_gpuimg_calls_bind_to_the_real_signatures(double, real, real_name, controls, tmp_path):
    recorder = Recorder(double, controls)
    with (
        device.use_backend(cupy_double),
        device.use_nvcomp_backend(nvcomp_double),
        recorder.recording(),
    ):
        run_device_reads(tmp_path)
    assert recorder.calls, f"gpuimg made no call into {double.__name__}"
    checked, unchecked = set(), set()
    for path, args, kwargs in recorder.calls:
        signatures, bound_args = signatures_of_call(real, path, args)
        if not signatures:
            unchecked.add(path)
            continue
        assert binds(signatures, bound_args, kwargs), (
            f"gpuimg calls {real_name}.{path} with {len(bound_args)} positional argument(s) and "
            f"keywords {sorted(kwargs)}; the real signatures are {[str(s) for s in signatures]}"
        )
        checked.add(path)
    assert checked, f"no call into {real_name} could be checked against a signature"
    # What has no signature at all in the real package (neither inspect's nor a docstring's):
    assert unchecked <= NO_REAL_SIGNATURE, unchecked - NO_REAL_SIGNATURE


#: Real callables that publish no signature; calls to them are held to the name checks only.
NO_REAL_SIGNATURE: set[str] = set()
