"""BGZF blocks decoded on the GPU: compressed bytes over PCIe, nvCOMP's batched Deflate, fused scaling.

A device read of a BGZF file (:meth:`gpuimg.arrayproxy.ArrayProxy.to_device`) that nvCOMP can serve
uploads only the compressed blocks that hold the bytes it needs, through the pinned pool, decodes
them all in one nvCOMP batch into a raw buffer on the device, and runs the fused scale kernel of
:mod:`gpuimg.gpuread` there. Each block is checked to decode to its ``ISIZE``; its CRC32 is not
checked on the device (the host path checks both).

:func:`read_bgzf_to_device` returns None, and the caller reads through the host as for any gzip
file, when nvCOMP is not installed or the read does not fit the batch: a slice made of several
separate byte runs, complex or structured data, or a layout whose blocks or data do not start on
the alignments nvCOMP and the kernel need (files gpuimg and bgzip write always fit).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from gpuimg import device as seam
from gpuimg.gpuread import (
    DevicePlan,
    add_stats,
    allocate_for,
    check_out,
    drop_device_references,
    finish_result,
    own_device_frames,
    upload_pinned,
)
from gpuimg.io.bgzf import BgzfReader
from gpuimg.io.slicing import ReadPlan

__all__ = ["read_bgzf_to_device"]

own_device_frames(__file__)


def read_bgzf_to_device(
    reader: BgzfReader, read: ReadPlan, plan: DevicePlan, *, name: str, out: Any = None
) -> Any:
    """Read the raw block ``read`` plans from the BGZF file of ``reader`` to the GPU, as ``plan`` says.

    Parameters
    ----------
    reader : BgzfReader
        The open BGZF file.
    read : ReadPlan
        The bytes to read (see :func:`gpuimg.io.slicing.plan_read`).
    plan : DevicePlan
        The GPU, the scaling and the kernel (see :func:`gpuimg.gpuread.plan_device_read`).
    name : str
        The file, for messages.
    out : cupy.ndarray, optional
        Where to write the result (see :func:`gpuimg.gpuread.stream_to_device`).

    Returns
    -------
    cupy.ndarray or None
        As :func:`gpuimg.gpuread.stream_to_device` returns it; None when nvCOMP cannot serve the
        read (see the module docstring), before any work was done.
    """
    spec, device_id = plan.spec, plan.device_id
    if spec is None or not seam.nvcomp_available() or len(read.runs) != 1:
        return None
    if out is not None:
        check_out(out, read, spec.out_dtype, name, contiguous=False)
    (start, nbytes), itemsize = read.runs[0], plan.scale.raw_dtype.itemsize
    blocks = reader.blocks_holding(start, nbytes)
    data_start = blocks[0][2]
    with seam.using_device(device_id):
        consumer = seam.current_stream()
        work = seam.gpuimg_stream(device_id)
        align = seam.deflate_alignment(device_id, work)
        outputs = [(b[2] - data_start, b[3] - b[2]) for b in blocks]
        if (start - data_start) % itemsize or any(offset % align for offset, _ in outputs):
            return None
        packed, inputs = _packing(blocks, align)
        try:
            with seam.device_memory_guard(name or "data block", read.nbytes):
                flat = _decode_and_scale(
                    reader, (blocks, inputs, outputs), packed, (start, nbytes), spec,
                    consumer=consumer, work=work, device_id=device_id, name=name,
                )  # fmt: skip
                result = finish_result(flat, read, consumer, out=out)
        except BaseException as exc:
            work.synchronize()
            drop_device_references(exc)
            raise
    add_stats(reads=1)
    return result


def _decode_and_scale(
    reader: BgzfReader,
    layout: tuple[list, list, list],
    packed: int,
    run: tuple[int, int],
    spec: Any,
    *,
    consumer: Any,
    work: Any,
    device_id: int,
    name: str,
) -> Any:
    """Upload and decode the blocks, then scale the run's bytes: the flat result, on ``consumer``.

    Arrays the consumer uses last are allocated for it (:func:`gpuimg.gpuread.allocate_for`); the
    compressed staging buffer lives on gpuimg's stream only.
    """
    blocks, inputs, outputs = layout
    (start, nbytes), data_start = run, blocks[0][2]
    with work:
        compressed = seam.empty(packed, np.uint8)
    # The decoded bytes are the result itself when no kernel is needed (native, unscaled).
    decoded = allocate_for(consumer, work, blocks[-1][3] - data_start, np.uint8, "C")
    _upload(reader, blocks, inputs, compressed, work)
    seam.decode_deflate_batch(
        compressed, inputs, decoded, outputs, device_id=device_id, stream=work, name=name
    )
    raw = decoded[start - data_start : start - data_start + nbytes].view(spec.input_dtype)
    flat = raw
    if not spec.is_copy:
        flat = allocate_for(consumer, work, raw.size, spec.out_dtype, "C")
        with work:
            seam.run_kernel(spec, raw, flat)
    consumer.wait_event(work.record())
    return flat


def _packing(
    blocks: list[tuple[int, int, int, int]], align: int
) -> tuple[int, list[tuple[int, int]]]:
    """Bytes of the packed compressed buffer, and ``(offset, size)`` of each block's payload in it."""
    inputs, position = [], 0
    for payload_start, payload_stop, _, _ in blocks:
        inputs.append((position, payload_stop - payload_start))
        position += -(-(payload_stop - payload_start) // align) * align
    return max(position, align), inputs


def _upload(
    reader: BgzfReader,
    blocks: list[tuple[int, int, int, int]],
    inputs: list[tuple[int, int]],
    compressed: Any,
    work: Any,
) -> None:
    """Copy the blocks' payloads into ``compressed`` through pinned buffers, a buffer at a time."""
    for first, last in _batches(inputs, seam.default_pinned_pool().buffer_size):
        base = inputs[first][0]
        span = inputs[last - 1][0] + inputs[last - 1][1] - base
        fill = functools.partial(_fill, reader, blocks[first:last], inputs[first:last], base, span)
        upload_pinned(fill, compressed[base : base + span], work)
        add_stats(bytes_to_device=span)


def _batches(inputs: list[tuple[int, int]], capacity: int) -> Iterator[tuple[int, int]]:
    """``(first, last)`` ranges of consecutive payloads that fit one pinned buffer together."""
    first = 0
    while first < len(inputs):
        base, last = inputs[first][0], first
        while last < len(inputs) and sum(inputs[last]) - base <= capacity:
            last += 1
        if last == first:
            raise ValueError(
                f"pinned buffers of {capacity} bytes cannot hold a BGZF block of "
                f"{inputs[first][1]} bytes; set_pinned_pool_limits(buffer_size=...) higher"
            )
        yield first, last
        first = last


def _fill(
    reader: BgzfReader,
    blocks: list[tuple[int, int, int, int]],
    inputs: list[tuple[int, int]],
    base: int,
    span: int,
    buffer: np.ndarray,
) -> np.ndarray:
    """Read the payloads into ``buffer`` at their offsets (less ``base``); the bytes to copy."""
    for block, (offset, size) in zip(blocks, inputs, strict=True):
        reader.read_compressed(block[0], buffer[offset - base : offset - base + size])
    return buffer[:span]
