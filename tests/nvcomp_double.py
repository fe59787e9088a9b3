"""A strict CPU test double of the ``nvidia.nvcomp`` subset that ``gpuimg.device`` uses.

Install it with ``gpuimg.device.use_nvcomp_backend(nvcomp_double)``, together with the CuPy double
(``tests/cupy_double.py``), whose device arrays and streams it works on. It follows nvCOMP's
documented behaviour for that subset and nothing more, and is strict where nvCOMP may be lenient:

* :class:`Codec` takes keyword options only; it knows ``algorithm="Deflate"`` with
  ``bitstream_kind=BitstreamKind.RAW`` (raw Deflate, as BGZF blocks hold) and refuses anything else.
  ``cuda_stream`` must be the ``ptr`` of a live stream; decoding is queued on it and runs only when
  that stream is waited for, as on a GPU.
* :func:`as_arrays` wraps one contiguous device buffer carved by ``offsets``/``sizes``; every entry
  must start at a multiple of :meth:`Codec.get_required_decompression_alignment` and lie inside the
  buffer, and host (numpy) buffers are refused for decoding.
* :meth:`Codec.decode` of a batch into ``out`` without a decompression config synchronises the
  stream to read the blocks (as nvCOMP documents), raises ValueError when an output entry is too
  small and RuntimeError for a corrupt block, then queues the decoding on the stream.
  :attr:`BatchArray.buffer_sizes` waits for the work and gives the decoded sizes.
* A :class:`BatchArray` refuses implicit conversion to numpy, like CuPy's arrays.
"""

from __future__ import annotations

import enum
import zlib

import cupy_double
import numpy as np

__version__ = "double"

#: What the double reports as the alignment decode buffers need (nvCOMP's docs: "if in doubt, 16").
ALIGNMENT = 16


class BitstreamKind(enum.Enum):
    """``nvidia.nvcomp.BitstreamKind``."""

    NVCOMP_NATIVE = 0
    RAW = 1
    WITH_UNCOMPRESSED_SIZE = 2


class BatchArray:
    """``nvidia.nvcomp.BatchArray``: entries of one device buffer, as ``(offset, size)``."""

    def __init__(self, buffer: cupy_double.ndarray, entries: list[tuple[int, int]]) -> None:
        self._buffer = buffer
        self._entries = entries
        self._stream: cupy_double.Stream | None = None  # the stream of the work producing it

    def __len__(self) -> int:
        return len(self._entries)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        raise TypeError("a device BatchArray cannot be converted to numpy implicitly")

    @property
    def buffer_sizes(self) -> list[int]:
        """Sizes in bytes of every entry; waits for the work that produced this batch."""
        if self._stream is not None:
            self._stream.synchronize()
        return [size for _, size in self._entries]

    def _bytes(self, number: int) -> np.ndarray:
        offset, size = self._entries[number]
        return self._buffer._view.reshape(-1)[offset : offset + size]


def as_arrays(
    buffer: object, offsets: list[int], sizes: list[int], cuda_stream: int = 0
) -> BatchArray:
    """``nvidia.nvcomp.as_arrays`` (the one-buffer overload): entries carved by an offset table."""
    if not isinstance(buffer, cupy_double.ndarray):
        raise TypeError(f"the double decodes device (cupy) buffers only, found {type(buffer)}")
    if buffer.dtype != np.uint8 or not buffer.flags.c_contiguous:
        raise ValueError("the double expects a contiguous uint8 device buffer")
    if len(offsets) != len(sizes):
        raise ValueError(f"{len(offsets)} offsets for {len(sizes)} sizes")
    for offset, size in zip(offsets, sizes, strict=True):
        if offset % ALIGNMENT or offset < 0 or size < 0 or offset + size > buffer.nbytes:
            raise ValueError(
                f"entry ({offset}, {size}) is misaligned (alignment {ALIGNMENT}) or outside the "
                f"buffer of {buffer.nbytes} bytes"
            )
    cupy_double.stream_from_ptr(cuda_stream)  # must be a live stream
    return BatchArray(buffer, list(zip(offsets, sizes, strict=True)))


class Codec:
    """``nvidia.nvcomp.Codec``, raw Deflate only."""

    def __init__(self, **kwargs: object) -> None:
        algorithm = kwargs.pop("algorithm", "")
        kind = kwargs.pop("bitstream_kind", BitstreamKind.NVCOMP_NATIVE)
        self._device_id = kwargs.pop("device_id", 0)
        self._stream = cupy_double.stream_from_ptr(int(kwargs.pop("cuda_stream", 0)))
        if kwargs:
            raise NotImplementedError(f"the double supports no codec options {sorted(kwargs)}")
        if algorithm != "Deflate" or kind is not BitstreamKind.RAW:
            raise NotImplementedError(
                f"the double decodes raw Deflate only, asked for {algorithm!r} with {kind}"
            )

    def get_required_decompression_alignment(self) -> int:
        """Bytes decode buffers must be aligned to."""
        return ALIGNMENT

    def decode(
        self,
        srcs: BatchArray,
        data_type: str = "",
        out: object = None,
        decompression_config: object = None,
    ) -> BatchArray:
        """Decode a batch into ``out`` (required here), queued on the codec's stream."""
        if not isinstance(srcs, BatchArray) or not isinstance(out, BatchArray):
            raise NotImplementedError("the double decodes a BatchArray into a given BatchArray")
        if len(srcs) != len(out):
            raise ValueError(f"{len(srcs)} compressed buffers for {len(out)} outputs")
        if data_type or decompression_config is not None:
            raise NotImplementedError("the double supports neither data_type nor configs")
        # Without a decompression config, decode configures itself from the compressed buffers,
        # "forcing a stream synchronization" (nvCOMP's docs): sizes are known, and checked, now.
        self._stream.synchronize()
        sizes = []
        for number in range(len(srcs)):
            try:
                data = zlib.decompress(srcs._bytes(number).tobytes(), -15)
            except zlib.error as error:
                raise RuntimeError(f"nvCOMP decode failed on chunk {number}: {error}") from error
            if len(data) > out._entries[number][1]:
                raise ValueError(
                    f"output buffer {number} holds {out._entries[number][1]} bytes, "
                    f"{len(data)} decoded"
                )
            sizes.append(len(data))
        decoded = BatchArray(
            out._buffer, [(o, n) for (o, _), n in zip(out._entries, sizes, strict=True)]
        )
        decoded._stream = self._stream

        def run() -> None:
            for number in range(len(srcs)):
                data = zlib.decompress(srcs._bytes(number).tobytes(), -15)
                out._bytes(number)[: len(data)] = np.frombuffer(data, np.uint8)

        self._stream._enqueue(run)
        return decoded
