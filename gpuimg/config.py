"""Process-wide settings, changeable for a block with :func:`configure`; fork safety of process state.

>>> from gpuimg import config
>>> with config.configure(threads=1):
...     config.settings.threads
1
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from itertools import count

#: Below this many elements a scaling pass runs on the calling thread only.
PARALLEL_MIN_ELEMENTS = 1 << 20


@dataclass
class Settings:
    """gpuimg's tunables.

    Attributes
    ----------
    threads : int
        Threads used inside one read or write (decoding, scaling, compressing); the loader has its
        own ``num_threads``.
    bgzf : bool
        Save ``.gz`` files as BGZF (independent 64 KiB gzip members that gpuimg decodes in
        parallel and slices block by block; every gzip reader reads them) rather than one gzip
        stream. A save's ``bgzf=`` argument overrides it.
    compresslevel : int
        gzip level 0-9 of saved ``.gz`` files; 0-3 use ISA-L.
    fsync : bool
        Saves ``fsync`` the new file before renaming it over the old one, and the folder after, so
        a crash or power cut leaves the old file or the new one (see :mod:`gpuimg.io.atomic`).
        False skips both for scratch output; the cost is in ``docs/performance.md``.
    """

    threads: int = max(1, min(os.cpu_count() or 1, 8))
    bgzf: bool = False
    compresslevel: int = 1
    fsync: bool = True


settings = Settings()
_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_busy_lock = threading.Lock()
_busy_threads = 0
#: Objects whose ``_after_fork()`` runs in a child created by ``os.fork`` (see :func:`reset_after_fork`).
_fork_aware: weakref.WeakSet = weakref.WeakSet()


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


@contextmanager
def claim_helpers(wanted: int) -> Iterator[int]:
    """Claim up to ``wanted`` helper threads for one read, within ``settings.threads`` in all.

    The calling thread counts as busy for the duration, and so does every helper granted, so reads
    running at the same time (user threads, the loader's workers) share the budget instead of each
    starting helpers of its own: one read alone gets the free cores; two reads on two cores get none,
    and each runs on its own thread, which is faster than four threads contending for two cores.

    Yields
    ------
    int
        The number of helpers granted (0 to ``wanted``); submit that many jobs to :func:`executor`.
    """
    global _busy_threads
    with _busy_lock:
        granted = max(0, min(wanted, settings.threads - _busy_threads - 1))
        _busy_threads += 1 + granted
    try:
        yield granted
    finally:
        with _busy_lock:
            _busy_threads -= 1 + granted


def executor() -> ThreadPoolExecutor:
    """The shared worker pool for intra-read parallelism (created on first use)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="gpuimg")
        return _executor


def reset_after_fork(obj) -> None:
    """Have ``obj._after_fork()`` called in every child process forked while ``obj`` is alive.

    A forked child has only the thread that called ``fork``: locks other threads held stay held, pool
    threads are gone, and open files share their position with the parent. Each object with such
    state registers here and rebuilds it (new locks, files reopened lazily) in the child, the way the
    standard ``logging`` module resets its handlers' locks. The object is held weakly.
    """
    _fork_aware.add(obj)


def _after_fork_in_child() -> None:
    global _executor, _executor_lock, _busy_lock, _busy_threads
    # The parent's pool threads do not exist here: a job submitted to its executor would never run.
    _executor, _executor_lock = None, threading.Lock()
    _busy_lock, _busy_threads = threading.Lock(), 0
    for obj in list(_fork_aware):
        obj._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_for_each(work: Callable[[int], None], tasks: int) -> None:
    """Run ``work(0)`` ... ``work(tasks - 1)`` on this thread and the helpers the budget grants.

    Threads take the next task as they finish one, so uneven tasks (blocks that decode fast or
    slow) balance out. The first error is raised, on the calling thread, once every thread has
    stopped; no task starts after an error.
    """
    numbers = count()  # next() on itertools.count is atomic under the GIL
    failed: list[BaseException] = []

    def loop() -> None:
        while not failed and (number := next(numbers)) < tasks:
            try:
                work(number)
            except BaseException as error:  # raised again on the calling thread
                failed.append(error)

    with claim_helpers(min(settings.threads, tasks) - 1) as helpers:
        jobs = [executor().submit(loop) for _ in range(helpers)]
        try:
            loop()
        finally:
            for job in jobs:
                job.result()
    if failed:
        raise failed[0]
