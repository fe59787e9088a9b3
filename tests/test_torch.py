"""Tests of gpuimg.torch: zero-copy DLPack hand-off, TorchLoader and NiftiDataset."""

from __future__ import annotations

import pickle
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.loader import Loader

torch = pytest.importorskip("torch")
gtorch = pytest.importorskip("gpuimg.torch")


@pytest.fixture
def paths(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for i in range(3):
        img = nib.Nifti1Image(rng.integers(0, 99, (4, 5, 3)).astype(np.int16), np.eye(4) * (i + 1))
        img.affine[3, 3] = 1
        img.header.set_slope_inter(0.5, 1.0)
        path = str(tmp_path / f"v{i}.nii.gz")
        nib.save(img, path)
        out.append(path)
    return out


@pytest.mark.parametrize("order", ["C", "F"])
def test_to_torch_shares_memory(order):
    array = np.asarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4), order=order)
    tensor = gtorch.to_torch(array)
    assert tensor.data_ptr() == array.ctypes.data
    assert tensor.is_contiguous() == (order == "C")
    assert tensor.stride() == tuple(s // array.itemsize for s in array.strides)
    array[1, 2, 3] = -1
    assert tensor[1, 2, 3].item() == -1


def test_to_torch_refuses_what_dlpack_cannot_describe():
    with pytest.raises(ValueError, match="byte-swapped"):
        gtorch.to_torch(np.zeros(3, ">f4"))
    read_only = np.zeros(3, np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        gtorch.to_torch(read_only)


def test_to_torch_from_device_array(xp):
    array = xp.empty((2, 3), np.float32)
    if not hasattr(array, "__dlpack__"):
        pytest.skip("the CuPy double has no DLPack; covered on a real GPU")
    tensor = gtorch.to_torch(array)
    assert tensor.data_ptr() == array.data.ptr
    assert tensor.device.type == "cuda"


def test_torch_loader_yields_zero_copy_tensors(paths):
    loader = Loader(paths, 2, order="F")
    tensors = gtorch.TorchLoader(loader)
    assert len(tensors) == 2
    tensors.set_epoch(0)
    shapes = []
    for tensor, batch in zip(tensors, Loader(paths, 2, order="F"), strict=True):
        assert tensor.dtype == torch.float32
        np.testing.assert_array_equal(tensor.numpy(), batch)
        shapes.append(tuple(tensor.shape))
    assert shapes == [(2, 4, 5, 3), (1, 4, 5, 3)]
    iterator = iter(tensors)
    next(iterator)
    tensors.close()
    with pytest.raises(StopIteration):
        next(iterator)


def test_torch_loader_tensor_is_the_batch_buffer(paths):
    seen = []

    class Spy(Loader):
        def __iter__(self):
            for batch in super().__iter__():
                seen.append(batch.ctypes.data)
                yield batch

    for tensor in gtorch.TorchLoader(Spy(paths, 3)):
        assert tensor.data_ptr() == seen[-1]
        assert tensor.is_contiguous()


def test_nifti_dataset_items_and_pickle(paths):
    dataset = gtorch.NiftiDataset(paths, dtype=np.float64, transform=None)
    assert isinstance(dataset, torch.utils.data.Dataset)
    assert len(dataset) == 3
    volume, affine = dataset[1]
    assert volume.dtype == torch.float64
    np.testing.assert_array_equal(volume.numpy(), nib.load(paths[1]).get_fdata())
    np.testing.assert_array_equal(affine.numpy(), nib.load(paths[1]).affine)
    clone = pickle.loads(pickle.dumps(dataset))
    assert type(clone) is type(dataset) and clone.paths == paths
    assert len(pickle.dumps(dataset)) < 1000


def test_nifti_dataset_with_dataloader(paths):
    dataset = gtorch.NiftiDataset(paths, transform=lambda v: v * 2)
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=2))
    assert [tuple(b[0].shape) for b in batches] == [(2, 4, 5, 3), (1, 4, 5, 3)]
    expected = 2 * nib.load(paths[2]).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(batches[1][0][0].numpy(), expected)
    assert tuple(batches[0][1].shape) == (2, 4, 4)


def test_missing_torch_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"needs PyTorch.*gpuimg\[torch\]"):
        gtorch.to_torch(np.zeros(2))


def test_importing_gpuimg_torch_does_not_import_torch():
    code = "import sys, gpuimg.torch; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_batches_as_tensors():
    (tensor,) = gtorch.TorchLoader(Loader([gpuimg.data.sample_path()], 1))
    expected = gpuimg.load(gpuimg.data.sample_path()).get_fdata(dtype=np.float32)
    np.testing.assert_array_equal(tensor[0].numpy(), expected)
