"""How a loader's worker puts one volume into its slot of a batch, on the host or on a GPU.

:class:`HostFiller` and :class:`DeviceFiller` allocate a loader's batch buffers and fill one slot
each call, on the worker's thread; :class:`BatchSpec` is what they need to know of the loader.

On the host, a whole single-member ``.nii.gz`` volume is decoded in one libdeflate call into a
buffer of the size of its data block (:func:`gpuimg.io.wholegzip.decode_whole`) and scaled into its
slot in one more pass (:func:`read_whole_gzip_into`): in disk order by a compiled loop
(:func:`gpuimg.kernels.scale_flat_into`), into a C-ordered slot by the transposing kernel
(:func:`gpuimg.scaling.scale_transposed_into`). Measured on one core for a 160x192x160 int16 file:
decode 9-10 ms, then 1.7 ms in disk order or 6 ms transposed, against 20 ms for the streaming read.
Everything else (plain files, BGZF, bzip2, zstd, several members, a corrupt file) is read by the
proxy (:meth:`gpuimg.arrayproxy.ArrayProxy.read_scaled_into`), whose errors name the file.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuimg import device as device_seam
from gpuimg.io.wholegzip import decode_whole
from gpuimg.scaling import scale_into, scale_transposed_into

__all__ = ["BatchSpec", "DeviceFiller", "HostFiller", "read_whole_gzip_into"]


@dataclass(frozen=True)
class BatchSpec:
    """What a filler needs to know of its loader's batches.

    Attributes
    ----------
    batch_size : int
        Volumes per batch.
    shape : tuple of int
        Shape of one volume in the batch.
    dtype : numpy.dtype
        dtype of the batches.
    order : {'C', 'F'}
        Memory layout of host batches (see :mod:`gpuimg.loader`).
    transform : callable or None
        Run on each volume in its slot; returns an array of the same shape.
    device : int or None
        CUDA device id of the batches, None on the host.
    """

    batch_size: int
    shape: tuple[int, ...]
    dtype: np.dtype
    order: str
    transform: Callable[[Any], Any] | None
    device: int | None


def read_whole_gzip_into(proxy: Any, out: np.ndarray, dtype: Any, *, slicer: tuple = ()) -> bool:
    """Read ``proxy[slicer]`` of a single-member gzip file scaled into ``out`` in two passes, if it can.

    The file is decoded whole in one libdeflate call, then scaled into ``out`` in one pass with the
    proxy's scaling (the values of ``proxy.read_scaled_into``).

    Parameters
    ----------
    proxy : ArrayProxy
        A Fortran-ordered proxy of a file path.
    out : numpy.ndarray
        Writeable, of the shape of ``proxy[slicer]`` and of ``proxy.scale_plan(dtype).out_dtype``;
        any strides.
    dtype : numpy dtype
        As for ``proxy.read_scaled_into``.
    slicer : tuple of slice, keyword only
        A box of the volume (the loader's crop).

    Returns
    -------
    bool
        False, with nothing written, when the file is not one libdeflate decodes whole (see
        :func:`gpuimg.io.wholegzip.decode_whole`): the caller reads it the ordinary way.
    """
    if (
        proxy.order != "F"
        or not proxy.is_compressed
        or not isinstance(proxy.file_like, (str, os.PathLike))
    ):
        return False
    count = math.prod(proxy.shape)
    data = decode_whole(proxy.file_like, proxy.offset + count * proxy.dtype.itemsize)
    if data is None:
        return False
    raw = np.frombuffer(data, proxy.dtype, count, proxy.offset).reshape(proxy.shape, order="F")
    raw = raw[slicer]
    plan = proxy.scale_plan(dtype)
    if raw.flags.f_contiguous and out.flags.f_contiguous:
        scale_into(raw, plan, out, threads=1)  # one compiled pass when numba takes the plan
    else:
        scale_transposed_into(raw, plan, out)
    return True


def _transformed(spec: BatchSpec, volume: Any, path: str) -> Any:
    """Run the loader's transform on ``volume`` (read from ``path``); check it kept the shape."""
    assert spec.transform is not None, "called only for a loader with a transform"
    result = spec.transform(volume)
    if tuple(result.shape) != tuple(volume.shape):
        raise ValueError(
            f"{path}: transform {spec.transform!r} returned shape {tuple(result.shape)}, "
            f"expected {tuple(volume.shape)} (the batch's volume shape)"
        )
    return result


class HostFiller:
    """Batches in numpy memory; each worker scales straight into its slot.

    Parameters
    ----------
    spec : BatchSpec
        The loader's batches.
    spares : list of numpy.ndarray
        The loader's idle batch buffers: allocation takes from it, the end of an epoch gives back.
    """

    def __init__(self, spec: BatchSpec, spares: list[np.ndarray]) -> None:
        self._spec, self._spares = spec, spares

    def allocate(self) -> np.ndarray:
        """A batch buffer: a spare one, else new memory in the batches' layout."""
        spec = self._spec
        if self._spares:
            return self._spares.pop()
        if spec.order == "C":
            return np.empty((spec.batch_size, *spec.shape), spec.dtype)
        ndim = len(spec.shape)
        base = np.empty((spec.batch_size, *spec.shape[::-1]), spec.dtype)
        return base.transpose(0, *range(ndim, 0, -1))

    def fill(
        self, proxy: Any, slicers: tuple | None, buffer: np.ndarray, slot: int, path: str
    ) -> None:
        """Read ``proxy`` (of ``path``) into ``buffer[slot]``, cropped and padded by ``slicers``."""
        spec = self._spec
        volume = buffer[slot]
        source, destination = slicers if slicers is not None else ((), ())
        if slicers is not None:
            volume.fill(0)
        # One thread per volume (the loader parallelises across volumes); into a slot of another
        # layout (C order, a crop or pad) the scaling transposes in the same pass.
        target = volume[destination]
        if not read_whole_gzip_into(proxy, target, spec.dtype, slicer=source):
            proxy.read_scaled_into(target, spec.dtype, slicer=source)
        if spec.transform is not None:
            result = _transformed(spec, volume, path)
            if result is not volume:
                np.copyto(volume, result, casting="same_kind")

    def release(self, buffer: np.ndarray) -> None:
        """Nothing to wait for: the host consumer is done with a batch once it asks for the next."""

    def keep(self, buffers: list[np.ndarray]) -> None:
        """The epoch is over: its idle buffers serve the next one."""
        self._spares.extend(buffers)


class DeviceFiller:
    """Batches in GPU memory: each volume streams to the device and is scaled there into its slot.

    Workers each have their own stream. A slot is written only after the consumer's stream has
    passed the point where the batch buffer was allocated or the consumer asked for the next batch
    (an event recorded then), and a worker waits for its volume's copies before reporting it done,
    so a yielded batch is complete and ready on any stream.
    """

    def __init__(self, spec: BatchSpec) -> None:
        assert spec.device is not None, "a device filler is made for a GPU loader only"
        self._spec = spec
        self._device: int = spec.device
        self._local = threading.local()
        self._released: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._zeros: Any = None

    def _stream(self) -> Any:
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = device_seam.new_stream()
        return stream

    def allocate(self) -> Any:
        """A new batch buffer on the device."""
        spec = self._spec
        buffer = device_seam.empty((spec.batch_size, *spec.shape), spec.dtype, device=self._device)
        # Allocated on the consumer's stream, whose queued work may still use the block (CuPy's pool
        # hands a freed block straight back to its stream): workers wait for it to get this far.
        self.release(buffer)
        return buffer

    def fill(self, proxy: Any, slicers: tuple | None, buffer: Any, slot: int, path: str) -> None:
        """Read ``proxy`` (of ``path``) into ``buffer[slot]``, cropped and padded by ``slicers``."""
        spec = self._spec
        source, destination = slicers if slicers is not None else ((), ())
        with device_seam.using_device(self._device), self._stream() as stream:
            with self._lock:
                released = self._released.get(id(buffer))
            if released is not None:
                stream.wait_event(released)
            target = buffer[slot]
            if slicers is not None:
                device_seam.cast_into(self._zeros_like(target), target)
            # Straight into the slot, after the work queued on this stream so far.
            proxy.to_device(source, dtype=spec.dtype, device=spec.device, out=target[destination])
            if spec.transform is not None:
                result = _transformed(spec, target, path)
                if result is not target:
                    device_seam.cast_into(result, target)
            stream.synchronize()

    def _zeros_like(self, target: Any) -> Any:
        with self._lock:
            if self._zeros is None:
                zeros = device_seam.empty(target.shape, target.dtype)
                stream = self._stream()
                zeros.set(np.zeros(target.shape, target.dtype), stream=stream)
                # Other workers' streams read it too: it must be complete before anyone does.
                stream.synchronize()
                self._zeros = zeros
            return self._zeros

    def release(self, buffer: Any) -> None:
        """The consumer is done queueing work on ``buffer``: workers write it only after that work."""
        event = device_seam.current_stream_event(self._device)
        with self._lock:
            self._released[id(buffer)] = event

    def keep(self, buffers: list[Any]) -> None:
        """The epoch is over: device buffers go back to CuPy's pool (their release events end here)."""
