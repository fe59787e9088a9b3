"""Process-wide settings in one validated table, changeable for a block with :func:`configure`; the
shared helper-thread pool and its budget; fork safety of process state.

Every tunable of gpuimg is a field of :class:`Settings`. A value is checked when it is set (as an
attribute, through :func:`configure`, or from a ``GPUIMG_<NAME>`` environment variable read at import),
and an error says what was expected and what was found.

>>> from gpuimg import config
>>> with config.configure(threads=1):
...     config.settings.threads
1
>>> config.configure(threads=0)
Traceback (most recent call last):
...
ValueError: gpuimg setting threads is 0, expected an integer >= 1
"""

from __future__ import annotations

import importlib.util
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from numbers import Integral
from types import TracebackType
from typing import Any

#: Below this many elements a scaling pass runs on the calling thread only.
PARALLEL_MIN_ELEMENTS = 1 << 20

#: Streaming gzip backends by name, fastest first, and the module each needs.
GZIP_BACKENDS = {"isal": "isal", "zlib-ng": "zlib_ng", "zlib": "zlib"}

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class _Option:
    """One row of the settings table: the default, the check and what it expects."""

    default: Any
    expected: str
    check: Callable[[Any], bool]
    parse: Callable[[str], Any]


def _integer(default: int, minimum: int, maximum: int | None = None) -> _Option:
    def check(value: Any) -> bool:
        return (
            isinstance(value, Integral)
            and not isinstance(value, bool)
            and int(value) >= minimum
            and (maximum is None or int(value) <= maximum)
        )

    expected = f"an integer >= {minimum}" if maximum is None else f"an integer {minimum}-{maximum}"
    return _Option(default, expected, check, int)


def _flag(default: bool) -> _Option:
    def parse(text: str) -> bool | str:
        word = text.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else text

    return _Option(
        default, f"True or False (environment: one of {_TRUE + _FALSE})", _is_bool, parse
    )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _gzip_backend_available(value: Any) -> bool:
    return value is None or (
        value in GZIP_BACKENDS and importlib.util.find_spec(GZIP_BACKENDS[value]) is not None
    )


#: The settings table: name -> default, check and what it expects (documented on :class:`Settings`).
OPTIONS: dict[str, _Option] = {
    "threads": _integer(max(1, min(os.cpu_count() or 1, 8)), 1),
    "bgzf": _flag(False),
    "compresslevel": _integer(1, 0, 9),
    "fsync": _flag(True),
    "pipeline_chunk_bytes": _integer(1 << 20, 1),
    "pipeline_slots": _integer(4, 1),
    "pinned_buffer_size": _integer(8 << 20, 16),
    "pinned_max_buffers": _integer(4, 1),
    "gzip_backend": _Option(
        None,
        "None (the fastest) or an installed backend of " + ", ".join(map(repr, GZIP_BACKENDS)),
        _gzip_backend_available,
        lambda text: text or None,
    ),
    "checkpoint_spacing": _integer(1 << 20, 1),
    "window_bytes": _integer(4 << 20, 0),
    "gzip_index_bytes": _integer(1 << 30, 0),
    "open_files": _integer(128, 0),
}


def _checked(name: str, value: Any) -> Any:
    """``value`` for setting ``name`` once checked (integers as ``int``), else an error saying why."""
    option = OPTIONS.get(name)
    if option is None:
        raise TypeError(f"unknown gpuimg settings [{name!r}], expected some of {sorted(OPTIONS)}")
    if not option.check(value):
        raise ValueError(f"gpuimg setting {name} is {value!r}, expected {option.expected}")
    return int(value) if isinstance(value, Integral) and not isinstance(value, bool) else value


class Settings:
    """gpuimg's tunables: every value is checked when set.

    Attributes
    ----------
    threads : int
        Threads used inside one read or write (decoding, scaling, compressing), the calling thread
        included; the shared helper pool (:func:`executor`) has ``threads - 1`` workers. The loader
        has its own ``num_threads``.
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
    pipeline_chunk_bytes : int
        Bytes read per step of a whole-array scaled host read: small enough to stay in cache between
        the read and the scaling pass, large enough to amortise the per-chunk overhead.
    pipeline_slots : int
        Staging slots of a sequential (gzip) host read that has a helper thread: how many chunks can
        be read and not yet scaled, so the reader gets ahead where the stream decompresses fast.
    pinned_buffer_size : int
        Bytes of each pinned host buffer of the default pool: the chunk size of GPU reads.
    pinned_max_buffers : int
        Pinned buffers the default pool may hold.
    gzip_backend : str or None
        Streaming gzip backend, one of ``GZIP_BACKENDS`` that is installed; None picks the fastest.
        It also picks the engine of seekable gzip reads where that backend can checkpoint.
    checkpoint_spacing : int
        Uncompressed bytes between the checkpoints of a new gzip seek index.
    window_bytes : int
        Decompressed bytes a gzip seek index keeps from the last read, so the next read of nearby
        data needs no decompression.
    gzip_index_bytes : int
        Memory all gzip seek indexes of the process may hold together (checkpoints and kept bytes).
        Past it, the least recently used indexes are emptied; they rebuild as their files are read.
    open_files : int
        Files gpuimg keeps open by its own choice (proxies loaded with ``keep_file_open=None``, the
        default), so the file a load opened serves the reads that follow. Past it, the least recently
        used are closed and opened anew by path on their next read; 0 keeps none, as nibabel.
        Files kept with ``keep_file_open=True`` are not counted and never closed by gpuimg.
    """

    threads: int
    bgzf: bool
    compresslevel: int
    fsync: bool
    pipeline_chunk_bytes: int
    pipeline_slots: int
    pinned_buffer_size: int
    pinned_max_buffers: int
    gzip_backend: str | None
    checkpoint_spacing: int
    window_bytes: int
    gzip_index_bytes: int
    open_files: int

    def __init__(self) -> None:
        for name, option in OPTIONS.items():
            object.__setattr__(self, name, option.default)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, _checked(name, value))
        for callback in _watchers.get(name, ()):
            callback()

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in OPTIONS)
        return f"Settings({values})"


#: Callbacks run after a setting changes, registered with :func:`watch`.
_watchers: dict[str, list[Callable[[], None]]] = {}


def watch(callback: Callable[[], None], *names: str) -> None:
    """Call ``callback()`` after any of the settings ``names`` changes (and once now).

    For state built from settings in a lower-level module, such as the default pinned pool.
    """
    for name in names:
        _checked(name, OPTIONS[name].default)
        _watchers.setdefault(name, []).append(callback)
    callback()


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``GPUIMG_<NAME>`` variables in ``environ``, parsed and checked.

    Raises
    ------
    ValueError
        Naming the variable, the text found and what was expected.
    """
    found = {}
    for name, option in OPTIONS.items():
        variable = f"GPUIMG_{name.upper()}"
        if variable not in environ:
            continue
        text = environ[variable]
        try:
            value = option.parse(text)
        except ValueError:
            value = text
        if not option.check(value):
            raise ValueError(
                f"environment variable {variable} is {text!r}, expected {option.expected}"
            )
        found[name] = value
    return found


class _Changes:
    """Settings changed by :func:`configure`; leaving its ``with`` block puts the old values back."""

    def __init__(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - set(OPTIONS)
        if unknown:
            raise TypeError(
                f"unknown gpuimg settings {sorted(unknown)}, expected some of {sorted(OPTIONS)}"
            )
        checked = {name: _checked(name, value) for name, value in changes.items()}
        self._before = {name: getattr(settings, name) for name in checked}
        for name, value in checked.items():
            setattr(settings, name, value)

    def __enter__(self) -> Settings:
        return settings

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for name, value in self._before.items():
            setattr(settings, name, value)


def configure(**changes: Any) -> _Changes:
    """Change settings: for the rest of the process, or for a ``with`` block.

    Every value is checked before any is applied, so a bad one changes nothing. As a context
    manager, the previous values come back when the block ends, also on an exception.

    Parameters
    ----------
    **changes
        Setting names (the attributes of :class:`Settings`) and their new values.

    Raises
    ------
    TypeError
        For a name that is not a setting.
    ValueError
        For a value the setting does not accept, saying what it expects.
    """
    return _Changes(changes)


settings = Settings()
for _name, _value in from_environment(os.environ).items():
    setattr(settings, _name, _value)
_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_workers = 0
_busy_lock = threading.Lock()
_busy_threads = 0
#: Objects whose ``_after_fork()`` runs in a child created by ``os.fork`` (see :func:`reset_after_fork`).
_fork_aware: weakref.WeakSet[Any] = weakref.WeakSet()


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
    """The shared helper pool for intra-read parallelism: ``settings.threads - 1`` workers.

    Created on first use, and again when ``threads`` has changed since (the old pool finishes the
    jobs it has and its threads end).
    """
    global _executor, _executor_workers
    workers = max(1, settings.threads - 1)
    with _executor_lock:
        if _executor is None or _executor_workers != workers:
            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpuimg")
            _executor_workers = workers
        return _executor


def reset_after_fork(obj: Any) -> None:
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
