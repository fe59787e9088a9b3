"""gpuimg in processes forked after the parent has read data (multiprocessing, torch's DataLoader).

A forked child has only the thread that forked: the parent's pool threads are gone, locks other threads
held stay held, and files opened before the fork share their position with the parent. Each test here
hung or read wrong data before gpuimg rebuilt that state in the child.
"""

from __future__ import annotations

import multiprocessing
import threading

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg import config
from gpuimg.device import backend
from gpuimg.errors import DeviceUnavailableError
from gpuimg.io import buffers

pytestmark = [
    pytest.mark.skipif(
        "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
    ),
    # These tests fork a process that has threads on purpose (Python 3.12+ warns about it).
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

TIMEOUT = 60  # seconds: a hang fails the test instead of stalling the run

_inherited: dict = {}  # handed to forked children through the fork itself


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> tuple[str, np.ndarray]:
    """A scaled 4D .nii.gz of 8 volumes of 512 KiB each, larger than a gzip index's window."""
    data = np.random.default_rng(7).integers(0, 1000, (64, 64, 64, 8)).astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(0.5, 2.0)
    path = str(tmp_path_factory.mktemp("fork") / "vols.nii.gz")
    nib.save(img, path)
    return path, nib.load(path).get_fdata()


def _in_children(function, args_list: list) -> list:
    """Run ``function(*args)`` for each ``args`` in processes forked now; fail on a hang."""
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pending = [pool.apply_async(function, args) for args in args_list]
        return [job.get(timeout=TIMEOUT) for job in pending]


def _whole_sum(path: str) -> float:
    return float(gpuimg.load(path).get_fdata().sum())


def test_forked_pool_reads_gzip_after_the_parent_did(volumes):
    path, expected = volumes
    with config.configure(threads=4):  # the parent's read starts the helper-thread pool
        np.testing.assert_array_equal(gpuimg.load(path).get_fdata(), expected)
        assert _in_children(_whole_sum, [(path,), (path,)]) == [float(expected.sum())] * 2


def _read_volume(index: int) -> float:
    return float(_inherited["img"].dataobj[..., index].sum())


def test_kept_file_is_not_shared_with_a_forked_child(volumes):
    """The child reads through its own file: the parent's next sequential read is not disturbed."""
    path, expected = volumes
    img = gpuimg.load(path, keep_file_open=True)
    np.testing.assert_array_equal(img.dataobj[..., 0], expected[..., 0])
    _inherited["img"] = img
    try:
        assert _in_children(_read_volume, [(5,)]) == [float(expected[..., 5].sum())]
    finally:
        _inherited.clear()
    np.testing.assert_array_equal(img.dataobj[..., 7], expected[..., 7])


def test_locks_held_by_other_threads_at_fork_are_free_in_the_child(volumes):
    path, expected = volumes
    gpuimg.load(path).get_fdata()
    release, held = threading.Event(), threading.Event()

    def hold_locks() -> None:
        with buffers.default_pool._lock, config._busy_lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold_locks)
    holder.start()
    held.wait()
    try:
        with config.configure(threads=4):
            assert _in_children(_whole_sum, [(path,)]) == [float(expected.sum())]
    finally:
        release.set()
        holder.join()


def _get_cupy_error() -> str:
    try:
        backend.get_cupy()
    except DeviceUnavailableError as error:
        return str(error)
    return "no error"


def test_child_forked_after_cuda_was_initialised_gets_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "_checked", {"cupy"})  # as after a GPU read in the parent
    (message,) = _in_children(_get_cupy_error, [()])
    assert "forked" in message and "'spawn'" in message


def test_torch_dataloader_workers_after_the_parent_read_an_item(volumes, tmp_path):
    torch = pytest.importorskip("torch")
    gtorch = pytest.importorskip("gpuimg.torch")
    path, expected = volumes
    dataset = gtorch.NiftiDataset([path, path], dtype=np.float64)
    with config.configure(threads=4):
        np.testing.assert_array_equal(dataset[0][0].numpy(), expected)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=1, num_workers=2, multiprocessing_context="fork", timeout=TIMEOUT
        )
        batches = list(loader)
    assert len(batches) == 2
    for volume, _ in batches:
        np.testing.assert_array_equal(volume[0].numpy(), expected)


def _loader_epoch_sum() -> float:
    return float(sum(batch.sum(dtype=np.float64) for batch in _inherited["loader"]))


def test_loader_threads_kept_between_epochs_are_restarted_in_a_forked_child(volumes):
    path, expected = volumes
    loader = gpuimg.Loader([path, path], 2, num_threads=2, dtype=np.float64)
    total = float(sum(batch.sum(dtype=np.float64) for batch in loader))  # its threads stay
    assert total == 2 * float(expected.sum())
    _inherited["loader"] = loader
    try:
        assert _in_children(_loader_epoch_sum, [()]) == [total]
    finally:
        _inherited.clear()
        loader.close()
