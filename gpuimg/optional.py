"""Importing optional dependencies (torch, dask) on first use, with an install hint when missing."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str, *, package: str, hint: str) -> ModuleType:
    """Import ``module``, or raise ImportError saying that ``package`` is missing and how to install it.

    Examples
    --------
    >>> import_optional("math", package="math", hint="it is in the standard library").pi > 3
    True
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"this needs {package}, which is not installed ({exc}); {hint}") from exc
