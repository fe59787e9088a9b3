"""Where a read's result lives: the host or one GPU, decided once per read.

:func:`destination` turns what a caller gives (a ``device``, an ``out`` array, or both) into a
:class:`Destination`, resolving the device once (:func:`gpuimg.device.resolve_device`). The read
path takes the resolved object as it is (:meth:`gpuimg.arrayproxy.ArrayProxy.read_to`, where the
one choice between the host and the device sinks is made), so nothing below it resolves again.

The few other things that differ between host and device memory for the layers above the proxy
are methods here too, so those layers never branch on where memory lives: allocate
(:meth:`Destination.empty`), bring an in-memory array there (:meth:`Destination.asarray`), and mark
and wait for the point where a result is ready (:meth:`Destination.ready_event`,
:meth:`Destination.wait_ready`: nothing to mark or wait for on the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from gpuimg import device as seam

__all__ = ["HOST", "Destination", "destination"]


@dataclass(frozen=True)
class Destination:
    """The host (``device_id`` None) or the GPU ``device_id``, resolved.

    Examples
    --------
    >>> where = destination(device="cpu")
    >>> where.on_host, where.empty((2, 3), np.float32).shape
    (True, (2, 3))
    """

    device_id: int | None = None

    @property
    def on_host(self) -> bool:
        """True for host (numpy) memory."""
        return self.device_id is None

    def empty(self, shape: tuple[int, ...], dtype: DTypeLike) -> Any:
        """A new array of ``shape`` and ``dtype`` here (numpy, or CuPy on the GPU)."""
        if self.device_id is None:
            return np.empty(shape, dtype)
        return seam.empty(shape, dtype, device=self.device_id)

    def asarray(self, data: Any, dtype: DTypeLike | None = None) -> Any:
        """An in-memory array (numpy, CuPy or array-like) here, as ``dtype`` (None: its own).

        On the host this is ``np.asanyarray(data, dtype)``, a device array copied back first; on a
        GPU, :func:`gpuimg.device.to_device` (returns ``data`` itself when it already fits).
        """
        if self.device_id is not None:
            return seam.to_device(data, dtype=dtype, device=self.device_id)
        if seam.is_device_array(data):
            host = seam.to_host(data)
            return host if dtype is None else host.astype(dtype, copy=False)
        return np.asanyarray(data, dtype=dtype)

    def ready_event(self) -> Any:
        """The event a result made now is ready after (the device's current stream); None on the host."""
        return None if self.device_id is None else seam.current_stream_event(self.device_id)

    def wait_ready(self, event: Any) -> None:
        """Have the caller's current stream wait for ``event`` (from :meth:`ready_event`)."""
        if self.device_id is not None:
            seam.wait_on_current_stream(event, self.device_id)


#: The host, with nothing to resolve.
HOST = Destination()


def destination(*, device: object = None, out: Any = None) -> Destination:
    """Where a read goes: ``device``, resolved once; with ``device`` None, where ``out`` lives.

    Parameters
    ----------
    device : None, 'cpu', 'cuda', 'cuda:N', int or cupy.cuda.Device, keyword only
        As :func:`gpuimg.device.resolve_device` takes it.
    out : numpy.ndarray or cupy.ndarray, optional, keyword only
        The caller's array for the result, if any.

    Raises
    ------
    ValueError
        ``device`` is not a device specification, or ``out`` lives elsewhere than ``device`` says.
    DeviceUnavailableError
        A GPU is asked for but CuPy or that device is missing.
    """
    out_on_device = out is not None and seam.is_device_array(out)
    if device is None and out_on_device:
        device = out.device
    where = Destination(seam.resolve_device(device))
    if out is not None and out_on_device == where.on_host:
        found = "a device array" if out_on_device else f"a host {type(out).__name__}"
        raise ValueError(f"out is {found}, but device is {device!r}")
    return where
