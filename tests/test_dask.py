"""Tests of gpuimg.dask: lazy chunks through the proxy, on a process cluster, and small pickles."""

from __future__ import annotations

import pickle
import sys

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.dask import VolumeSource, default_chunks, stack_files, to_dask

da = pytest.importorskip("dask.array")


def _save(path, data, slope=1.0, inter=0.0):
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return str(path)


@pytest.fixture
def series(tmp_path):
    """A gzipped, scaled 4D series."""
    data = np.random.default_rng(0).integers(-500, 500, (7, 6, 5, 4)).astype(np.int16)
    return _save(tmp_path / "series.nii.gz", data, slope=0.25, inter=3.0)


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(1)
    return [
        _save(tmp_path / f"v{i}.nii", rng.integers(0, 1000, (5, 4, 3)).astype(np.uint16), 1.5, i)
        for i in range(5)
    ]


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _fdata(path, dtype=np.float32):
    return np.asarray(nib.load(path).get_fdata(dtype=dtype))


def test_chunks_read_scaled_slices(series):
    array = to_dask(series)
    assert array.chunksize == (7, 6, 5, 1) and array.dtype == np.float32
    assert isinstance(array._meta, np.ndarray)
    np.testing.assert_array_equal(array.compute(scheduler="sync"), _fdata(series))
    custom = to_dask(gpuimg.load(series), chunks=(3, 6, 2, 4), dtype=np.float64)
    np.testing.assert_array_equal(
        custom[1:6, :, 2:].compute(scheduler="sync"), _fdata(series, np.float64)[1:6, :, 2:]
    )


def test_default_chunks():
    assert default_chunks((4, 5, 6)) == (4, 5, 6)
    assert default_chunks((4, 5, 6, 7, 2)) == (4, 5, 6, 1, 1)
    assert default_chunks((4, 5)) == (4, 5)


def test_names_are_deterministic_and_follow_the_file(series, volumes):
    assert to_dask(series).name == to_dask(series).name
    assert to_dask(series).name != to_dask(series, dtype=np.float64).name
    before = to_dask(volumes[0]).name
    _save(volumes[0], np.zeros((5, 4, 3), np.uint16))
    assert to_dask(volumes[0]).name != before


def test_in_memory_image_is_refused():
    img = gpuimg.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="expected an array proxy"):
        to_dask(img)


def test_stack_files_checks_shapes(volumes, tmp_path):
    stacked = stack_files(volumes)
    assert stacked.shape == (5, 5, 4, 3)
    odd = _save(tmp_path / "odd.nii", np.zeros((5, 4, 2), np.uint16))
    with pytest.raises(ValueError, match=r"odd\.nii: image shape is \(5, 4, 2\), expected"):
        stack_files([*volumes, odd])
    with pytest.raises(ValueError, match="paths is empty"):
        stack_files([])


def test_images_and_proxies_pickle_small(series):
    img = gpuimg.load(series)
    data_bytes = int(np.prod(img.shape)) * 2
    assert len(pickle.dumps(img.dataobj)) < 1024 < data_bytes
    assert len(pickle.dumps(img)) < 8192
    source = VolumeSource(img.dataobj, np.float32)
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone[..., 2], _fdata(series)[..., 2])


def test_mean_over_time_on_a_process_cluster(series, client):
    result = to_dask(series).mean(axis=-1).compute()
    np.testing.assert_allclose(result, _fdata(series).mean(axis=-1), rtol=1e-6)


def test_per_volume_statistics_across_files_on_a_process_cluster(volumes, client):
    stacked = stack_files(volumes, dtype=np.float64)
    maxima, means = da.compute(stacked.max(axis=(1, 2, 3)), stacked.mean(axis=(1, 2, 3)))
    expected = [_fdata(path, np.float64) for path in volumes]
    np.testing.assert_array_equal(maxima, [e.max() for e in expected])
    np.testing.assert_allclose(means, [e.mean() for e in expected], rtol=1e-12)


def test_device_chunks(series, xp):
    array = to_dask(series, device="cuda")
    assert isinstance(array._meta, xp.ndarray)
    block = array.blocks[0, 0, 0, 2].compute(scheduler="sync")
    assert isinstance(block, xp.ndarray)
    np.testing.assert_array_equal(block.get(), _fdata(series)[..., 2:3])


def test_missing_dask_is_a_clear_import_error(monkeypatch, series):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"needs dask.*gpuimg\[dask\]"):
        to_dask(series)
