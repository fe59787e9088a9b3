"""Tests of gpuimg.loader: batch values, layout, sharding, shuffling, crop/pad, errors and cleanup."""

from __future__ import annotations

import gc
import gzip
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.loader import Loader, crop_or_pad, sample_order

SHAPE = (6, 5, 4)


def _loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gpuimg-loader")]


@pytest.fixture(autouse=True)
def no_threads_left():
    """Every test must leave no loader worker thread running."""
    yield
    if _loader_threads():
        gc.collect()  # an iterator left in a reference cycle stops when collected
    assert _loader_threads() == []


def _write(path, data, *, slope=1.0, inter=0.0, big_endian=False):
    header = nib.Nifti1Header(endianness=">" if big_endian else "<")
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]), header)
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return str(path)


@pytest.fixture
def files(tmp_path):
    """Eight small int16 volumes: plain and gzipped, both byte orders, assorted scalings."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(8):
        data = rng.integers(-300, 300, SHAPE).astype(np.int16)
        name = tmp_path / f"vol{i}{['.nii', '.nii.gz'][i % 2]}"
        paths.append(
            _write(
                name,
                data,
                slope=[1.0, 0.5, 2.0, 1.5][i % 4],
                inter=[0.0, -1.0, 3.0, 0.25][i % 4],
                big_endian=i % 4 == 3,
            )
        )
    return paths


def _expected(path, dtype=np.float32):
    return np.asarray(nib.load(path).get_fdata(dtype=dtype))


def _expected_cropped_or_padded(path, target):
    volume = _expected(path)
    src, dst = crop_or_pad(volume.shape, target)
    expected = np.zeros(target, np.float32)
    expected[dst] = volume[src]
    return expected


# -- pure functions -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5, 8, 13])
@pytest.mark.parametrize("world_size", [1, 2, 3, 5, 16])
def test_sample_order_matches_distributed_sampler(n, world_size):
    torch_data = pytest.importorskip("torch.utils.data")
    for rank in range(world_size):
        sampler = torch_data.DistributedSampler(
            range(n), num_replicas=world_size, rank=rank, shuffle=False
        )
        ours = sample_order(n, rank=rank, world_size=world_size)
        assert ours.tolist() == list(sampler)


def test_sample_order_shuffles_per_epoch_and_alike_on_every_rank():
    first = sample_order(10, epoch=0, shuffle=True, seed=3)
    assert sorted(first.tolist()) == list(range(10))
    assert first.tolist() == sample_order(10, epoch=0, shuffle=True, seed=3).tolist()
    assert first.tolist() != sample_order(10, epoch=1, shuffle=True, seed=3).tolist()
    ranks = [
        sample_order(10, epoch=2, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)
    ]
    assert {len(r) for r in ranks} == {4}
    whole = sample_order(10, epoch=2, shuffle=True, seed=3)
    assert sorted(np.concatenate(ranks).tolist()) == sorted(np.resize(whole, 12).tolist())


def test_crop_or_pad():
    source, destination = crop_or_pad((7, 4, 3), (4, 6, 3))
    assert source == (slice(1, 5), slice(0, 4), slice(0, 3))
    assert destination == (slice(0, 4), slice(1, 5), slice(0, 3))
    volume = np.arange(7 * 4 * 3).reshape(7, 4, 3)
    out = np.zeros((4, 6, 3), volume.dtype)
    out[destination] = volume[source]
    assert out[:, 1:5].tolist() == volume[1:5].tolist()


# -- batch values and layout ----------------------------------------------------------------------
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batches_equal_get_fdata(files, order, dtype):
    loader = Loader(files, 3, dtype=dtype, order=order, num_threads=2)
    assert len(loader) == 3
    batches = [batch.copy() for batch in loader]
    assert [b.shape for b in batches] == [(3, *SHAPE), (3, *SHAPE), (2, *SHAPE)]
    stacked = np.concatenate(batches)
    assert stacked.dtype == dtype
    for got, path in zip(stacked, files, strict=True):
        np.testing.assert_array_equal(got, _expected(path, dtype))


def test_layout_flags(files):
    assert all(batch.flags.c_contiguous for batch in Loader(files, 4, order="C"))
    f_loader = Loader(files, 4, order="F")
    f_batch = next(iter(f_loader))
    assert not f_batch.flags.c_contiguous and not f_batch.flags.f_contiguous
    assert all(volume.flags.f_contiguous for volume in f_batch)
    f_loader.close()


def test_float32_files_read_straight_into_the_slot(tmp_path):
    data = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    path = _write(tmp_path / "f.nii", data)
    (batch,) = list(Loader([path], 1, order="F"))
    np.testing.assert_array_equal(batch[0], data)


def test_drop_last_and_len(files):
    loader = Loader(files, 3, drop_last=True)
    assert len(loader) == 2
    assert [b.shape[0] for b in loader] == [3, 3]
    assert len(Loader(files, 3, world_size=3, rank=2)) == 1
    assert len(Loader(files, 2, world_size=3, rank=0)) == 2


def test_ranks_read_disjoint_padded_shards(files):
    seen = []
    for rank in range(3):
        loader = Loader(files, 2, world_size=3, rank=rank, shuffle=True, seed=7)
        assert len(loader) == 2
        shard = np.concatenate([b.copy() for b in loader])
        assert shard.shape[0] == 3
        expected = [_expected(files[i]) for i in loader.indices(0)]
        np.testing.assert_array_equal(shard, np.stack(expected))
        seen += loader.indices(0).tolist()
    assert sorted(set(seen)) == list(range(8)) and len(seen) == 9


def test_each_iteration_reshuffles_deterministically(files):
    def epoch_orders(loader, count):
        orders = []
        for _ in range(count):
            orders.append(loader.indices().tolist())
            first = next(iter(loader))  # advances the epoch
            np.testing.assert_array_equal(first[0], _expected(files[orders[-1][0]]))
        return orders

    a = epoch_orders(Loader(files, 4, shuffle=True, seed=11), 3)
    b = epoch_orders(Loader(files, 4, shuffle=True, seed=11), 3)
    assert a == b and a[0] != a[1]
    loader = Loader(files, 4, shuffle=True, seed=11)
    loader.set_epoch(2)
    assert loader.indices().tolist() == a[2]
    assert Loader(files, 4).indices().tolist() == list(range(8))


def test_bad_arguments(files):
    with pytest.raises(ValueError, match="paths is empty"):
        Loader([], 1)
    for one in (files[0], Path(files[0])):
        with pytest.raises(TypeError, match="paths is one path .* expected a sequence of paths"):
            Loader(one, 1)
    with pytest.raises(ValueError, match="batch_size is 0"):
        Loader(files, 0)
    with pytest.raises(ValueError, match="rank is 3"):
        Loader(files, 1, rank=3, world_size=3)
    with pytest.raises(ValueError, match="same seed"):
        Loader(files, 1, shuffle=True, world_size=2)
    with pytest.raises(ValueError, match="order is 'K'"):
        Loader(files, 1, order="K")


# -- shapes ---------------------------------------------------------------------------------------
def test_mismatched_shape_names_the_file(files, tmp_path):
    odd = _write(tmp_path / "odd.nii", np.zeros((6, 5, 3), np.int16))
    loader = Loader([files[0], odd], 2)
    with pytest.raises(ValueError, match=r"odd\.nii: image shape is \(6, 5, 3\), expected"):
        list(loader)


@pytest.mark.parametrize("order", ["C", "F"])
def test_shape_crops_and_pads(files, tmp_path, order):
    big = np.arange(9 * 3 * 4, dtype=np.int16).reshape(9, 3, 4)
    path = _write(tmp_path / "big.nii.gz", big, slope=2.0, inter=1.0)
    target = (5, 6, 4)
    (batch,) = list(Loader([path, files[1]], 2, shape=target, order=order))
    for got, source in zip(batch, [path, files[1]], strict=True):
        np.testing.assert_array_equal(got, _expected_cropped_or_padded(source, target))


def test_shape_with_other_ndim_names_the_file(files):
    with pytest.raises(ValueError, match=r"vol0\.nii: image has 3 axes .* shape=\(6, 5\)"):
        list(Loader(files[:1], 1, shape=(6, 5)))


# -- transform ------------------------------------------------------------------------------------
def test_transform_in_place_and_returning(files):
    def in_place(volume):
        volume *= 2
        return volume

    loader = Loader(files[:2], 2, transform=in_place)
    np.testing.assert_array_equal(next(iter(loader))[1], 2 * _expected(files[1]))
    loader = Loader(files[:2], 2, transform=lambda v: v[::-1] + 1)
    np.testing.assert_array_equal(next(iter(loader))[0], _expected(files[0])[::-1] + 1)


def test_transform_errors_name_the_file(files):
    def boom(volume):
        raise KeyError("nope")

    with pytest.raises(gpuimg.GpuimgError, match=r"vol0\.nii: .*KeyError"):
        list(Loader(files[:1], 1, transform=boom))
    with pytest.raises(ValueError, match=r"vol0\.nii: .*returned shape \(5, 4\)"):
        list(Loader(files[:1], 1, transform=lambda v: v[0]))


# -- errors, prefetch, cleanup --------------------------------------------------------------------
def test_worker_error_surfaces_with_the_file_name(files, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(gzip.compress(Path(files[0]).read_bytes())[:-40])
    paths = files[:3] + [str(broken)] + files[3:]
    with pytest.raises(gpuimg.ImageFileError, match="broken.nii.gz"):
        for _ in Loader(paths, 2, num_threads=2):
            pass
    missing = str(tmp_path / "missing.nii")
    with pytest.raises(FileNotFoundError, match="missing.nii"):
        list(Loader([files[0], missing], 1))


def test_break_close_and_garbage_collection_stop_workers(files):
    loader = Loader(files * 4, 2, num_threads=2, prefetch=3)
    for _ in loader:
        assert _loader_threads()
        break
    assert _loader_threads() == []
    iterator = iter(loader)
    next(iterator)
    loader.close()
    assert _loader_threads() == []
    with pytest.raises(StopIteration):
        next(iterator)
    iterator = iter(loader)
    next(iterator)
    del iterator
    gc.collect()
    assert _loader_threads() == []
    with Loader(files, 2) as managed:
        next(iter(managed))
    assert _loader_threads() == []


def test_prefetch_bounds_reads_ahead(files):
    started = []

    def record(volume):
        started.append(1)
        return volume

    loader = Loader(files * 3, 2, prefetch=1, num_threads=2, transform=record)
    iterator = iter(loader)
    next(iterator)
    time.sleep(0.2)
    assert len(started) <= 4  # the batch handed out and one read ahead
    iterator.close()


def test_buffers_are_recycled_or_fresh(files):
    pointers = {b.ctypes.data for b in Loader(files * 2, 2, prefetch=2)}
    assert len(pointers) <= 3
    fresh = list(Loader(files, 2, reuse=False))
    assert len({b.ctypes.data for b in fresh}) == 4
    np.testing.assert_array_equal(fresh[0][0], _expected(files[0]))


def test_threads_and_buffers_serve_every_epoch(files):
    workers = []

    def record(volume):
        workers.append(threading.get_ident())
        return volume

    loader = Loader(files * 2, 2, prefetch=2, num_threads=2, transform=record)
    first = {b.ctypes.data for b in loader}
    threads = set(_loader_threads())
    assert len(threads) == 2  # kept, idle, between epochs
    second = [b.copy() for b in loader]
    assert {t.ident for t in threads} >= set(workers) and set(_loader_threads()) == threads
    assert len(first) <= 3 and {b.ctypes.data for b in loader} == first
    np.testing.assert_array_equal(second[1][0], _expected(files[2]))
    loader.close()
    assert _loader_threads() == []
    fresh = Loader(files, 2, reuse=False)
    kept = list(fresh), list(fresh)  # both epochs alive: no buffer may serve both
    assert not {b.ctypes.data for b in kept[0]} & {b.ctypes.data for b in kept[1]}


def test_num_threads_set_between_epochs_applies_to_the_next(files):
    loader = Loader(files, 2, num_threads=2)
    list(loader)
    assert len(_loader_threads()) == 2
    loader.num_threads = 1
    list(loader)
    assert len(_loader_threads()) == 1
    loader.close()


def test_dropping_the_loader_joins_its_threads(files):
    loader = Loader(files, 4)
    list(loader)
    assert _loader_threads()
    del loader
    assert _loader_threads() == []


# -- GPU (the CuPy double, and real CuPy when a GPU is present) -----------------------------------
def test_device_batches_equal_get_fdata(files, xp):
    loader = Loader(files, 3, device="cuda", num_threads=1)
    assert loader.device == 0
    batches = [batch.get() for batch in loader]
    assert [b.shape for b in batches] == [(3, *SHAPE), (3, *SHAPE), (2, *SHAPE)]
    for got, path in zip(np.concatenate(batches), files, strict=True):
        np.testing.assert_array_equal(got, _expected(path))


def test_device_volumes_are_scaled_straight_into_their_slots(files, xp, monkeypatch):
    """No volume is allocated and then copied: each is scaled on the device into its batch slot."""
    from gpuimg import gpuread

    allocations = []
    real = gpuread.allocate_for
    monkeypatch.setattr(
        gpuread, "allocate_for", lambda *args: allocations.append(args) or real(*args)
    )
    batches = [batch.get() for batch in Loader(files, 3, device="cuda", num_threads=1)]
    assert allocations == []
    for got, path in zip(np.concatenate(batches), files, strict=True):
        np.testing.assert_array_equal(got, _expected(path))


def test_device_crop_pad_and_transform(files, tmp_path, xp):
    big = np.arange(9 * 3 * 4, dtype=np.int16).reshape(9, 3, 4)
    path = _write(tmp_path / "big.nii", big, slope=0.5)
    seen = []

    def transform(volume):
        seen.append(type(volume))
        return volume

    target = (5, 6, 4)
    loader = Loader([path, files[2]], 2, device="cuda", shape=target, transform=transform)
    loader.num_threads = 1
    (batch,) = [b.get() for b in loader]
    assert seen == [xp.ndarray, xp.ndarray]
    for got, source in zip(batch, [path, files[2]], strict=True):
        np.testing.assert_array_equal(got, _expected_cropped_or_padded(source, target))


def test_device_batches_wait_for_the_consumers_work(files, double):
    """With reuse=False a new batch may get the block of one the consumer still has kernels queued on
    (CuPy hands a freed block straight back to its stream): workers must write after that work."""
    from gpuimg import device

    copies = []
    for batch in Loader(files, 1, device="cuda", reuse=False, num_threads=1, prefetch=1):
        copy = double.empty(batch.shape, batch.dtype)
        device.cast_into(batch, copy)  # queued on the consumer's stream, still to run
        copies.append(copy)
    for copy, path in zip(copies, files, strict=True):
        np.testing.assert_array_equal(copy.get()[0], _expected(path))


def test_device_break_returns_pinned_buffers(files, xp):
    from gpuimg import device

    loader = Loader(files * 3, 2, device="cuda", num_threads=1, prefetch=2)
    for _ in loader:
        break
    assert _loader_threads() == []
    assert device.default_pinned_pool().stats().in_use == 0


def test_device_rejects_fortran_order(files, xp):
    with pytest.raises(ValueError, match="order='F' is for host batches"):
        Loader(files, 2, device="cuda", order="F")
