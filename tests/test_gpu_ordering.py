"""Stream ordering on a real GPU (``cuda`` marker; skipped without one).

A kernel that spins for a fraction of a second before it writes makes each race of issue 14
deterministic: without the event that orders two streams, the late write (or the early read) shows
up in the result. The subnormal checks (``-ftz=true``) run on the GPU through the ``xp`` tests:
``test_kernel_keeps_subnormals``, ``test_matches_host_scaling`` and
``test_float32_subnormals_survive_a_device_read``.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from test_gpuread import BytesSource

import gpuimg
from gpuimg import device, gpuread
from gpuimg.scaling import apply_scaling, plan_scaling
from tests.images.test_device_images import read_cached_on_another_stream

pytestmark = pytest.mark.cuda

_SPIN = r"""
extern "C" __global__ void gpuimg_test_spin(long long cycles, float* out, float value, long long n) {
    long long start = clock64();
    while (clock64() - start < cycles) {
    }
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        out[i] = value;
    }
}
"""
CYCLES = 400_000_000  # about 0.2 s at 2 GHz


def _spin_then_fill(cupy, array, value: float) -> None:
    """On the current stream: spin, then fill the float32 ``array`` with ``value``."""
    kernel = cupy.RawKernel(_SPIN, "gpuimg_test_spin")
    kernel((1,), (256,), (np.int64(CYCLES), array, np.float32(value), np.int64(array.size)))


def test_the_result_is_written_after_the_consumers_queued_kernel(gpu) -> None:
    """Item 1: the pool hands the consumer's freed block straight back; its late write must not win."""
    raw = np.arange(16 * 16 * 16, dtype=">i2").reshape(16, 16, 16)
    plan = plan_scaling(raw.dtype, 2.0, None, np.dtype("f4"))
    consumer = gpu.cuda.Stream(non_blocking=True)
    with consumer:
        old = gpu.empty(raw.size, dtype=np.float32)
        address = old.data.ptr
        _spin_then_fill(gpu, old, -1.0)
        del old
    result = gpuread.read_to_device(BytesSource(raw), plan, device=0, stream=consumer)
    assert result.data.ptr == address, "the pool handed out another block: nothing was staged"
    np.testing.assert_array_equal(result.get(stream=consumer), apply_scaling(raw, plan))


def test_a_cached_array_is_ready_on_another_stream(gpu, tmp_path) -> None:
    """Items 1 and 3: while gpuimg's stream is busy, a cached array must not be read early."""
    data = np.random.default_rng(0).integers(-1000, 1000, (32, 32, 32)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "vol.nii")
    img = gpuimg.load(tmp_path / "vol.nii")
    with device.gpuimg_stream(0):
        _spin_then_fill(gpu, gpu.empty(1, dtype=np.float32), 0.0)
    host = read_cached_on_another_stream(gpu, img)
    np.testing.assert_array_equal(host, data.astype(np.float64))
