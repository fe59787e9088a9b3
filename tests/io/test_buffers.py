"""Tests for gpuimg.io.buffers: the reusable host buffer pool."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gpuimg.io.buffers import HostBufferPool, default_pool, size_class


def test_borrowed_buffer_is_exact_writable_uint8():
    pool = HostBufferPool(1 << 20)
    with pool.borrow(1234) as buf:
        assert buf.shape == (1234,) and buf.dtype == np.uint8
        assert buf.flags.c_contiguous and buf.flags.writeable
        buf[:] = 7
    with pool.borrow(0) as empty:
        assert empty.shape == (0,)


def test_same_memory_is_reused():
    pool = HostBufferPool(1 << 20)
    with pool.borrow(100_000) as buf:
        address = buf.ctypes.data
    for nbytes in (100_000, 99_000, size_class(100_000)):
        with pool.borrow(nbytes) as buf:
            assert buf.ctypes.data == address
    assert pool.retained_bytes == size_class(100_000)


def test_concurrent_borrows_get_distinct_memory_and_are_counted():
    pool = HostBufferPool(1 << 20)
    with pool.borrow(5000) as a, pool.borrow(5000) as b:
        assert a.ctypes.data != b.ctypes.data
        assert pool.borrowed_bytes == 2 * size_class(5000)
        assert pool.retained_bytes == 0
    assert pool.borrowed_bytes == 0
    assert pool.retained_bytes == 2 * size_class(5000)


def test_pool_stays_bounded_and_evicts_least_recent():
    cap = size_class(10_000)
    pool = HostBufferPool(2 * cap)
    with pool.borrow(10_000) as a, pool.borrow(10_000) as b, pool.borrow(10_000) as c:
        addresses = [x.ctypes.data for x in (a, b, c)]
    assert pool.retained_bytes == 2 * cap  # the first one returned was evicted
    with pool.borrow(10_000) as again:
        assert again.ctypes.data in addresses
    with pool.borrow(3 * cap) as big:
        assert big.nbytes == 3 * cap
    assert pool.retained_bytes <= pool.max_bytes


def test_buffer_larger_than_max_is_not_retained():
    pool = HostBufferPool(10_000)
    with pool.borrow(50_000):
        pass
    assert pool.retained_bytes == 0


def test_lowering_max_bytes_trims_and_clear_releases():
    pool = HostBufferPool(1 << 20)
    with pool.borrow(8000), pool.borrow(20_000):
        pass
    assert pool.retained_bytes == size_class(8000) + size_class(20_000)
    pool.max_bytes = size_class(20_000)
    assert pool.retained_bytes <= size_class(20_000)
    pool.clear()
    assert pool.retained_bytes == 0
    with pytest.raises(ValueError, match="max_bytes"):
        pool.max_bytes = -1
    with pytest.raises(ValueError, match="max_bytes"):
        HostBufferPool(-5)
    with pytest.raises(ValueError, match="borrow"), pool.borrow(-1):
        pass


def test_size_classes_are_tight_and_monotone():
    sizes = [1, 4096, 4097, 5000, 65_536, 65_537, 10**6, 30_409_056]
    classes = [size_class(n) for n in sizes]
    assert classes == sorted(classes)
    for n, cls in zip(sizes, classes, strict=True):
        assert cls >= n
        assert cls <= max(4096, 1.25 * n)


def test_threads_never_share_a_lent_buffer():
    pool = HostBufferPool(1 << 20)
    errors = []

    def work(tag: int) -> None:
        for _ in range(200):
            with pool.borrow(6000) as buf:
                buf[:] = tag
                time.sleep(0)  # let other threads borrow meanwhile
                if not (buf == tag).all():
                    errors.append(tag)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.borrowed_bytes == 0
    assert pool.retained_bytes <= pool.max_bytes


def test_default_pool():
    assert isinstance(default_pool, HostBufferPool)
    assert default_pool.max_bytes > 0
