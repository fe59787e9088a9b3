"""Terminal output shared by the command line's subcommands: progress bars and byte counts."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

#: Steps from which a progress bar is shown (fewer finish before a bar says anything).
PROGRESS_MIN_STEPS = 12


def optional_module(name: str) -> ModuleType | None:
    """``name`` imported, or None when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@contextlib.contextmanager
def progress(
    steps: int, unit: str = "load", minimum: int = PROGRESS_MIN_STEPS
) -> Iterator[Callable[[], None]]:
    """A callable advancing a tqdm bar on stderr for long runs on a terminal, else doing nothing."""
    tqdm = optional_module("tqdm")
    if tqdm is None or steps < minimum or not sys.stderr.isatty():
        yield lambda: None
        return
    with tqdm.tqdm(total=steps, unit=unit, file=sys.stderr, leave=False) as bar:
        yield lambda: bar.update(1)


def human_size(count: float) -> str:
    """``count`` bytes as B, KiB, MiB or GiB.

    >>> human_size(512), human_size(3 * 2**20)
    ('512 B', '3.0 MiB')
    """
    for unit in ("B", "KiB", "MiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"
