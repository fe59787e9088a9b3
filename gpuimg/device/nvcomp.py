"""nvCOMP: batches of raw-Deflate (BGZF) blocks decoded on the device.

nvCOMP works on real device memory only: while :func:`gpuimg.device.use_backend` has put another
module in CuPy's place, nvCOMP counts as not installed unless :func:`use_nvcomp_backend` gives one
(the strict test double is ``tests/nvcomp_double.py``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from gpuimg.device.backend import INSTALL_HINT, BackendCache, substituted
from gpuimg.errors import CompressedStreamError, DeviceUnavailableError

_NVCOMP_MODULE = "nvidia.nvcomp"
_nvcomp_override: list[ModuleType | None] = []  # innermost use_nvcomp_backend last
_codecs = BackendCache(per_backend=False)


def get_nvcomp() -> ModuleType | None:
    """nvCOMP's Python module (``nvidia.nvcomp``, or the backend of :func:`use_nvcomp_backend`).

    Returns
    -------
    module or None
        None when nvCOMP is not installed (``pip install 'gpuimg[cuda12]'`` brings it), or when
        another CuPy backend is in use (:func:`use_backend`: nvCOMP works on real device memory
        only); GPU reads of BGZF files then decode on the host.
    """
    if _nvcomp_override:
        return _nvcomp_override[-1]
    if substituted():
        return None
    try:
        return importlib.import_module(_NVCOMP_MODULE)
    except ImportError:
        return None


def nvcomp_available() -> bool:
    """True when GPU reads of BGZF files can decode with nvCOMP (see :func:`get_nvcomp`)."""
    return get_nvcomp() is not None


@contextmanager
def use_nvcomp_backend(module: ModuleType | None) -> Iterator[ModuleType | None]:
    """Use ``module`` in place of nvCOMP inside the ``with`` block; None acts as not installed.

    A test hook, like :func:`use_backend` (the strict test double is ``tests/nvcomp_double.py``).
    """
    _nvcomp_override.append(module)
    _codecs.clear()
    try:
        yield module
    finally:
        _nvcomp_override.pop()
        _codecs.clear()


def _deflate_codec(nvcomp: ModuleType, device_id: int, stream: Any) -> Any:
    """nvCOMP's raw-Deflate codec on ``stream``, one per thread (a Codec is not thread-safe)."""
    key = (id(nvcomp), device_id, stream.ptr, threading.get_ident())
    return _codecs.get(
        key,
        lambda: nvcomp.Codec(
            algorithm="Deflate",
            bitstream_kind=nvcomp.BitstreamKind.RAW,
            device_id=device_id,
            cuda_stream=stream.ptr,
        ),
    )


def deflate_alignment(device_id: int, stream: Any) -> int:
    """Bytes every compressed and decoded Deflate buffer must be aligned to for nvCOMP's decode."""
    nvcomp = get_nvcomp()
    if nvcomp is None:
        raise DeviceUnavailableError(f"nvCOMP is not installed; {INSTALL_HINT}")
    return int(_deflate_codec(nvcomp, device_id, stream).get_required_decompression_alignment())


def decode_deflate_batch(
    compressed: Any,
    blocks: list[tuple[int, int]],
    out: Any,
    outputs: list[tuple[int, int]],
    *,
    device_id: int,
    stream: Any,
    name: str,
) -> None:
    """Decode raw-Deflate blocks of ``compressed`` into ``out``, all at once, on ``stream``.

    Parameters
    ----------
    compressed, out : cupy.ndarray
        uint8 device buffers holding the blocks, and receiving the decoded bytes.
    blocks, outputs : list of (int, int)
        ``(offset, size)`` of each block in ``compressed`` and of its decoded bytes in ``out`` (the
        sizes the blocks must decode to), aligned to :func:`deflate_alignment`.
    device_id : int
        The device the buffers live on.
    stream : cupy.cuda.Stream
        The stream the decode is queued on (it waits for the uploads queued there before).
    name : str
        The file, for messages.

    Raises
    ------
    CompressedStreamError
        A block is corrupt, or decoded to another size than expected.
    """
    nvcomp = get_nvcomp()
    if nvcomp is None:
        raise DeviceUnavailableError(f"nvCOMP is not installed; {INSTALL_HINT}")
    codec = _deflate_codec(nvcomp, device_id, stream)
    sources = nvcomp.as_arrays(
        compressed, [o for o, _ in blocks], [n for _, n in blocks], cuda_stream=stream.ptr
    )
    targets = nvcomp.as_arrays(
        out, [o for o, _ in outputs], [n for _, n in outputs], cuda_stream=stream.ptr
    )
    failure = None
    try:
        decoded = codec.decode(sources, out=targets)
    except (ValueError, RuntimeError) as error:  # an output too small, a corrupt block
        failure = str(error)
    if failure is not None:
        # Raised outside the except block: nvCOMP's error (and its traceback, which may hold the
        # device buffers) is not kept as this error's context.
        raise CompressedStreamError(f"{name}: nvCOMP could not decode a block: {failure}")
    sizes = list(decoded.buffer_sizes)
    expected = [n for _, n in outputs]
    if sizes != expected:
        wrong = next(k for k, (a, b) in enumerate(zip(sizes, expected, strict=True)) if a != b)
        raise CompressedStreamError(
            f"{name}: block {wrong} of this read decoded on the GPU to {sizes[wrong]} bytes, "
            f"expected {expected[wrong]} (its ISIZE)"
        )
