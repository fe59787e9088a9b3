"""How a loader's worker puts one volume into its slot of a batch, on the host or on a GPU.

:class:`HostFiller` and :class:`DeviceFiller` allocate a loader's batch buffers and fill one slot
each call, on the worker's thread; :class:`BatchSpec` is what they need to know of the loader.

On the host, a whole single-member ``.nii.gz`` volume is decoded in one libdeflate call into a
buffer of the size of its data block (:func:`gpuimg.io.wholegzip.decode_whole`) and scaled into its
slot in one more pass (:meth:`WholeGzip.scale_into`): in disk order by a compiled loop
(:func:`gpuimg.kernels.scale_flat_into`), into a C-ordered slot by the transposing kernel
(:func:`gpuimg.scaling.scale_transposed_into`). Measured on one core for a 160x192x160 int16 file:
decode 9-10 ms, then 1.7 ms in disk order or 6 ms transposed, against 20 ms for the streaming read.
From the second epoch on, such a file is not loaded again while its header is unchanged
(:class:`KnownHeaders`): parsing it cost 0.6-0.9 ms of CPU per volume, 6-8 % of the loader's.
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
from gpuimg.loadsave import load
from gpuimg.scaling import ScalePlan, scale_into, scale_transposed_into

__all__ = ["BatchSpec", "DeviceFiller", "HostFiller", "KnownHeaders", "SlicersOf", "WholeGzip"]

#: The loader's ``(path, shape) -> (source, destination) slicers or None`` (see ``Loader._slicers``).
SlicersOf = Callable[[str, tuple[int, ...]], tuple[tuple, tuple] | None]


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


@dataclass(frozen=True)
class WholeGzip:
    """A Fortran-ordered volume of a single-member gzip file: what decoding it whole needs.

    Attributes
    ----------
    path : str
        The gzip file.
    shape : tuple of int
        The volume's shape.
    dtype : numpy.dtype
        The on-disk dtype, byte order included.
    offset : int
        Where the data block starts in the decompressed file.
    plan : ScalePlan
        The scaling to the loader's dtype (the proxy's ``scale_plan``).
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    plan: ScalePlan

    @classmethod
    def read(cls, proxy: Any, dtype: Any) -> tuple[WholeGzip, bytearray] | None:
        """``proxy``'s file decoded whole, and what scaling it to ``dtype`` needs; or None.

        None, with nothing else done, when the file is not one libdeflate decodes whole (not a
        compressed file path in F order, or see :func:`gpuimg.io.wholegzip.decode_whole`): the
        caller reads it the ordinary way.
        """
        if (
            proxy.order != "F"
            or not proxy.is_compressed
            or not isinstance(proxy.file_like, (str, os.PathLike))
        ):
            return None
        path, shape = os.fspath(proxy.file_like), tuple(proxy.shape)
        data = decode_whole(path, _data_end(proxy.offset, shape, proxy.dtype))
        if data is None:
            return None
        return cls(path, shape, proxy.dtype, proxy.offset, proxy.scale_plan(dtype)), data

    def decode(self) -> bytearray | None:
        """The file decoded whole again, or None when it no longer decodes whole to the same size."""
        return decode_whole(self.path, _data_end(self.offset, self.shape, self.dtype))

    def scale_into(self, data: bytearray, out: np.ndarray, *, slicer: tuple = ()) -> None:
        """Scale the volume in ``data`` (the decoded file), or its box ``slicer``, into ``out``.

        ``out`` has the box's shape and the plan's dtype, any strides; the values are those of the
        proxy's ``read_scaled_into``.
        """
        count = math.prod(self.shape)
        raw = np.frombuffer(data, self.dtype, count, self.offset).reshape(self.shape, order="F")
        raw = raw[slicer]
        if raw.flags.f_contiguous and out.flags.f_contiguous:
            # One compiled pass when numba takes the plan.
            scale_into(raw, self.plan, out, threads=1)
        else:
            scale_transposed_into(raw, self.plan, out)


class KnownHeaders:
    """The single-file ``.nii.gz`` volumes a loader has decoded whole, by path: one parse per file.

    A loader reads every file again each epoch. Decoding a single-file image whole yields the bytes
    before its data block too: the header and its extensions, everything :func:`gpuimg.load` parses
    of the file. When a file decodes to the same size with the same bytes there as when it was last
    loaded, loading it again would give the same proxy, so the loader scales the new data with what
    it kept of that proxy (a :class:`WholeGzip`) and does not load the file. A file that changed,
    shrank, went away or no longer decodes is loaded again, and the load's errors name it. What the
    load warns or logs of a file's header (a fixed field, an odd extension) comes once, with the
    epoch that parses it.

    Memory: one entry per file, its header bytes (352 for a NIfTI-1 file without extensions) and a
    :class:`WholeGzip`: 1.2 KiB per file measured with ``tracemalloc``. The worker threads read and
    write the entries; each operation on the dict is atomic.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[bytes, WholeGzip]] = {}

    def __len__(self) -> int:
        return len(self._known)

    def decode(self, path: str) -> tuple[WholeGzip, bytearray] | None:
        """The volume of ``path`` decoded whole, when its header is the one kept; else None."""
        entry = self._known.get(path)
        if entry is None:
            return None
        head, volume = entry
        try:
            data = volume.decode()
        except OSError:  # gone or unreadable: the load says so, naming the file
            data = None
        if data is None or data[: len(head)] != head:
            self._known.pop(path, None)
            return None
        return volume, data

    def remember(self, path: str, image: Any, volume: WholeGzip, data: bytearray) -> None:
        """``image``, loaded from ``path``, was decoded whole as ``data``: keep it if it is one file.

        Only a single-file image whose data start past its header has all it parsed in ``data``
        (a pair's header is in another file).
        """
        first = getattr(image.header, "single_vox_offset", None)
        if len(image.files_types) == 1 and first is not None and first <= volume.offset:
            self._known[path] = (bytes(data[: volume.offset]), volume)


def _data_end(offset: int, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of a decompressed file whose data block of ``shape`` and ``dtype`` starts at ``offset``."""
    return offset + math.prod(shape) * dtype.itemsize


def _placed(volume: np.ndarray, slicers: tuple | None) -> tuple[tuple, np.ndarray]:
    """``(source slicer, target view of volume)``; a cropped or padded ``volume`` is zeroed first."""
    if slicers is None:
        return (), volume
    volume.fill(0)
    source, destination = slicers
    return source, volume[destination]


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
    known : KnownHeaders
        The loader's files decoded whole before, kept from one epoch to the next.
    """

    def __init__(self, spec: BatchSpec, spares: list[np.ndarray], known: KnownHeaders) -> None:
        self._spec, self._spares, self._known = spec, spares, known

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

    def fill(self, path: str, buffer: np.ndarray, slot: int, slicers_of: SlicersOf) -> None:
        """Read ``path`` into ``buffer[slot]``, cropped and padded by ``slicers_of(path, shape)``."""
        spec = self._spec
        volume = buffer[slot]
        # One thread per volume (the loader parallelises across volumes); into a slot of another
        # layout (C order, a crop or pad) the scaling transposes in the same pass.
        known = self._known.decode(path)
        if known is not None:
            whole, data = known
            source, target = _placed(volume, slicers_of(path, whole.shape))
            whole.scale_into(data, target, slicer=source)
        else:
            image = load(path)
            proxy = image.dataobj
            source, target = _placed(volume, slicers_of(path, tuple(proxy.shape)))
            known = WholeGzip.read(proxy, spec.dtype)
            if known is None:
                proxy.read_scaled_into(target, spec.dtype, slicer=source)
            else:
                whole, data = known
                whole.scale_into(data, target, slicer=source)
                self._known.remember(path, image, whole, data)
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

    def fill(self, path: str, buffer: Any, slot: int, slicers_of: SlicersOf) -> None:
        """Read ``path`` into ``buffer[slot]``, cropped and padded by ``slicers_of(path, shape)``."""
        spec = self._spec
        proxy = load(path).dataobj
        slicers = slicers_of(path, tuple(proxy.shape))
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
