"""Which CuPy gpuimg talks to, and which CUDA devices it may use.

:func:`get_cupy` imports CuPy lazily and checks a CUDA device exists; :func:`use_backend` swaps in
another module with CuPy's interface (the strict CPU test double in ``tests/cupy_double.py``), and
state built for the old backend (streams, pooled pinned buffers) is dropped through the hooks of
:func:`on_backend_swap`. :func:`resolve_device` turns ``'cuda'``, ``'cuda:1'``, ``1`` or a
``cupy.cuda.Device`` into a device id and remembers it, so memory functions visit only devices
gpuimg was asked for.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from gpuimg.config import reset_after_fork
from gpuimg.errors import DeviceUnavailableError

INSTALL_HINT = "pip install 'gpuimg[cuda12]' (CUDA 12) or 'gpuimg[cuda13]' (CUDA 13)"

_lock = threading.RLock()
_override: ModuleType | None = None
_checked: set[str] = set()
_devices_asked: set[int] = set()
_swap_hooks: list[Callable[[], None]] = []
_forked_after_cuda = False  # set in a child forked after this process initialised CUDA


def get_cupy() -> ModuleType:
    """Return the CuPy module (or the backend installed by :func:`use_backend`).

    Returns
    -------
    module
        ``cupy``, imported on first use.

    Raises
    ------
    DeviceUnavailableError
        CuPy is not installed, or it is installed but no CUDA device or driver can be used.
    """
    if _override is not None:
        return _override
    if _forked_after_cuda:
        raise DeviceUnavailableError(
            "this process was forked from one that had already initialised CUDA, and CUDA cannot "
            "be used in such a child; start workers with the 'spawn' method instead "
            "(multiprocessing.get_context('spawn'), DataLoader(multiprocessing_context='spawn'))"
        )
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise DeviceUnavailableError(
            f"a GPU read needs CuPy, which is not installed ({exc}); {INSTALL_HINT}"
        ) from exc
    if "cupy" not in _checked:
        _check_devices(cupy)
        _checked.add("cupy")
    return cupy


def _check_devices(cupy: ModuleType) -> None:
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise DeviceUnavailableError(
            f"CuPy {cupy.__version__} is installed but no CUDA device is usable: {exc}"
        ) from exc
    if count == 0:
        raise DeviceUnavailableError(
            f"CuPy {cupy.__version__} is installed but found 0 CUDA devices, expected at least 1"
        )


def loaded_backend() -> ModuleType | None:
    """The backend in use, without importing CuPy when nothing has imported it yet."""
    if _override is not None:
        return _override
    module = sys.modules.get("cupy")
    return module if isinstance(module, ModuleType) else None


def substituted() -> bool:
    """True while :func:`use_backend` has put another module in CuPy's place."""
    return _override is not None


def on_backend_swap(hook: Callable[[], None]) -> None:
    """Have ``hook()`` drop state built for one backend whenever :func:`use_backend` swaps it."""
    _swap_hooks.append(hook)


@contextmanager
def use_backend(module: ModuleType) -> Iterator[ModuleType]:
    """Use ``module`` in place of CuPy inside the ``with`` block (a test hook).

    Parameters
    ----------
    module : module
        Anything with the CuPy subset :mod:`gpuimg.device` uses.

    Yields
    ------
    module
        ``module``.
    """
    global _override
    with _lock:
        previous = _override
        _forget_backend_state()
        _override = module
    try:
        yield module
    finally:
        with _lock:
            _forget_backend_state()
            _override = previous


def _forget_backend_state() -> None:
    """Drop pooled buffers, streams and devices that belong to the backend being swapped out."""
    for hook in _swap_hooks:
        hook()
    _devices_asked.clear()


class BackendCache:
    """Objects built for the current backend (streams, compiled kernels, codecs), built once per key.

    Emptied in a forked child (the parent's CUDA objects are not the child's) and, with
    ``per_backend=True``, whenever :func:`use_backend` swaps the backend.
    """

    def __init__(self, *, per_backend: bool) -> None:
        self._lock = threading.Lock()
        self._items: dict[Hashable, Any] = {}
        reset_after_fork(self)
        if per_backend:
            on_backend_swap(self.clear)

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The object stored under ``key``, built by ``build()`` the first time."""
        with self._lock:
            if key not in self._items:
                self._items[key] = build()
            return self._items[key]

    def clear(self) -> None:
        """Forget every object."""
        with self._lock:
            self._items.clear()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._items.clear()


def is_device_array(obj: object) -> bool:
    """True if ``obj`` is a CuPy (or test-backend) array; never imports CuPy."""
    backend = loaded_backend()
    return backend is not None and isinstance(obj, backend.ndarray)


def resolve_device(device: object) -> int | None:
    """Normalise a device specification.

    Parameters
    ----------
    device : None, str, int or cupy.cuda.Device
        None or ``'cpu'`` for the host; ``'cuda'`` (the current device), ``'cuda:N'``, ``N`` or a
        ``cupy.cuda.Device`` for a GPU.

    Returns
    -------
    int or None
        The CUDA device id, or None for the host.

    Raises
    ------
    ValueError
        ``device`` is not a device specification.
    DeviceUnavailableError
        A GPU is asked for but CuPy or that device is missing.
    """
    if device is None or device == "cpu":
        return None
    backend = loaded_backend()
    if backend is not None and isinstance(device, backend.cuda.Device):
        index = device.id
    elif device == "cuda":
        index = get_cupy().cuda.Device().id
    elif isinstance(device, str) and device.startswith("cuda:") and device[5:].isdigit():
        index = int(device[5:])
    elif isinstance(device, (int, np.integer)) and not isinstance(device, bool) and device >= 0:
        index = int(device)
    else:
        raise ValueError(
            f"device is {device!r}, expected None, 'cpu', 'cuda', 'cuda:N', an int N >= 0 "
            "or a cupy.cuda.Device"
        )
    count = get_cupy().cuda.runtime.getDeviceCount()
    if index >= count:
        raise DeviceUnavailableError(f"device is {device!r}, but only {count} CUDA device(s) exist")
    with _lock:
        _devices_asked.add(index)
    return index


def devices_in_use(backend: ModuleType) -> list[int]:
    """The devices whose memory pools to visit: the current one and those gpuimg was asked for.

    Devices never asked for are left alone: switching to one would create a CUDA context there.
    """
    try:
        current = backend.cuda.Device().id
    except backend.cuda.runtime.CUDARuntimeError:  # CuPy without a usable device: nothing pooled
        return []
    with _lock:
        return sorted(_devices_asked | {current})


def _after_fork_in_child() -> None:
    """Forget the parent's lock in a forked child; remember whether the parent had used CUDA."""
    global _lock, _forked_after_cuda
    _lock = threading.RLock()
    _forked_after_cuda = _forked_after_cuda or "cupy" in _checked


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
