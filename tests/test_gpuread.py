"""Streaming reads to the GPU: bit-identical to the host scaling, chunked, and clean on every error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpuimg import device, gpuread
from gpuimg.errors import DeviceMemoryError
from gpuimg.scaling import apply_scaling, plan_scaling

SHAPE = (5, 4, 3)
POST = (slice(None, None, 2), 1, slice(1, None))


class BytesSource:
    """The raw-source protocol over an in-memory array's Fortran-order bytes."""

    def __init__(self, raw: np.ndarray, post_slicer: object = (), fail_at: int | None = None):
        self.data = raw.tobytes(order="F")
        self.dtype = raw.dtype
        self.raw_shape = raw.shape
        self.post_slicer = post_slicer
        self.out_shape = raw[post_slicer].shape
        self.nbytes = len(self.data)
        self.reads: list[tuple[int, int]] = []
        self.fail_at = fail_at

    def readinto(self, start: int, out: memoryview) -> None:
        if self.fail_at is not None and start >= self.fail_at:
            raise OSError(f"scan.nii: read failed at byte {start}")
        self.reads.append((start, len(out)))
        out[:] = self.data[start : start + len(out)]


def _values(dtype: np.dtype, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    """Awkward values of ``dtype``: integer extremes; real floats with NaN, infinities and -0."""
    rng = np.random.default_rng(seed)
    count = math.prod(shape)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        flat = rng.integers(
            info.min, info.max, size=count, endpoint=True, dtype=dtype.newbyteorder("=")
        )
        flat[:2] = [info.min, info.max]
    else:
        real = rng.standard_normal(count) * 10.0 ** rng.uniform(-6, 6, count)
        flat = np.empty(count, dtype=dtype.newbyteorder("="))
        if dtype.kind == "c":  # finite: numpy's complex product of inf and 0j warns
            flat.real, flat.imag = real, real[::-1]
        else:
            flat[:] = real
            # float32 subnormals all through (some survive POST): CuPy's -ftz=true must not flush
            # them on the way in or out.
            flat[4::3] = np.resize([1e-40, -3e-39], flat[4::3].size)
            flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return flat.astype(dtype).reshape(shape, order="F")


def _check(xp, raw: np.ndarray, plan, post: object = POST):
    result = gpuread.read_to_device(BytesSource(raw, post), plan, device="cuda", name="scan.nii")
    expected = apply_scaling(raw, plan)[post]
    assert device.is_device_array(result) and result.flags.f_contiguous
    got = xp.asnumpy(result)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype.newbyteorder("=")
    assert np.array_equal(got, expected, equal_nan=True)
    return result


@pytest.fixture
def small_chunks(xp):
    """Pinned buffers of 40 bytes, two of them: every block below streams in several chunks."""
    device.set_pinned_pool_limits(buffer_size=40, max_buffers=2)


REAL = ["u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"]
SCALINGS = {
    "none": (None, None),
    "slope": (2.5, None),
    "inter": (None, -3.25),
    "both": (0.1, 7.0),
    "float32": (float(np.float32(0.1)), float(np.float32(-1.7))),
}


@pytest.mark.parametrize("out", [np.float32, np.float64, None], ids=["f4", "f8", "natural"])
@pytest.mark.parametrize("scaling", SCALINGS, ids=str)
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("kind", REAL)
def test_matches_host_scaling(xp, small_chunks, kind, order, scaling, out) -> None:
    raw = _values(np.dtype(kind).newbyteorder(order))
    _check(
        xp, raw, plan_scaling(raw.dtype, *SCALINGS[scaling], None if out is None else np.dtype(out))
    )


@pytest.mark.parametrize("out", [np.complex128, None], ids=["c16", "natural"])
@pytest.mark.parametrize("scaling", SCALINGS, ids=str)
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("kind", ["c8", "c16"])
def test_complex_takes_the_host_path(xp, small_chunks, kind, order, scaling, out) -> None:
    raw = _values(np.dtype(kind).newbyteorder(order))
    gpuread.reset_stats()
    _check(
        xp, raw, plan_scaling(raw.dtype, *SCALINGS[scaling], None if out is None else np.dtype(out))
    )
    assert gpuread.stats()["host_fallbacks"] == 1


@pytest.mark.parametrize("post", [(), (0,), (slice(None, None, -1), None, Ellipsis), (1, 2, 0)])
def test_post_slicers(xp, small_chunks, post) -> None:
    raw = _values(np.dtype(">i2"))
    _check(xp, raw, plan_scaling(raw.dtype, 2.0, 1.0), post)


def test_streams_a_block_bigger_than_the_pool_and_moves_only_raw_bytes(xp) -> None:
    device.set_pinned_pool_limits(buffer_size=1000, max_buffers=2)
    raw = _values(np.dtype(">i2"), shape=(50, 40, 5))
    source = BytesSource(raw)
    gpuread.reset_stats()
    result = gpuread.read_to_device(
        source, plan_scaling(raw.dtype, 0.5, 2.0, np.dtype("f4")), device=0
    )
    expected = apply_scaling(raw, plan_scaling(raw.dtype, 0.5, 2.0, np.dtype("f4")))
    assert np.array_equal(xp.asnumpy(result), expected)
    assert source.reads == [
        (start, min(1000, raw.nbytes - start)) for start in range(0, raw.nbytes, 1000)
    ]
    assert gpuread.stats() == {"reads": 1, "bytes_to_device": raw.nbytes, "host_fallbacks": 0}
    stats = device.default_pinned_pool().stats()
    assert (stats.buffers, stats.in_use) == (2, 0)


def test_chunks_hold_whole_elements(xp) -> None:
    device.set_pinned_pool_limits(buffer_size=20, max_buffers=2)
    raw = _values(np.dtype(">f8"), shape=(7,))
    source = BytesSource(raw)
    result = gpuread.read_to_device(source, plan_scaling(raw.dtype, None, None), device=0)
    assert np.array_equal(xp.asnumpy(result), raw, equal_nan=True)
    assert source.reads == [(0, 16), (16, 16), (32, 16), (48, 8)]


def test_consumer_stream_waits_without_host_sync(xp, small_chunks) -> None:
    raw = _values(np.dtype("<u2"))
    plan = plan_scaling(raw.dtype, 3.0, None)
    consumer = xp.cuda.Stream(non_blocking=True)
    result = gpuread.read_to_device(BytesSource(raw), plan, device=0, stream=consumer)
    assert np.array_equal(result.get(stream=consumer), apply_scaling(raw, plan))


def test_read_returns_before_the_gpu_finishes(double, small_chunks) -> None:
    """The double's GPU only runs when waited on: work still queued proves no host synchronise."""
    raw = _values(np.dtype(">i4"))
    gpuread.read_to_device(BytesSource(raw), plan_scaling(raw.dtype, 2.0, None), device=0)
    assert not device.gpuimg_stream(0).record().done


@pytest.mark.parametrize(("kind", "out"), [(">i2", "f4"), ("<c8", "c8")])
def test_result_is_written_after_the_consumers_queued_work(double, kind, out) -> None:
    """CuPy hands the consumer's freed block straight back to the consumer's stream, whose queued work
    may still use it: gpuimg's stream writes the result only after that work (the double raises a
    RaceError otherwise)."""
    raw = _values(np.dtype(kind))
    plan = plan_scaling(raw.dtype, 2.0, None, np.dtype(out))
    expected = apply_scaling(raw, plan)
    consumer = double.cuda.Stream(non_blocking=True)
    with consumer:
        old = double.empty(expected.nbytes, dtype=np.uint8)
        old.set(np.full(expected.nbytes, 0xFF, np.uint8), stream=consumer)
        del old
    result = gpuread.read_to_device(BytesSource(raw), plan, device=0, stream=consumer)
    assert np.array_equal(result.get(stream=consumer), expected, equal_nan=True)


def test_refuses_a_stream_of_another_device(double) -> None:
    double.set_device_count(2)
    with double.cuda.Device(1):
        stream = double.cuda.Stream(non_blocking=True)
    raw = _values(np.dtype("<i2"))
    with pytest.raises(ValueError, match="scan.nii: stream= was created on CUDA device 1, but"):
        gpuread.read_to_device(
            BytesSource(raw), plan_scaling(raw.dtype, None, None), device=0, stream=stream,
            name="scan.nii",
        )  # fmt: skip
    assert device.default_pinned_pool().stats().buffers == 0


def test_empty_block(xp) -> None:
    raw = np.zeros((0, 3), dtype=">i2")
    _check(xp, raw, plan_scaling(raw.dtype, 2.0, None, np.dtype("f4")), ())


def test_read_error_returns_buffers_and_frees_device_memory(xp) -> None:
    device.set_pinned_pool_limits(buffer_size=512, max_buffers=2)
    device.empty_cache()
    baseline = device.device_memory_used()
    raw = _values(np.dtype(">i2"), shape=(40, 40))
    source = BytesSource(raw, fail_at=2048)
    with pytest.raises(OSError, match="read failed at byte 2048") as caught:
        gpuread.read_to_device(source, plan_scaling(raw.dtype, 2.0, None), device=0)
    assert device.default_pinned_pool().stats().in_use == 0
    # freed while the caller still holds the exception (and so its traceback)
    assert caught.value.__traceback__ is not None
    assert device.device_memory_used() == baseline


def test_out_of_memory_is_a_device_memory_error(xp) -> None:
    raw = _values(np.dtype("<i2"), shape=(256, 256))
    pool = xp.get_default_memory_pool()
    device.empty_cache()
    baseline = pool.used_bytes()
    pool.set_limit(size=pool.total_bytes() + 4096)
    try:
        with pytest.raises(
            DeviceMemoryError, match=f"scan.nii: out of GPU memory reading {raw.nbytes}"
        ):
            gpuread.read_to_device(
                BytesSource(raw), plan_scaling(raw.dtype, 2.0, None), device=0, name="scan.nii"
            )
    finally:
        pool.set_limit(size=0)
    assert pool.used_bytes() == baseline
    assert device.default_pinned_pool().stats().in_use == 0


def test_memory_returns_to_baseline(xp, small_chunks) -> None:
    device.empty_cache()
    baseline = device.device_memory_used(include_cached=True)
    raw = _values(np.dtype(">f4"))
    result = _check(xp, raw, plan_scaling(raw.dtype, 2.0, 1.0))
    assert device.device_memory_used() > baseline
    del result
    device.empty_cache()
    assert device.device_memory_used(include_cached=True) == baseline


def test_refuses_rgb_before_any_work(xp) -> None:
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    with pytest.raises(TypeError, match="structured .RGB. data"):
        gpuread.read_to_device(BytesSource(rgb), plan_scaling(rgb.dtype, None, None), device=0)
    assert device.default_pinned_pool().stats().buffers == 0


def test_refuses_long_double_complex(xp) -> None:
    raw = np.zeros(SHAPE, dtype=np.clongdouble)
    with pytest.raises(TypeError, match=f"cannot handle raw dtype {raw.dtype}"):
        gpuread.read_to_device(BytesSource(raw), plan_scaling(raw.dtype, None, None), device=0)


def test_refuses_the_host(xp) -> None:
    raw = _values(np.dtype("u1"))
    with pytest.raises(ValueError, match="device is 'cpu'; read_to_device needs a GPU"):
        gpuread.read_to_device(BytesSource(raw), plan_scaling(raw.dtype, None, None), device="cpu")


def test_checks_the_source_against_the_plan(xp) -> None:
    raw = _values(np.dtype("<i2"))
    with pytest.raises(ValueError, match="scan.nii: source dtype is int16, the plan expects >i2"):
        gpuread.read_to_device(
            BytesSource(raw), plan_scaling(np.dtype(">i2"), None, None), device=0, name="scan.nii"
        )
    source = BytesSource(raw)
    source.nbytes -= 2
    with pytest.raises(ValueError, match="source nbytes is 118, expected 120"):
        gpuread.read_to_device(source, plan_scaling(raw.dtype, None, None), device=0)


def _layouts(xp, shape: tuple[int, ...], dtype: np.dtype) -> dict[str, object]:
    """Destinations of ``shape``: Fortran, C, and a C-ordered slot of a batch with a cropped axis."""
    batch = xp.empty((3, shape[0] + 2, *shape[1:]), dtype=dtype)
    return {
        "F": xp.empty(shape, dtype=dtype, order="F"),
        "C": xp.empty(shape, dtype=dtype),
        "slot": batch[1, 1:-1],
    }


@pytest.mark.parametrize("layout", ["F", "C", "slot"])
@pytest.mark.parametrize("post", [(), (slice(None), slice(None), None, slice(None)), POST])
@pytest.mark.parametrize("scaling", ["none", "both"])
def test_out_is_filled_in_any_layout(xp, small_chunks, layout, post, scaling, monkeypatch) -> None:
    raw = _values(np.dtype(">i2"))
    plan = plan_scaling(raw.dtype, *SCALINGS[scaling], np.dtype("f4"))
    expected = apply_scaling(raw, plan)[post]
    out = _layouts(xp, expected.shape, np.dtype("f4"))[layout]
    allocations = []
    real = gpuread.allocate_for
    monkeypatch.setattr(
        gpuread, "allocate_for", lambda *args: allocations.append(args) or real(*args)
    )
    result = gpuread.read_to_device(BytesSource(raw, post), plan, device=0, out=out)
    assert result is out
    assert np.array_equal(xp.asnumpy(out), expected)
    # A slicer that keeps the raw block as it is reads straight into ``out``, whatever its strides.
    assert len(allocations) == (1 if post == POST else 0)


def test_out_of_complex_data(xp, small_chunks) -> None:
    raw = _values(np.dtype("<c8"))
    plan = plan_scaling(raw.dtype, 2.0, None)
    for out in [xp.empty(SHAPE, np.complex128), xp.empty(SHAPE, np.complex128, order="F")]:
        assert gpuread.read_to_device(BytesSource(raw), plan, device=0, out=out) is out
        assert np.array_equal(xp.asnumpy(out), apply_scaling(raw, plan))
    strided = xp.empty((SHAPE[0] * 2, *SHAPE[1:]), np.complex128)[::2]
    with pytest.raises(ValueError, match="out for complex data must be C- or Fortran-contiguous"):
        gpuread.read_to_device(BytesSource(raw), plan, device=0, out=strided)


def test_out_of_the_wrong_shape_or_dtype(xp) -> None:
    raw = _values(np.dtype("<i2"))
    plan = plan_scaling(raw.dtype, 2.0, None, np.dtype("f4"))
    for out in [xp.empty(SHAPE[::-1], np.float32), xp.empty(SHAPE, np.float64)]:
        with pytest.raises(ValueError, match=r"scan.nii: out is .*, expected float32 \(5, 4, 3\)"):
            gpuread.read_to_device(BytesSource(raw), plan, device=0, name="scan.nii", out=out)
