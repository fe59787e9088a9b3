"""Defaults of the header checks (nibabel's ``imageglobals``): the logger they report to and the error level.

``check_fix`` (see :mod:`gpuimg.headers.checks`) logs each problem it finds to :data:`logger` at the
problem's level (10 to 50, the :mod:`logging` levels) and raises for a problem at :data:`error_level` or
above. Both are read at each call, so assigning them here changes every later check:

>>> import gpuimg.imageglobals as ig
>>> with ig.ErrorLevel(50):
...     ig.error_level
50

The logger has no handler of its own: problems at ``WARNING`` (30) and above reach stderr through
:mod:`logging`'s last-resort handler until the application configures logging.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

#: Problems at this level or above raise (40: nibabel's default, "error").
error_level = 40
#: Where header problems are logged.
logger = logging.getLogger("gpuimg.global")


@contextmanager
def ErrorLevel(level: int) -> Iterator[None]:
    """Context manager: set :data:`error_level` to `level` for the duration of the block."""
    global error_level
    original, error_level = error_level, level
    try:
        yield
    finally:
        error_level = original


@contextmanager
def LoggingOutputSuppressor() -> Iterator[None]:
    """Context manager: nothing logged to :data:`logger` is output for the duration of the block."""
    held = logger
    was_disabled, held.disabled = held.disabled, True
    try:
        yield
    finally:
        held.disabled = was_disabled
