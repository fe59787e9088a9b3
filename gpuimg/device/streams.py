"""Devices and streams: the CUDA context a block of work runs in, and how streams are ordered.

gpuimg queues its own work on one non-blocking stream per device (:func:`gpuimg_stream`); the caller's
work runs on the device's current stream (:func:`current_stream`). Events order the two without
blocking the host (:func:`current_stream_event`, :func:`wait_on_current_stream`).
"""

from __future__ import annotations

from typing import Any

from gpuimg.device.backend import BackendCache, get_cupy

_streams = BackendCache(per_backend=True)


def using_device(device_id: int) -> Any:
    """A context manager that makes ``device_id`` the current CUDA device inside its block."""
    return get_cupy().cuda.Device(device_id)


def current_stream() -> Any:
    """The current device's current stream in this thread: where the caller's work is queued."""
    return get_cupy().cuda.get_current_stream()


def new_stream() -> Any:
    """A new non-blocking stream on the current device (not ordered with the null stream)."""
    return get_cupy().cuda.Stream(non_blocking=True)


def gpuimg_stream(device_id: int) -> Any:
    """gpuimg's own non-blocking stream on ``device_id`` (created once per device)."""

    def build() -> Any:
        with using_device(device_id):
            return new_stream()

    return _streams.get(device_id, build)


def current_stream_event(device_id: int) -> Any:
    """An event recorded now on ``device_id``'s current stream: where the caller's work has got to."""
    with using_device(device_id):
        return current_stream().record()


def wait_on_current_stream(event: Any, device_id: int) -> None:
    """Order later work on ``device_id``'s current stream after ``event`` (no host synchronisation)."""
    with using_device(device_id):
        current_stream().wait_event(event)


def check_stream_device(stream: Any, device_id: int, what: str) -> None:
    """Refuse a ``stream=`` created on another device than the one being read to.

    CuPy keeps a current stream per device and raises a bare RuntimeError on entering a stream of
    another device; this says which argument is wrong before any work starts.
    """
    if stream.device_id not in (-1, device_id):  # -1: the null stream, which every device has
        raise ValueError(
            f"{what}: stream= was created on CUDA device {stream.device_id}, but the data go to "
            f"device {device_id}; pass a stream created on device {device_id} (or no stream)"
        )
