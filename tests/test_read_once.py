"""A read decides once: scaling plan, kernel spec and device are each resolved once per read, on every path.

Each test wraps ``plan_scaling``, ``kernel_spec`` and ``resolve_device`` wherever gpuimg's modules hold
them, reads one way (host or device, whole or a slice, the loader, dask, MONAI, BGZF through nvCOMP or
not), and counts the calls.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import nvcomp_double
import pytest
from test_load_once import KINDS, SHAPE, _expected, write_scaled

import gpuimg
from gpuimg import device
from gpuimg.device import backend
from gpuimg.loader import Loader
from gpuimg.scaling import plan_scaling
from gpuimg.scaling_kernel import kernel_spec

COUNTED = {"plan_scaling": plan_scaling, "kernel_spec": kernel_spec}


@pytest.fixture
def calls(monkeypatch) -> Counter:
    """Counts of calls to the functions in ``COUNTED`` and ``resolve_device``, by name."""
    counts: Counter = Counter()
    originals = {**COUNTED, "resolve_device": backend.resolve_device}

    def counting(name, original):
        def counted(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)

        return counted

    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] != "gpuimg" or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            for name, original in originals.items():
                if value is original:
                    monkeypatch.setattr(module, attribute, counting(name, original))
    return counts


@pytest.fixture(params=KINDS)
def path(request, tmp_path) -> str:
    """A scaled NIfTI-1 file: plain, one gzip stream, or BGZF."""
    return write_scaled(str(tmp_path / request.param))


def _once(calls: Counter, *, device: bool, resolved: int = 1) -> None:
    assert (
        calls
        == Counter({"plan_scaling": 1, "kernel_spec": int(device), "resolve_device": resolved})
        - Counter()
    )  # a count of 0 is no entry


def test_host_whole_read(path, calls):
    img = gpuimg.load(path)
    np.testing.assert_array_equal(img.get_fdata(dtype=np.float32), _expected())
    _once(calls, device=False)


def test_host_slice(path, calls):
    proxy = gpuimg.load(path).dataobj
    np.testing.assert_array_equal(proxy[..., 1], _expected()[..., 1])
    _once(calls, device=False, resolved=0)


def test_host_read_into_out(path, calls):
    proxy = gpuimg.load(path).dataobj
    out = np.empty(SHAPE[:2], np.float32)
    proxy.read_scaled_into(out, np.float32, slicer=(..., 2))
    np.testing.assert_array_equal(out, _expected()[..., 2])
    _once(calls, device=False, resolved=0)


def test_host_read_entry_point(path, calls):
    proxy = gpuimg.load(path).dataobj
    out = np.empty(SHAPE, np.float32, order="F")
    assert proxy.read(dtype=np.float32, out=out) is out
    np.testing.assert_array_equal(out, _expected())
    _once(calls, device=False)


@pytest.mark.parametrize("slicer", [(), (..., 1)], ids=["whole", "slice"])
def test_device_read(path, calls, double, slicer):
    img = gpuimg.load(path)
    if slicer == ():
        result = img.get_fdata(dtype=np.float32, device="cuda")
    else:
        result = img.dataobj.to_device(slicer, dtype=np.float32)
    np.testing.assert_array_equal(result.get(), _expected()[slicer])
    _once(calls, device=True)


def test_device_read_into_out(path, calls, double):
    proxy = gpuimg.load(path).dataobj
    out = device.empty(SHAPE[:2], np.float32)
    assert proxy.read((..., 0), dtype=np.float32, out=out) is out
    np.testing.assert_array_equal(out.get(), _expected()[..., 0])
    _once(calls, device=True)


def test_bgzf_device_read_through_nvcomp(tmp_path, calls, double):
    target = write_scaled(str(tmp_path / "bgzf.nii.gz"))
    with device.use_nvcomp_backend(nvcomp_double):
        result = gpuimg.load(target).get_fdata(dtype=np.float32, device="cuda")
    np.testing.assert_array_equal(result.get(), _expected())
    _once(calls, device=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["cpu", "cuda"])
def test_loader_reads(tmp_path, where, kind, request):
    if where == "cuda":
        request.getfixturevalue("double")
    paths = []
    for k in range(3):
        (tmp_path / str(k)).mkdir()
        paths.append(write_scaled(str(tmp_path / str(k) / kind)))
    loader = Loader(paths, 3, device=where, num_threads=1)
    calls = request.getfixturevalue("calls")  # counted from here: the reads, not the set-up
    (batch,) = list(loader)
    host = batch if where == "cpu" else batch.get()
    np.testing.assert_array_equal(host, np.stack([_expected()] * 3))
    on_device = where == "cuda"
    assert calls == Counter(plan_scaling=3, kernel_spec=3 * on_device, resolve_device=3 * on_device)
    loader.close()


@pytest.mark.parametrize("where", ["cpu", "cuda"])
def test_dask_chunks(path, where, request):
    pytest.importorskip("dask")
    if where == "cuda":
        request.getfixturevalue("double")
    from gpuimg.dask import to_dask

    array = to_dask(path, SHAPE[:2] + (1,), device=where)
    calls = request.getfixturevalue("calls")
    chunks = [array[..., k].compute(scheduler="synchronous") for k in range(3)]
    for k, chunk in enumerate(chunks):
        host = chunk if where == "cpu" else chunk.get()
        np.testing.assert_array_equal(host, _expected()[..., k])
    on_device = where == "cuda"
    assert calls == Counter(plan_scaling=3, kernel_spec=3 * on_device, resolve_device=3) - Counter()


@pytest.mark.parametrize("where", ["cpu", "cuda"])
def test_monai_reader(path, where, request):
    pytest.importorskip("monai")
    if where == "cuda":
        request.getfixturevalue("double")
    from gpuimg.monai import GpuimgReader

    reader = GpuimgReader(device=where)
    image = reader.read(path)
    calls = request.getfixturevalue("calls")
    data, _ = reader.get_data(image)
    host = data if where == "cpu" else data.get()
    np.testing.assert_array_equal(host, _expected())
    _once(calls, device=where == "cuda", resolved=0)
