"""Process-wide settings, changeable for a block with :func:`configure`.

>>> from gpuimg import config
>>> with config.configure(threads=1):
...     config.settings.threads
1
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields

#: Below this many elements a scaling pass runs on the calling thread only.
PARALLEL_MIN_ELEMENTS = 1 << 20


@dataclass
class Settings:
    """gpuimg's tunables.

    Attributes
    ----------
    threads : int
        Threads used inside one read (scaling passes); the loader has its own ``num_threads``.
    """

    threads: int = max(1, min(os.cpu_count() or 1, 8))


settings = Settings()
_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


@contextmanager
def configure(**changes) -> Iterator[Settings]:
    """Change settings for the duration of a ``with`` block."""
    names = {f.name for f in fields(Settings)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(
            f"unknown gpuimg settings {sorted(unknown)}, expected some of {sorted(names)}"
        )
    before = {name: getattr(settings, name) for name in changes}
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        yield settings
    finally:
        for name, value in before.items():
            setattr(settings, name, value)


def executor() -> ThreadPoolExecutor:
    """The shared worker pool for intra-read parallelism (created on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="gpuimg")
        return _executor
