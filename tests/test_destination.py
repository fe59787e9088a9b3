"""Where a read's result lives: ``destination()`` resolves the device once, or takes it from ``out``."""

from __future__ import annotations

import numpy as np
import pytest

from gpuimg import device
from gpuimg.destination import HOST, destination


def test_the_host_is_the_default_and_allocates_numpy():
    assert destination() == HOST == destination(device="cpu", out=np.empty(2))
    assert type(HOST.empty((2, 3), np.float32)) is np.ndarray
    assert HOST.ready_event() is None


def test_a_device_out_says_which_gpu(double):
    double.set_device_count(2)
    with device.using_device(1):
        out = device.empty((2,), np.float32)
    where = destination(out=out)
    assert where.device_id == 1 and not where.on_host
    assert isinstance(where.empty((3,), np.float32), double.ndarray)


def test_out_and_device_must_agree(double):
    with pytest.raises(ValueError, match="out is a host ndarray, but device is 'cuda'"):
        destination(device="cuda", out=np.empty(2))
    with pytest.raises(ValueError, match="out is a device array, but device is 'cpu'"):
        destination(device="cpu", out=device.empty((2,), np.float32))


def test_arrays_are_brought_where_the_read_goes(double):
    values = np.arange(6, dtype=np.int16)
    on_device = destination(device=0).asarray(values, np.float32)
    assert isinstance(on_device, double.ndarray) and on_device.dtype == np.float32
    back = HOST.asarray(on_device, np.float64)
    assert type(back) is np.ndarray and back.dtype == np.float64
    np.testing.assert_array_equal(back, values)
