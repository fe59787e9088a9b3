"""Shared fixtures: the GPU backend each GPU test body runs on (the CuPy test double, and real CuPy
when a CUDA device is present), and a check that every pinned buffer comes back."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import cupy_double
import pytest
from client_files import write_client_files

from gpuimg import device


def _real_cupy() -> ModuleType:
    cupy = pytest.importorskip("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        count = 0
    if count == 0:
        pytest.skip("CuPy is installed but there is no CUDA device")
    return cupy


@pytest.fixture(
    params=[pytest.param("double", id="double"), pytest.param("cupy", marks=pytest.mark.cuda)]
)
def xp(request: pytest.FixtureRequest) -> Iterator[ModuleType]:
    """The array backend, installed as gpuimg's CuPy: the test double, then real CuPy on a GPU."""
    module = cupy_double if request.param == "double" else _real_cupy()
    pool = device.default_pinned_pool().stats()
    with device.use_backend(module):
        yield module
    device.set_pinned_pool_limits(buffer_size=pool.buffer_size, max_buffers=pool.max_buffers)


@pytest.fixture(scope="session")
def real_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``{name: path}`` of real NIfTI files for the client tests (nibabel's, and written by nibabel)."""
    pytest.importorskip("nibabel")
    return write_client_files(tmp_path_factory.mktemp("client-files"))


@pytest.fixture
def real_cupy() -> ModuleType:
    """Real CuPy with a CUDA device (skipped otherwise), for tests marked ``cuda``."""
    return _real_cupy()


@pytest.fixture
def double() -> Iterator[ModuleType]:
    """The CuPy test double alone, for tests of behaviour only the double can stage."""
    with device.use_backend(cupy_double):
        yield cupy_double
    cupy_double.set_device_count(1)


@pytest.fixture
def gpu() -> Iterator[ModuleType]:
    """Real CuPy alone, on a CUDA device, for tests that need real streams (mark them ``cuda``)."""
    with device.use_backend(_real_cupy()) as cupy:
        yield cupy


@pytest.fixture(autouse=True)
def pinned_buffers_returned(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a GPU test, no pinned buffer may still be handed out."""
    yield
    if {"xp", "double", "gpu"} & set(request.fixturenames):
        stats = device.default_pinned_pool().stats()
        assert stats.in_use == 0, f"{stats.in_use} pinned buffer(s) still in use after the test"
