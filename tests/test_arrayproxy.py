"""ArrayProxy: the proxy protocol, slicing (hypothesis) against full reads, pickling, threads."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuimg
from gpuimg.arrayproxy import ArrayProxy, get_obj_dtype, reshape_dataobj
from gpuimg.io.pipeline import Overlapped, ramped_chunks
from tests.oracle import FORMATS, write_with_nibabel

nib = pytest.importorskip("nibabel")

SHAPE = (5, 4, 3, 6)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "gz"])
def image_path(request, tmp_path_factory):
    path, _ = write_with_nibabel(
        tmp_path_factory.mktemp("proxy"),
        FORMATS[1],
        np.dtype("i2"),
        SHAPE,
        big_endian=True,
        scaled=True,
        gz=request.param,
    )
    return path


def _axis_index(size: int):
    ints = st.integers(-size, size - 1) if size else st.nothing()
    slices = st.builds(
        slice,
        st.none() | st.integers(-size - 2, size + 2),
        st.none() | st.integers(-size - 2, size + 2),
        st.none() | st.integers(-4, 4).filter(bool),
    )
    return ints | slices


@st.composite
def slicers(draw, shape):
    items = [draw(_axis_index(n)) for n in shape]
    count = draw(st.integers(0, len(items)))
    items = items[:count]
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), Ellipsis)
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return tuple(items) if draw(st.booleans()) or len(items) != 1 else items[0]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_slices_equal_full_read_sliced(image_path, data):
    proxy = gpuimg.load(image_path).dataobj
    full = np.asanyarray(proxy)
    slicer = data.draw(slicers(SHAPE))
    try:
        expected = full[slicer]
    except IndexError:
        with pytest.raises(IndexError):
            proxy[slicer]
        return
    got = proxy[slicer]
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_proxy_protocol_and_nibabel_agreement(image_path):
    ours = gpuimg.load(image_path).dataobj
    theirs = nib.load(image_path).dataobj
    assert ours.is_proxy and gpuimg.is_proxy(ours)
    assert ours.shape == theirs.shape and ours.ndim == theirs.ndim
    assert ours.dtype == theirs.dtype
    assert (ours.slope, ours.inter, ours.offset) == (theirs.slope, theirs.inter, theirs.offset)
    np.testing.assert_array_equal(ours.get_unscaled(), theirs.get_unscaled())
    for slicer in [(0,), (..., 2), (slice(None, None, -2), 1), (1, 2, 0, 5)]:
        np.testing.assert_array_equal(ours[slicer], theirs[slicer])


def test_fancy_indexing_is_refused(image_path):
    with pytest.raises(TypeError):
        gpuimg.load(image_path).dataobj[[0, 1]]


def test_pickle_keeps_path_and_header_not_handles(image_path):
    img = gpuimg.load(image_path, keep_file_open=True)
    proxy = img.dataobj
    first = np.asanyarray(proxy)
    blob = pickle.dumps(proxy)
    assert len(blob) < 4096
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(np.asanyarray(clone), first)
    img_clone = pickle.loads(pickle.dumps(img))
    np.testing.assert_array_equal(img_clone.get_fdata(), img.get_fdata())


@pytest.mark.parametrize("keep_file_open", [True, False])
def test_threads_share_a_proxy(image_path, keep_file_open):
    proxy = gpuimg.load(image_path, keep_file_open=keep_file_open).dataobj
    expected = np.asanyarray(proxy)
    errors = []

    def work(t):
        try:
            for _ in range(5):
                np.testing.assert_array_equal(proxy[..., t], expected[..., t])
        except Exception as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(SHAPE[-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_tuple_spec_and_file_object(tmp_path):
    data = np.arange(24, dtype="<i4").reshape(2, 3, 4, order="F")
    path = tmp_path / "raw.bin"
    path.write_bytes(b"x" * 16 + data.tobytes(order="F"))
    with open(path, "rb") as fileobj:
        proxy = ArrayProxy(fileobj, ((2, 3, 4), "<i4", 16, 2.0, 1.0))
        np.testing.assert_array_equal(np.asarray(proxy), data * 2.0 + 1.0)
        np.testing.assert_array_equal(proxy[1, :, 2], data[1, :, 2] * 2.0 + 1.0)
        assert not fileobj.closed


@pytest.mark.parametrize(
    "spec, scaled",
    [
        (((2, 3, 4), "<i4"), lambda d: d),  # no offset: the file starts with the data
        (((2, 3, 4), "<i4", 16), lambda d: d),
        (((2, 3, 4), "<i4", 16, 2.0), lambda d: d * 2.0),
        (((2, 3, 4), "<i4", 16, 2.0, 1.0), lambda d: d * 2.0 + 1.0),
    ],
    ids=["2-tuple", "3-tuple", "4-tuple", "5-tuple"],
)
def test_short_tuple_specs_default_to_unscaled(tmp_path, spec, scaled):
    """nibabel's ``(shape, dtype[, offset[, slope[, inter]]])``: entries left out mean offset 0, slope 1, inter 0."""
    data = np.arange(24, dtype="<i4").reshape(2, 3, 4, order="F")
    offset = spec[2] if len(spec) > 2 else 0
    path = tmp_path / "raw.bin"
    path.write_bytes(b"x" * offset + data.tobytes(order="F"))
    proxy = ArrayProxy(path, spec)
    np.testing.assert_array_equal(np.asarray(proxy), scaled(data))
    np.testing.assert_array_equal(proxy[1, :, 2], scaled(data)[1, :, 2])


@pytest.mark.parametrize("spec", [((2, 3, 4),), ((2, 3, 4), "<i4", 0, 1.0, 0.0, "F")])
def test_tuple_spec_of_wrong_length_is_refused(tmp_path, spec):
    with pytest.raises(TypeError, match="spec tuple"):
        ArrayProxy(tmp_path / "raw.bin", spec)


def test_memmap_for_unscaled_uncompressed(tmp_path):
    path, data = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("f4"), (3, 4, 5), big_endian=False, scaled=False, gz=False
    )
    assert isinstance(np.asanyarray(gpuimg.load(path).dataobj), np.memmap)
    assert not isinstance(np.asanyarray(gpuimg.load(path, mmap=False).dataobj), np.memmap)


@pytest.mark.parametrize("chunk_bytes", [4096, 6002, 1 << 20])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("dtype", ["i2", "f4", "u1"])
def test_chunked_whole_reads_are_exact(tmp_path, monkeypatch, chunk_bytes, threads, gz, dtype):
    """Whole-array reads cut into many chunks, read and scaled by several threads, equal nibabel's."""
    monkeypatch.setattr(gpuimg.config.settings, "pipeline_chunk_bytes", chunk_bytes)
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype(dtype), (23, 17, 13, 3), big_endian=True, scaled=True, gz=gz
    )
    theirs = nib.load(path)
    with gpuimg.config.configure(threads=threads):
        for fdtype in (np.float64, np.float32):
            ours = gpuimg.load(path).get_fdata(dtype=fdtype)
            np.testing.assert_array_equal(ours, theirs.get_fdata(dtype=fdtype), strict=True)
        if not gz:
            with open(path, "rb") as fileobj:  # a file object: the sequential pipeline
                proxy = ArrayProxy(fileobj, proxy_spec(gpuimg.load(path).dataobj))
                np.testing.assert_array_equal(
                    proxy.get_scaled(np.float32), theirs.get_fdata(dtype=np.float32), strict=True
                )


def proxy_spec(proxy):
    return (proxy.shape, proxy.dtype, proxy.offset, proxy.slope, proxy.inter)


def test_a_file_truncated_mid_chunk_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(gpuimg.config.settings, "pipeline_chunk_bytes", 4096)
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("i2"), (40, 30, 20), big_endian=False, scaled=True, gz=False
    )
    img = gpuimg.load(path)
    path.write_bytes(path.read_bytes()[:-5000])
    with (
        gpuimg.config.configure(threads=2),
        pytest.raises(gpuimg.TruncatedDataError, match=str(path)),
    ):
        img.get_fdata()


@pytest.fixture
def many_chunk_gz(tmp_path, monkeypatch):
    """A gzip image read in many small chunks, with a helper thread reading ahead."""
    monkeypatch.setattr(gpuimg.config.settings, "pipeline_chunk_bytes", 4096)
    path, _ = write_with_nibabel(
        tmp_path, FORMATS[1], np.dtype("i2"), (40, 30, 20), big_endian=False, scaled=True, gz=True
    )
    return path


def _no_gpuimg_work_left() -> None:
    """Every staging buffer is back in the pool and no helper is still reading."""
    assert gpuimg.io.buffers.default_pool.borrowed_bytes == 0
    with gpuimg.config.configure(threads=2), gpuimg.config.claim_helpers(1) as helpers:
        assert helpers == 1


def test_a_read_error_on_any_thread_reaches_the_caller(many_chunk_gz, monkeypatch):
    real = gpuimg.io.pipeline.read_plan_into
    calls = []

    def failing(fileobj, plan, out, start=0, *, name=None):
        calls.append(threading.current_thread().name)
        if len(calls) == 5:
            raise gpuimg.TruncatedDataError(f"{name}: injected failure")
        return real(fileobj, plan, out, start=start, name=name)

    monkeypatch.setattr(gpuimg.io.pipeline, "read_plan_into", failing)
    with (
        gpuimg.config.configure(threads=2),
        pytest.raises(gpuimg.TruncatedDataError, match="injected failure"),
    ):
        gpuimg.load(many_chunk_gz).get_fdata(dtype=np.float32)
    assert len(calls) == 5  # nothing was read after the failure
    _no_gpuimg_work_left()


def test_a_scaling_error_stops_the_read_ahead_thread(many_chunk_gz, monkeypatch):
    real = gpuimg.hostread.scale_into
    scaled = []

    def failing(raw, plan, out, *, threads=None):
        scaled.append(raw.size)
        if len(scaled) == 3:
            raise MemoryError("injected")
        return real(raw, plan, out, threads=threads)

    monkeypatch.setattr(gpuimg.hostread, "scale_into", failing)
    with gpuimg.config.configure(threads=2), pytest.raises(MemoryError, match="injected"):
        gpuimg.load(many_chunk_gz).get_fdata(dtype=np.float32)
    _no_gpuimg_work_left()


def test_a_sequential_read_holds_at_most_its_slots_of_staging(many_chunk_gz, monkeypatch):
    """Each chunk's staging buffer goes back once it is scaled: peak memory is the output plus the
    slots, not the whole raw block."""
    real = gpuimg.io.pipeline.read_plan_into
    borrowed = []

    def recording(fileobj, plan, out, start=0, *, name=None):
        borrowed.append(gpuimg.io.buffers.default_pool.borrowed_bytes)
        return real(fileobj, plan, out, start=start, name=name)

    monkeypatch.setattr(gpuimg.io.pipeline, "read_plan_into", recording)
    with gpuimg.config.configure(threads=2):
        gpuimg.load(many_chunk_gz).get_fdata(dtype=np.float32)
    slots = gpuimg.config.settings.pipeline_slots
    assert len(borrowed) > 2 * slots  # enough chunks that holding them all would show
    assert max(borrowed) <= slots * gpuimg.io.buffers.size_class(4096)
    _no_gpuimg_work_left()


def test_sequential_reads_start_and_end_with_small_chunks(many_chunk_gz):
    bounds = ramped_chunks(40 * 30 * 20 * 2, gpuimg.config.settings.pipeline_chunk_bytes, 2)
    sizes = [stop - start for start, stop in bounds]
    assert sizes[:4] == [512, 1024, 2048, 4096]
    assert max(sizes) == 4096
    assert sizes[-1] <= 2 * 512 and sizes[-2] <= 4 * 512
    assert bounds[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert bounds[-1][1] == 40 * 30 * 20 * 2
    assert all(size % 2 == 0 for size in sizes)  # whole int16 values


@pytest.mark.parametrize("nbytes", [2, 6, 510, 512, 514, 1500, 4096, 4098, 40000])
def test_chunk_bounds_cover_any_size(nbytes):
    bounds = ramped_chunks(nbytes, 4096, 2)
    assert bounds[0][0] == 0 and bounds[-1][1] == nbytes
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all((stop - start) % 2 == 0 for start, stop in bounds)


@pytest.mark.parametrize("helpers", [0, 1, 3])
@pytest.mark.parametrize("slots", [1, 2, 4])
def test_overlapped_reads_in_order_and_never_holds_more_than_its_slots(helpers, slots):
    """Reads run one at a time in chunk order; at most ``slots`` chunks are read and not yet put."""
    rng = np.random.default_rng(helpers * 10 + slots)
    delays = rng.uniform(0, 0.002, size=(2, 40))
    lock = threading.Lock()
    reading, read_order, put, held = [0], [], [], set()

    def read(index):
        with lock:
            reading[0] += 1
            assert reading[0] == 1, "two reads at once"
            assert len(held) < slots, f"chunk {index} read while {sorted(held)} wait to be put"
            held.add(index)
            read_order.append(index)
        time.sleep(delays[0, index])
        with lock:
            reading[0] -= 1
        return np.array([index])

    def put_chunk(index, raw):
        time.sleep(delays[1, index])
        with lock:
            assert raw[0] == index
            held.remove(index)
            put.append(index)

    with gpuimg.config.configure(threads=1 + helpers):
        Overlapped(read, put_chunk, 40, slots).run(helpers)
    assert read_order == list(range(40))
    assert sorted(put) == list(range(40))
    assert held == set()


def run_independent(helpers: int, slots: int, read_s: float, put_s: float, fail_at: int = -1):
    """Run 40 independent chunks; ``(reading threads, putting threads, most chunks held)``."""
    lock = threading.Lock()
    readers, putters, held, most = [], [], set(), [0]

    def read(index):
        if index == fail_at:
            raise OSError(f"chunk {index} unreadable")
        with lock:
            held.add(index)
            most[0] = max(most[0], len(held))
            readers.append(threading.get_ident())
        time.sleep(read_s)
        return np.array([index])

    def put_chunk(index, raw):
        time.sleep(put_s)
        with lock:
            assert raw[0] == index
            held.remove(index)
            putters.append((index, threading.get_ident()))

    with gpuimg.config.configure(threads=1 + helpers):
        Overlapped(read, put_chunk, 40, slots, independent=True).run(helpers)
    assert sorted(index for index, _ in putters) == list(range(40))
    assert held == set()
    return set(readers), [thread for _, thread in putters], most[0]


@pytest.mark.parametrize(("helpers", "slots"), [(0, 3), (1, 4), (3, 6)])
def test_overlapped_independent_chunks_are_read_at_once_and_each_put_once(helpers, slots):
    readers, putters, most = run_independent(helpers, slots, read_s=0.001, put_s=0.0005)
    assert len(putters) == 40
    assert most <= slots
    if helpers:
        assert len(readers) > 1


def next_task_kind(chunks: Overlapped, *, caller: bool) -> str | None:
    """What ``chunks`` gives a thread to do next: 'read', 'put' or None (stop)."""
    task = chunks._next_task(caller)
    return None if task is None else {"_read_next": "read", "_put_ready": "put"}[task.func.__name__]


def test_overlapped_independent_caller_puts_first_helpers_read_first():
    """The calling thread puts what is ready before reading; a helper reads while a slot is free,
    puts only when none is and more than one chunk waits, and stops when nothing is left to read."""
    chunks = Overlapped(lambda index: index, lambda index, raw: None, 6, 3, independent=True)
    assert next_task_kind(chunks, caller=True) == "read"  # nothing ready: chunk 0
    assert next_task_kind(chunks, caller=False) == "read"  # chunk 1
    chunks._ready = [(0, 0)]
    assert next_task_kind(chunks, caller=False) == "read"  # chunk 2: a slot was free
    assert next_task_kind(chunks, caller=True) == "put"  # chunk 0, ready, before reading
    chunks._ready = [(1, 1), (2, 2)]
    assert next_task_kind(chunks, caller=False) == "put"  # no free slot, two waiting
    chunks._next_read = 6
    chunks._ready = [(3, 3)]
    assert next_task_kind(chunks, caller=False) is None  # the caller takes the last ones
    assert next_task_kind(chunks, caller=True) == "put"


def test_overlapped_helpers_put_when_the_caller_falls_behind():
    readers, putters, most = run_independent(3, 6, read_s=0.0002, put_s=0.002)
    assert len(set(putters)) > 1
    assert most <= 6


def test_overlapped_independent_read_errors_reach_the_caller():
    with pytest.raises(OSError, match="chunk 7 unreadable"):
        run_independent(2, 5, read_s=0.0005, put_s=0, fail_at=7)


@pytest.mark.parametrize("order", ["F", "C"])
def test_order_reads_either_layout(tmp_path, order):
    data = np.arange(120, dtype="<i2").reshape(2, 3, 4, 5)
    path = tmp_path / "raw.bin"
    path.write_bytes(b"xy" + data.tobytes(order=order))
    proxy = ArrayProxy(path, (data.shape, data.dtype, 2, 2.0, 1.0), order=order)
    expected = data * 2.0 + 1.0
    assert (proxy.shape, proxy.order) == (data.shape, order)
    np.testing.assert_array_equal(np.asarray(proxy), expected)
    np.testing.assert_array_equal(proxy.get_unscaled(), data)
    for slicer in [
        (1,),
        (slice(None), 0, None, slice(1, 3)),
        (Ellipsis, 2),
        (None, 1, slice(None, None, -1)),
    ]:
        np.testing.assert_array_equal(proxy[slicer], expected[slicer])
    out = np.empty(data.shape, np.float64, order=order)
    assert proxy.read_scaled_into(out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize(
    "slicer", [(), (1,), (slice(None), 0, None, slice(1, 3)), (Ellipsis, slice(None, None, -2))]
)
def test_read_scaled_into_any_out(tmp_path, order, slicer):
    """A slice read into the caller's array, whatever its layout: the values ``proxy[slicer]`` has."""
    data = np.arange(120, dtype=">i2").reshape(2, 3, 4, 5)
    path = tmp_path / "raw.bin"
    path.write_bytes(data.tobytes(order=order))
    proxy = ArrayProxy(path, (data.shape, data.dtype, 0, 2.0, 1.0), order=order)
    expected = proxy[slicer]
    for layout in ["F", "C"]:
        out = np.full(expected.shape, np.nan, order=layout)
        assert proxy.read_scaled_into(out, slicer=slicer) is out
        np.testing.assert_array_equal(out, expected)
    strided = np.full((3, *expected.shape), np.nan)[1]
    proxy.read_scaled_into(strided, slicer=slicer)
    np.testing.assert_array_equal(strided, expected)
    with pytest.raises(
        ValueError, match=r"raw.bin: out must be a writeable float64 array of shape"
    ):
        proxy.read_scaled_into(np.empty((7,)), slicer=slicer)


def test_order_must_be_f_or_c(tmp_path):
    with pytest.raises(ValueError, match="order should be one of"):
        ArrayProxy(tmp_path / "raw.bin", ((2, 3), "<i2"), order="A")


@pytest.mark.parametrize("order", ["F", "C"])
def test_reshape_keeps_a_proxy_of_the_same_bytes(tmp_path, order):
    data = np.arange(24, dtype="<f4").reshape(2, 3, 4)
    path = tmp_path / "raw.bin"
    path.write_bytes(data.tobytes(order=order))
    proxy = ArrayProxy(path, (data.shape, data.dtype), order=order)
    for shape in [(6, 4), (-1, 2), (24,)]:
        reshaped = reshape_dataobj(proxy, shape)
        assert gpuimg.is_proxy(reshaped) and reshaped.order == order
        np.testing.assert_array_equal(np.asarray(reshaped), data.reshape(shape, order=order))
    with pytest.raises(ValueError, match="cannot reshape array of size 24"):
        proxy.reshape((5, 5))
    with pytest.raises(ValueError, match="one unknown dimension"):
        proxy.reshape((-1, -1))
    np.testing.assert_array_equal(reshape_dataobj(data, (4, 6)), data.reshape(4, 6))


def test_is_proxy_cannot_be_assigned(image_path):
    proxy = gpuimg.load(image_path).dataobj
    with pytest.raises(AttributeError):
        proxy.is_proxy = False
    assert proxy.is_proxy is True


def test_get_obj_dtype_is_the_dtype_of_the_array(tmp_path):
    data = np.arange(6, dtype="<i2").reshape(2, 3)
    path = tmp_path / "raw.bin"
    path.write_bytes(data.tobytes(order="F"))
    assert get_obj_dtype(ArrayProxy(path, (data.shape, data.dtype))) == np.int16
    assert get_obj_dtype(ArrayProxy(path, (data.shape, data.dtype, 0, 2.0))) == np.float64
    assert get_obj_dtype(data) == np.int16
    assert get_obj_dtype([[1.5, 2]]) == np.float64


def test_subclass_default_order(tmp_path):
    class CProxy(ArrayProxy):
        _default_order = "C"

    data = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    path = tmp_path / "raw.bin"
    path.write_bytes(data.tobytes(order="C"))
    proxy = CProxy(path, (data.shape, data.dtype))
    assert proxy.order == "C"
    np.testing.assert_array_equal(proxy[1, :, 2:], data[1, :, 2:])
    assert CProxy(path, (data.shape, data.dtype), order="F").order == "F"


@pytest.mark.parametrize("source", ["path", "gzip path", "file object"])
def test_copy_reads_the_same_and_shares_only_a_file_objects_handle(tmp_path, source):
    data = np.arange(4 * 5 * 6, dtype="<f4").reshape(4, 5, 6)
    spec = (data.shape, data.dtype, 352, 2.0, 1.0)
    path = tmp_path / ("img.nii.gz" if source == "gzip path" else "img.nii")
    gpuimg.save(gpuimg.Nifti1Image(data, np.eye(4)), path)
    with open(path, "rb") as fileobj:
        file_like = fileobj if source == "file object" else str(path)
        proxy = ArrayProxy(file_like, spec, keep_file_open=source != "file object")
        copied = proxy.copy()
        theirs = nib.arrayproxy.ArrayProxy(file_like, spec).copy()
        assert type(copied) is ArrayProxy and copied.file_like is proxy.file_like
        assert (copied.shape, copied.order, copied.slope, copied.inter) == (
            (4, 5, 6),
            "F",
            2.0,
            1.0,
        )
        for slicer in [(0, 0, 0), (-1, -1, -1), (slice(1, 3), 2), ()]:
            np.testing.assert_array_equal(copied[slicer], theirs[slicer])
        assert (copied._handle is proxy._handle) == (source == "file object")


def test_whole_raw_reads_stream_without_a_seek_index(tmp_path):
    """A whole read into a C-ordered array (staged) streams a gzip file (no index); a part seeks."""
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE, order="F")
    path = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    proxy = gpuimg.load(path).dataobj
    index = proxy._handle.gzip_index
    whole = np.empty(SHAPE, np.int16)
    proxy.read_scaled_into(whole, np.int16)
    np.testing.assert_array_equal(whole, data)
    assert index.nbytes == 0 and index.uncompressed_size is None  # the index learnt nothing
    part = np.empty((*SHAPE[:3], 2), np.int16)
    proxy.read_scaled_into(part, np.int16, slicer=(Ellipsis, slice(2, 4)))
    np.testing.assert_array_equal(part, data[..., 2:4])
    assert index.uncompressed_size is not None or index.nbytes > 0
