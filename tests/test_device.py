"""The device seam: lazy CuPy, device ids, the pinned pool, the fused kernel, and the test double."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

import numpy as np
import pytest

from gpuimg import device
from gpuimg.device import backend
from gpuimg.errors import DeviceMemoryError, DeviceUnavailableError
from gpuimg.scaling import apply_scaling, plan_scaling
from gpuimg.scaling_kernel import kernel_spec

# --------------------------------------------------------------------------------------------------
# Finding CuPy
# --------------------------------------------------------------------------------------------------


def test_import_gpuimg_does_not_import_cupy() -> None:
    code = "import sys, gpuimg, gpuimg.device, gpuimg.gpuread; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_cupy_without_cupy_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(DeviceUnavailableError, match=r"not installed.*gpuimg\[cuda12\]"):
        backend.get_cupy()


def test_get_cupy_with_cupy_but_no_gpu() -> None:
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("a CUDA device is present")
    except cupy.cuda.runtime.CUDARuntimeError:
        pass
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        backend.get_cupy()


def test_is_device_array_never_imports_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert not device.is_device_array(np.zeros(3))
    assert "cupy" not in sys.modules


def test_is_device_array(xp) -> None:
    assert device.is_device_array(xp.empty(3))
    assert not device.is_device_array(np.zeros(3))


def test_use_backend_restores(double) -> None:
    with device.use_backend(np):
        assert backend.get_cupy() is np
    assert backend.get_cupy() is double


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, None), ("cpu", None), ("cuda", 0), ("cuda:0", 0), (0, 0), (np.int64(0), 0)],
)
def test_resolve_device(xp, spec, expected) -> None:
    assert device.resolve_device(spec) == expected


def test_resolve_device_object(xp) -> None:
    assert device.resolve_device(xp.cuda.Device(0)) == 0


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", -1, True, 1.0, b"cuda"])
def test_resolve_device_rejects(double, spec) -> None:
    with pytest.raises(ValueError, match="expected None, 'cpu', 'cuda'"):
        device.resolve_device(spec)


def test_seam_operations_put_work_on_the_device_asked_for(double) -> None:
    double.set_device_count(2)
    array = device.empty((2, 3), np.float32, order="F", device=1)
    assert array.device.id == 1 and array.flags.f_contiguous
    assert double.cuda.Device().id == 0  # the current device is left as it was
    with device.using_device(1):
        stream = device.new_stream()
        assert stream.device_id == 1
        with stream:
            assert device.current_stream() is stream
        assert device.empty(4, np.uint8).device.id == 1
    assert stream is not device.new_stream()


def test_resolve_device_counts_devices(double) -> None:
    with pytest.raises(DeviceUnavailableError, match=r"'cuda:1', but only 1 CUDA device"):
        device.resolve_device("cuda:1")
    double.set_device_count(2)
    assert device.resolve_device("cuda:1") == 1
    assert device.resolve_device(1) == 1


# --------------------------------------------------------------------------------------------------
# Pinned pool
# --------------------------------------------------------------------------------------------------


def test_pinned_pool_reuses_and_counts(xp) -> None:
    pool = device.PinnedPool(buffer_size=64, max_buffers=2)
    first = pool.acquire()
    assert (first.dtype, first.size) == (np.uint8, 64)
    assert pool.stats().in_use == 1
    pool.release(first)
    again = pool.acquire()
    assert again.ctypes.data == first.ctypes.data
    pool.release(again)
    assert pool.stats() == device.PinnedPoolStats(
        buffers=1, bytes=64, in_use=0, pending=0, buffer_size=64, max_buffers=2
    )


def test_pinned_buffer_waits_for_its_event(double) -> None:
    """A buffer released with an event is handed out again only after the copy behind it ran."""
    pool = device.PinnedPool(buffer_size=16, max_buffers=1)
    stream = double.cuda.Stream(non_blocking=True)
    target = double.empty(16, dtype=np.uint8)
    buffer = pool.acquire()
    buffer[:] = 7
    target.set(buffer, stream=stream)
    event = stream.record()
    pool.release(buffer, event)
    assert pool.stats().pending == 1 and not event.done
    reused = pool.acquire()
    assert event.done
    reused[:] = 9
    pool.release(reused)
    assert (target.get(stream=stream) == 7).all()


def test_double_punishes_early_reuse(double) -> None:
    """Without waiting for the event, the pinned source is read late, as a GPU would."""
    stream = double.cuda.Stream(non_blocking=True)
    target = double.empty(4, dtype=np.uint8)
    host = np.frombuffer(double.cuda.alloc_pinned_memory(4), dtype=np.uint8, count=4)
    host[:] = 1
    target.set(host, stream=stream)
    host[:] = 2
    assert (target.get(stream=stream) == 2).all()
    pageable = np.ones(4, dtype=np.uint8)
    target.set(pageable, stream=stream)
    pageable[:] = 3
    assert (target.get(stream=stream) == 1).all()


def test_pinned_pool_is_bounded_across_threads(xp) -> None:
    pool = device.PinnedPool(buffer_size=16, max_buffers=1)
    held = pool.acquire()
    got: list[np.ndarray] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    waiter.join(0.05)
    assert not got and pool.stats().buffers == 1
    pool.release(held)
    waiter.join(5)
    assert got and got[0].ctypes.data == held.ctypes.data
    pool.release(got[0])


def test_pinned_pool_configure(xp) -> None:
    pool = device.PinnedPool(buffer_size=32, max_buffers=2)
    idle, busy = pool.acquire(), pool.acquire()
    pool.release(idle)
    pool.configure(buffer_size=64)
    assert pool.stats().buffers == 1
    pool.release(busy)
    assert pool.stats().buffers == 0
    assert pool.acquire().size == 64
    with pytest.raises(ValueError, match="buffer_size is 8, expected at least 16"):
        pool.configure(buffer_size=8)
    with pytest.raises(ValueError, match="max_buffers is 0, expected at least 1"):
        pool.configure(max_buffers=0)


def test_pinned_pool_clear_waits_for_pending(double) -> None:
    pool = device.PinnedPool(buffer_size=16, max_buffers=2)
    stream = double.cuda.Stream(non_blocking=True)
    buffer = pool.acquire()
    double.empty(16, dtype=np.uint8).set(buffer, stream=stream)
    event = stream.record()
    pool.release(buffer, event)
    pool.clear()
    assert event.done
    assert pool.stats().buffers == 0


def test_pinned_buffers_pin_exactly_their_size(double) -> None:
    """CuPy's pinned memory pool would round 3000 bytes up to 4096; the pool's bytes are the truth."""
    before = double.pinned_bytes()
    pool = device.PinnedPool(buffer_size=3000, max_buffers=1)
    buffer = pool.acquire()
    assert buffer.size == pool.stats().bytes == 3000
    assert double.pinned_bytes() - before == 3000
    pool.release(buffer)


def test_set_pinned_pool_limits(xp) -> None:
    stats = device.set_pinned_pool_limits(buffer_size=1024, max_buffers=3)
    assert (stats.buffer_size, stats.max_buffers) == (1024, 3)


# --------------------------------------------------------------------------------------------------
# The double's kernel interpreter is strict
# --------------------------------------------------------------------------------------------------


def _run(double, in_params, operation, x, out_dtype):
    kernel = double.ElementwiseKernel(in_params, f"{np.dtype(out_dtype).name} y", operation)
    src = double.empty(x.shape, dtype=x.dtype)
    src.set(x)
    out = double.empty(x.shape, dtype=out_dtype)
    kernel(src, out)
    return out.get()


@pytest.mark.parametrize("raw", [">f4", ">f8", ">i2", ">u8", "<i4"])
def test_run_kernel_swaps_and_scales(xp, raw) -> None:
    values = np.array([3, 1, 0, 100, 7], dtype=raw)
    if values.dtype.kind == "i":
        values[1] = -7
    if values.dtype.kind == "f":
        values[:] = [1.5, -2.25, np.inf, np.nan, -0.0]
    plan = plan_scaling(values.dtype, 2.5, 0.5, np.dtype(np.float32))
    spec = kernel_spec(plan)
    src = xp.empty(values.shape, dtype=spec.input_dtype)
    src.set(values.view(spec.input_dtype))
    out = xp.empty(values.shape, dtype=spec.out_dtype)
    device.run_kernel(spec, src, out)
    expected = (values.astype(np.float64) * 2.5 + 0.5).astype(np.float32)
    assert np.array_equal(out.get(), expected, equal_nan=True)


@pytest.mark.parametrize("scaling", [(None, None), (2.0, None), (0.5, 1e-39)], ids=str)
@pytest.mark.parametrize(
    ("raw", "out"), [("<f4", "f8"), (">f4", "f8"), ("<f8", "f4"), (">f8", "f4")]
)
def test_kernel_keeps_subnormals(xp, raw, out, scaling) -> None:
    """CuPy compiles with -ftz=true; float32 subnormals in or out still keep every bit."""
    values = np.array([1e-40, -1e-45, 1.1e-38, -3e-39, 2.5, -0.0, np.nan], dtype=raw)
    plan = plan_scaling(values.dtype, *scaling, np.dtype(out))
    spec = kernel_spec(plan)
    src = xp.empty(values.shape, dtype=spec.input_dtype)
    src.set(values.view(spec.input_dtype))
    result = xp.empty(values.shape, dtype=spec.out_dtype)
    device.run_kernel(spec, src, result)
    assert result.get().tobytes() == apply_scaling(values, plan).astype(out).tobytes()


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        ("y = x;", "implicit conversion from int16 to float64"),
        ("double w = (double)x; y = (float)w;", "implicit conversion from float32"),
        ("y = __dmul_rn(x, x);", "__dmul_rn takes"),
        ("unsigned int u = (unsigned int)x << 32; y = (double)u;", "undefined behaviour"),
        ("x = x; y = (double)x;", "cannot be assigned"),
        ("y = sqrt((double)x);", "does not implement sqrt"),
        ("y = (double)x + 1;", "cannot parse"),
    ],
)
def test_double_kernel_is_strict(double, operation, error) -> None:
    with pytest.raises((TypeError, ValueError, SyntaxError, NameError), match=error):
        _run(double, "int16 x", operation, np.arange(3, dtype=np.int16), np.float64)


def test_double_kernel_checks_types(double) -> None:
    kernel = double.ElementwiseKernel("int16 x", "float64 y", "y = (double)x;")
    with pytest.raises(TypeError, match="Type is mismatched"):
        kernel(double.empty(3, dtype=np.int32), double.empty(3, dtype=np.float64))
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel(np.zeros(3, np.int16), double.empty(3, dtype=np.float64))


def test_double_refuses_implicit_conversion(double) -> None:
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(double.empty(3))


def test_double_work_runs_only_when_waited_for(double) -> None:
    stream = double.cuda.Stream(non_blocking=True)
    other = double.cuda.Stream(non_blocking=True)
    target = double.empty(2, dtype=np.int8)
    target.set(np.array([4, 5], np.int8), stream=stream)
    event = stream.record()
    assert not event.done
    other.wait_event(event)
    assert not event.done
    assert target.get(stream=other).tolist() == [4, 5]
    assert event.done


# --------------------------------------------------------------------------------------------------
# Device memory
# --------------------------------------------------------------------------------------------------


def test_memory_is_counted_and_emptied(xp) -> None:
    device.empty_cache()
    baseline = device.device_memory_used(include_cached=True)
    array = xp.empty(1 << 16, dtype=np.float32)
    assert device.device_memory_used() >= baseline + array.nbytes
    del array
    assert device.device_memory_used() == baseline
    device.empty_cache()
    assert device.device_memory_used(include_cached=True) == baseline


def test_device_memory_guard(xp) -> None:
    pool = xp.get_default_memory_pool()
    device.empty_cache()
    pool.set_limit(size=pool.total_bytes() + 1024)
    try:
        with pytest.raises(DeviceMemoryError, match=r"scan.nii: out of GPU memory reading 4096"):
            with device.device_memory_guard("scan.nii", 4096):
                xp.empty(1 << 20, dtype=np.uint8)
    finally:
        pool.set_limit(size=0)


def test_memory_of_every_device_asked_for(double) -> None:
    """CuPy's pool methods act on the current device; gpuimg counts and frees every device it used."""
    double.set_device_count(2)
    assert device.resolve_device("cuda:1") == 1  # gpuimg now knows the device is in use
    gc.collect()
    device.empty_cache()
    used = device.device_memory_used()
    array = device.to_device(np.zeros(1000, np.float32), device="cuda:1")
    assert device.device_memory_used() == used + 4096
    del array
    assert device.device_memory_used(include_cached=True) == used + 4096
    device.empty_cache()
    assert device.device_memory_used(include_cached=True) == used
    with double.cuda.Device(1):
        assert double.get_default_memory_pool().total_bytes() == 0


def test_pinned_memory_is_freed_by_empty_cache(double) -> None:
    before = double.pinned_bytes()
    buffer = device.default_pinned_pool().acquire()
    assert double.pinned_bytes() == before + buffer.size
    device.default_pinned_pool().release(buffer)
    del buffer
    device.empty_cache()
    assert double.pinned_bytes() == before
    assert double.get_default_pinned_memory_pool().n_free_blocks() == 0


# --------------------------------------------------------------------------------------------------
# Moving in-memory arrays
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
def test_to_device_and_back(xp, order) -> None:
    host = np.asarray(np.arange(24, dtype=">i2").reshape(2, 3, 4), order=order)
    on_device = device.to_device(host, dtype=np.float32)
    assert on_device.dtype == np.float32
    assert on_device.flags.f_contiguous == (order == "F")
    assert np.array_equal(device.to_host(on_device), host.astype(np.float32))
    assert device.to_device(on_device, dtype=np.float32) is on_device
    as_f8 = device.to_device(on_device, dtype=np.float64)
    assert np.array_equal(device.to_host(as_f8), host.astype(np.float64))
    native = device.to_device(host)
    assert native.dtype == np.dtype("int16")


def test_to_device_converts_device_arrays_exactly(xp) -> None:
    """CuPy's astype flushes float32 subnormals (-ftz=true); gpuimg's kernel converts them exactly."""
    tiny = np.array([1e-40, -1e-45, 2.5], dtype=np.float32)
    as_f8 = device.to_device(device.to_device(tiny), dtype=np.float64)
    assert device.to_host(as_f8).tobytes() == tiny.astype(np.float64).tobytes()


@pytest.mark.parametrize("dtype", [None, np.float32, np.float64])
def test_to_device_moves_arrays_from_another_device(double, dtype) -> None:
    double.set_device_count(2)
    host = np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    on_one = device.to_device(host, device="cuda:1")
    moved = device.to_device(on_one, dtype=dtype, device="cuda:0")
    assert moved.device.id == 0 and moved.flags.f_contiguous
    np.testing.assert_array_equal(
        device.to_host(moved), host.astype(dtype or host.dtype), strict=True
    )
    strided = device.to_device(on_one[:, ::2], dtype=dtype, device=0)
    assert np.array_equal(device.to_host(strided), host[:, ::2].astype(dtype or host.dtype))


def test_to_host_keeps_the_order_without_a_device_copy(xp) -> None:
    """asnumpy's default order='C' would first copy a Fortran-ordered array on the device."""
    host = np.asfortranarray(np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    on_device = device.to_device(host)
    pool = xp.get_default_memory_pool()
    pool.set_limit(size=pool.total_bytes() + 512)
    try:
        back = device.to_host(on_device)
    finally:
        pool.set_limit(size=0)
    assert back.flags.f_contiguous and np.array_equal(back, host)


def test_to_device_refuses_the_host(xp) -> None:
    with pytest.raises(ValueError, match="to_device needs a GPU"):
        device.to_device(np.zeros(2), device="cpu")
