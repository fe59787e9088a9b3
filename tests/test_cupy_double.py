"""The CuPy double is as strict as real CuPy where gpuimg depends on it: per-stream reuse of freed
blocks, races between streams, per-device streams and pools, ``-ftz=true`` single precision, inline PTX
conversions, and CuPy 14's pinned memory pool rounding."""

from __future__ import annotations

import numpy as np
import pytest

TINY = np.array([1e-40, -1e-45, 1.1e-38, 2e-38, 0.5, -0.0], dtype=np.float32)


def _kernel(double, operation: str, x: np.ndarray, out_dtype: object) -> np.ndarray:
    kernel = double.ElementwiseKernel(
        f"{x.dtype.name} x", f"{np.dtype(out_dtype).name} y", operation
    )
    src = double.empty(x.shape, dtype=x.dtype)
    src.set(x)
    out = double.empty(x.shape, dtype=out_dtype)
    kernel(src, out)
    return out.get()


def _flushed(values: np.ndarray) -> np.ndarray:
    """What -ftz=true makes of float32 values: subnormals become zero of the same sign."""
    tiny = np.abs(values) < np.finfo(np.float32).tiny
    return np.where(tiny, np.copysign(np.float32(0), values), values).astype(np.float32)


def _same_bits(got: np.ndarray, expected: np.ndarray) -> bool:
    return got.dtype == expected.dtype and got.tobytes() == expected.tobytes()


# --------------------------------------------------------------------------------------------------
# Memory reuse and races
# --------------------------------------------------------------------------------------------------


def test_a_freed_block_comes_back_to_its_stream_at_once(double) -> None:
    stream = double.cuda.Stream(non_blocking=True)
    other = double.cuda.Stream(non_blocking=True)
    with stream:
        old = double.empty(256, dtype=np.uint8)
        old.set(np.full(256, 7, np.uint8), stream=stream)  # queued, not run
        del old
        new = double.empty(256, dtype=np.uint8)
    with pytest.raises(double.RaceError, match="nothing orders that work before this stream"):
        new.set(np.zeros(256, np.uint8), stream=other)
    assert new.get(stream=stream).tolist() == [7] * 256  # the old contents, same memory
    with other:
        assert double.empty(256, dtype=np.uint8).get(stream=other).tolist() == [0xA5] * 256


def test_two_streams_need_an_event_between_them(double) -> None:
    array = double.empty(4, dtype=np.float32)
    first, second, third = (double.cuda.Stream(non_blocking=True) for _ in range(3))
    array.set(np.arange(4, dtype=np.float32), stream=first)
    with pytest.raises(double.RaceError):
        array.get(stream=second)
    third.wait_event(first.record())
    second.wait_event(third.record())  # ordered through a third stream
    with second:
        wide = array.astype(np.float64)  # a read queued on second
    with pytest.raises(double.RaceError):  # so a write on first needs ordering too
        array.set(np.zeros(4, np.float32), stream=first)
    assert wide.get(stream=second).tolist() == [0, 1, 2, 3]  # the host waited for second
    array.set(np.zeros(4, np.float32), stream=first)


# --------------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------------


def test_streams_are_per_device(double) -> None:
    double.set_device_count(2)
    with double.cuda.Device(1):
        stream = double.cuda.Stream(non_blocking=True)
    assert stream.device_id == 1
    with pytest.raises(RuntimeError, match=r"created on \(1\) does not match .* device \(0\)"):
        with stream:
            pass
    with double.cuda.Device(1), stream:
        assert double.cuda.get_current_stream() is stream
        assert double.cuda.get_current_stream(0) is double.cuda.Stream.null
    assert double.cuda.get_current_stream(1) is double.cuda.Stream.null


def test_pools_are_per_device(double) -> None:
    double.set_device_count(2)
    pool = double.get_default_memory_pool()
    pool.free_all_blocks()
    with double.cuda.Device(1):
        pool.free_all_blocks()
        array = double.empty(1024, dtype=np.uint8)
        assert array.device.id == 1
        assert pool.used_bytes() == 1024
    assert pool.used_bytes() == 0
    del array
    pool.free_all_blocks()
    with double.cuda.Device(1):
        assert (pool.used_bytes(), pool.total_bytes()) == (0, 1024)
        pool.free_all_blocks()
        assert pool.total_bytes() == 0


def test_arrays_of_another_device(double) -> None:
    double.set_device_count(2)
    with double.cuda.Device(1):
        array = double.empty(3, dtype=np.float32)
        array.set(np.arange(3, dtype=np.float32))
    with pytest.raises(
        ValueError, match=r"resides \(1\) is different from the current device \(0\)"
    ):
        array.astype(np.float64)
    copy = array.copy()
    assert copy.device.id == 0 and copy.get().tolist() == [0, 1, 2]
    with pytest.raises(NotImplementedError, match="non-contiguous array between devices"):
        array[::2].copy(order="K")


def test_get_in_another_order_copies_on_the_device_first(double) -> None:
    pool = double.get_default_memory_pool()
    fortran = double.empty((64, 64), dtype=np.float32, order="F")
    fortran.set(np.asfortranarray(np.ones((64, 64), np.float32)))
    pool.set_limit(size=pool.total_bytes() + 512)
    try:
        assert fortran.get(order="F").flags.f_contiguous
        with pytest.raises(double.OutOfMemoryError):
            fortran.get()  # order='C', CuPy's default
    finally:
        pool.set_limit(size=0)


# --------------------------------------------------------------------------------------------------
# -ftz=true and inline PTX
# --------------------------------------------------------------------------------------------------


def test_single_precision_flushes_subnormals(double) -> None:
    wide = _kernel(double, "double w = (double)x; y = w;", TINY, np.float64)
    assert _same_bits(wide, _flushed(TINY).astype(np.float64))
    narrow = _kernel(double, "float f = (float)x; y = f;", TINY.astype(np.float64), np.float32)
    assert _same_bits(narrow, _flushed(TINY))
    product = _kernel(double, "y = __fmul_rn(x, x);", TINY, np.float32)
    assert _same_bits(product, _flushed(_flushed(TINY) * _flushed(TINY)))
    as_float = _kernel(double, "y = __uint_as_float(x);", TINY.view(np.uint32), np.float32)
    assert _same_bits(as_float, TINY)  # a reinterpretation keeps the bits
    device = double.empty(TINY.shape, dtype=np.float32)
    device.set(TINY)
    assert _same_bits(device.astype(np.float64).get(), _flushed(TINY).astype(np.float64))


def test_ptx_cvt_without_ftz_is_exact(double) -> None:
    widen = 'double w; asm("cvt.f64.f32 %0, %1;" : "=d"(w) : "f"(x)); y = w;'
    assert _same_bits(_kernel(double, widen, TINY, np.float64), TINY.astype(np.float64))
    narrow = 'float f; asm("cvt.rn.f32.f64 %0, %1;" : "=f"(f) : "d"(x)); y = f;'
    assert _same_bits(_kernel(double, narrow, TINY.astype(np.float64), np.float32), TINY)
    flushing = 'double w; asm("cvt.ftz.f64.f32 %0, %1;" : "=d"(w) : "f"(x)); y = w;'
    assert _same_bits(
        _kernel(double, flushing, TINY, np.float64), _flushed(TINY).astype(np.float64)
    )


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ('double w; asm("cvt.f32.f64 %0, %1;" : "=d"(w) : "f"(x)); y = w;', "converts float64"),
        ('float f; asm("cvt.rn.f32.f64 %0, %1;" : "=f"(f) : "d"(x)); y = (double)f;', "bound to a"),
        ('double w; asm("cvt.rn.f64.f32 %0, %1;" : "=d"(w) : "f"(x)); y = w;', "rounding modifier"),
        ('double w; asm("add.f64 %0, %1;" : "=d"(w) : "f"(x)); y = w;', "does not implement"),
        ('double w; asm("cvt.f64.f32 %0, %1;" : "d"(w) : "f"(x)); y = w;', "output constraint"),
        ("double w; y = w;", "read before it is assigned"),
    ],
)
def test_inline_ptx_is_checked(double, operation, error) -> None:
    with pytest.raises((TypeError, SyntaxError, NameError, NotImplementedError), match=error):
        _kernel(double, operation, TINY, np.float64)


# --------------------------------------------------------------------------------------------------
# Pinned memory
# --------------------------------------------------------------------------------------------------


def test_pinned_pool_rounds_up_to_a_power_of_two(double) -> None:
    before = double.pinned_bytes()
    pooled = double.cuda.alloc_pinned_memory(3000)
    assert double.pinned_bytes() == before + 4096
    exact = double.cuda.PinnedMemoryPointer(double.cuda.PinnedMemory(3000), 0)
    assert double.pinned_bytes() == before + 4096 + 3000
    assert len(np.frombuffer(exact, dtype=np.uint8)) == 3000
    del pooled, exact
    assert double.get_default_pinned_memory_pool().n_free_blocks() == 1
    double.get_default_pinned_memory_pool().free_all_blocks()
    assert double.pinned_bytes() == before
