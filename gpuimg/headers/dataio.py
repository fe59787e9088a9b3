"""Reading and writing an image's data block as its header describes it (nibabel's header data methods).

A mixin for :class:`~gpuimg.headers.analyze.AnalyzeHeader` and its subclasses: ``raw_data_from_fileobj``,
``data_from_fileobj`` (scaled by the header's factors) and ``data_to_fileobj`` (scale factors chosen by
nibabel's writer rules, see :mod:`gpuimg.arraywriter`, and stored in the header).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, ClassVar

import numpy as np

from gpuimg.arraywriter import plan_array_write, write_array
from gpuimg.errors import HeaderDataError, HeaderTypeError, TruncatedDataError, WriterError
from gpuimg.scaling import apply_scaling, plan_scaling


class HeaderDataIO:
    """Data-block methods over a header with shape, dtype, offset and scale factors."""

    if TYPE_CHECKING:  # provided by the header class this is mixed into
        has_data_slope: ClassVar[bool]
        has_data_intercept: ClassVar[bool]

        def get_data_shape(self) -> tuple[int, ...]: ...

        def get_data_dtype(self) -> np.dtype: ...

        def get_data_offset(self) -> int: ...

        def get_slope_inter(self) -> tuple[float | np.ndarray | None, float | None]: ...

        def set_slope_inter(self, slope: float | None, inter: float | None = None) -> None: ...

    def raw_data_from_fileobj(self, fileobj: BinaryIO) -> np.ndarray:
        """The unscaled data array read from ``fileobj`` at the header's offset (a copy, writable)."""
        shape, dtype = self.get_data_shape(), self.get_data_dtype()
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        fileobj.seek(self.get_data_offset())
        block = bytearray(fileobj.read(nbytes))
        found = len(block)
        if found != nbytes:
            name = getattr(fileobj, "name", "<fileobj>")
            raise TruncatedDataError(
                f"{name}: data block is {found} bytes, expected {nbytes} for shape {shape} of {dtype}"
            )
        return np.frombuffer(block, dtype).reshape(shape, order="F")

    def data_from_fileobj(self, fileobj: BinaryIO) -> np.ndarray:
        """The data read from ``fileobj``, scaled by the header's slope and intercept (nibabel's
        ``apply_read_scaling``, in the type of the factors as :meth:`get_slope_inter` gives them)."""
        raw = self.raw_data_from_fileobj(fileobj)
        slope, inter = self.get_slope_inter()
        plan = plan_scaling(raw.dtype, slope, inter)
        return apply_scaling(raw, plan)

    def data_to_fileobj(self, data, fileobj: BinaryIO, rescale: bool = True) -> None:
        """Write ``data`` to ``fileobj`` at the header's offset, as the header's data type.

        With ``rescale``, scale factors are chosen as a save chooses them and stored in this header;
        without, the values are cast and the header's factors set to 1 and 0.

        Raises
        ------
        HeaderDataError
            When ``data`` does not have the header's shape.
        HeaderTypeError
            When the data cannot be written as the header's type (e.g. negative values as uint8 in a
            header without an intercept).
        """
        data = np.asanyarray(data)
        shape = self.get_data_shape()
        if data.shape != shape:
            raise HeaderDataError(f"data has shape {data.shape}, expected the header's {shape}")
        out_dtype = self.get_data_dtype()
        try:
            plan = plan_array_write(
                data,
                out_dtype,
                has_slope=self.has_data_slope,
                has_inter=self.has_data_intercept,
                scale=rescale,
                name=getattr(fileobj, "name", "<fileobj>"),
            )
        except WriterError as error:
            raise HeaderTypeError(str(error)) from error
        fileobj.seek(self.get_data_offset())
        write_array(fileobj, data, plan.cast)
        self.set_slope_inter(float(plan.slope), float(plan.inter))
