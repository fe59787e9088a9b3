"""A fixed-size binary header held in a numpy structured scalar.

:class:`StructuredHeader` is the base of every header class: it turns the
binary block into a structured array in the block's byte order and back,
detects that byte order from ``sizeof_hdr``, gives mapping access to the
fields, runs its class's battery of checks (:mod:`gpuimg.headers.checks`) and
reads itself from a file object, checking what it read.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any, BinaryIO, ClassVar, Literal, TypeVar

import numpy as np

from gpuimg import imageglobals
from gpuimg.errors import HeaderError, WrapStructError
from gpuimg.headers.checks import Check, run_battery

#: A byte order code, as numpy's ``dtype.newbyteorder`` takes it.
ByteOrder = Literal["<", ">"]

NATIVE: ByteOrder = "<" if sys.byteorder == "little" else ">"
SWAPPED: ByteOrder = ">" if NATIVE == "<" else "<"
UNNAMED = "<fileobj>"

_ENDIAN_CODES: dict[str, ByteOrder] = {
    "<": "<",
    "little": "<",
    "l": "<",
    "le": "<",
    ">": ">",
    "big": ">",
    "b": ">",
    "be": ">",
    "=": NATIVE,
    "native": NATIVE,
    "n": NATIVE,
    "swapped": SWAPPED,
    "s": SWAPPED,
}

H = TypeVar("H", bound="StructuredHeader")


def endian_code(endianness: str) -> ByteOrder:
    """Return ``'<'`` or ``'>'`` for an endianness name (``'little'``, ``'='``, ``'swapped'``...)."""
    try:
        return _ENDIAN_CODES[endianness.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"endianness {endianness!r} not recognized; expected one of {sorted(_ENDIAN_CODES)}"
        ) from None


def header_error(source: str, field: str, found: object, expected: str) -> HeaderError:
    """Build the HeaderError for a header field read from `source` with a bad value."""
    return HeaderError(f"{source}: header field {field!r} is {found}, expected {expected}")


class StructuredHeader:
    """A header stored as a numpy structured scalar in its on-disk byte order.

    Parameters
    ----------
    binaryblock : bytes-like, optional
        Exactly ``template_dtype.itemsize`` bytes. None gives the default header.
    endianness : str, optional
        Byte order of `binaryblock` (or of the default header). None guesses it
        from the block (see :meth:`guessed_endian`), or uses the native order.
    check : bool, optional
        Run :meth:`check_fix` on the block: fix what the checks can, log the
        problems, raise for those at the error level.

    Raises
    ------
    WrapStructError
        If `binaryblock` is not ``template_dtype.itemsize`` bytes long.
    HeaderDataError
        With `check`, for a problem at or above :data:`gpuimg.imageglobals.error_level`.
    """

    template_dtype: np.dtype = np.dtype([("sizeof_hdr", "i4")])
    sizeof_hdr: int = 4
    #: The checks :meth:`check_fix` runs, in order (see :mod:`gpuimg.headers.checks`).
    check_battery: ClassVar[Sequence[Check]] = ()

    def __init__(
        self,
        binaryblock: bytes | bytearray | memoryview | None = None,
        endianness: str | None = None,
        check: bool = True,
    ) -> None:
        if binaryblock is None:
            self._structarr = self.default_structarr(endianness)
            return
        size = self.template_dtype.itemsize
        if len(binaryblock) != size:
            what = "truncated header" if len(binaryblock) < size else "header block too long"
            raise WrapStructError(f"{UNNAMED}: {what}: {len(binaryblock)} bytes, expected {size}")
        native = np.ndarray((), dtype=self.template_dtype, buffer=binaryblock)
        order = self.guessed_endian(native) if endianness is None else endian_code(endianness)
        self._structarr = np.ndarray(
            (), dtype=self.template_dtype.newbyteorder(order), buffer=binaryblock
        ).copy()
        if check:
            self.check_fix()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def default_structarr(cls, endianness: str | None = None) -> np.ndarray:
        """Return the structured scalar of a default header in the given byte order."""
        order = NATIVE if endianness is None else endian_code(endianness)
        arr = np.zeros((), dtype=cls.template_dtype.newbyteorder(order))
        arr["sizeof_hdr"] = cls.sizeof_hdr
        return arr

    @classmethod
    def guessed_endian(cls, native: np.ndarray) -> ByteOrder:
        """Guess the byte order of a header read in native order.

        ``sizeof_hdr`` decides when it matches in one byte order. When it
        matches in neither (a broken header, rejected later by :meth:`validate`),
        nibabel's rule on ``dim[0]`` decides: 0-7 read natively means native.
        """
        if int(native["sizeof_hdr"]) == cls.sizeof_hdr:
            return NATIVE
        if int(native["sizeof_hdr"].byteswap()) == cls.sizeof_hdr:
            return SWAPPED
        return NATIVE if 0 <= int(native["dim"][0]) <= 7 else SWAPPED

    @classmethod
    def from_fileobj(
        cls: type[H],
        fileobj: IO[bytes],
        endianness: str | None = None,
        check: bool = True,
        *,
        filename: str | None = None,
    ) -> H:
        """Read a header from the current position of `fileobj`.

        Parameters
        ----------
        fileobj : file-like
            Open for binary reading.
        endianness : {None, '<', '>', other endian code} str, optional
            Byte order of the block; None (default) guesses it from the block, as nibabel does.
        check : bool, optional
            Check the header as a file's header (see :meth:`check`).
        filename : str, optional
            Name used in error messages (default ``'<fileobj>'``).

        Returns
        -------
        header : instance of this class
        """
        source = UNNAMED if filename is None else str(filename)
        size = cls.template_dtype.itemsize
        block = fileobj.read(size)
        if len(block) < size:
            raise WrapStructError(
                f"{source}: truncated header: read {len(block)} bytes, expected {size}"
            )
        hdr = cls(block, endianness, check=False)
        if check:
            hdr.check(source)
        hdr._read_after_header(fileobj, source)
        return hdr

    def _read_after_header(self, fileobj: IO[bytes], source: str) -> None:
        """Read what follows the fixed block (NIfTI extensions); nothing here."""

    def write_to(self, fileobj: BinaryIO) -> None:
        """Write the binary block at the current position of `fileobj`."""
        fileobj.write(self.binaryblock)

    # -- checking -----------------------------------------------------------------------------

    def check(self, source: str = UNNAMED) -> None:
        """Check a header read from file `source`: gpuimg's strict checks, then nibabel's, which fix.

        :meth:`validate` raises :class:`~gpuimg.errors.HeaderError` for what no reader can use (a
        wrong ``sizeof_hdr``, which nibabel would fix: see docs/architecture.md); then the class's
        checks run as in :meth:`check_fix`, their errors naming `source`.
        """
        self.validate(source)
        self.check_fix(source=source)

    def check_fix(
        self,
        logger: logging.Logger | None = None,
        error_level: int | None = None,
        *,
        source: str | None = None,
    ) -> None:
        """Run the checks of the class on the header, fixing it in place where they can (nibabel's API).

        Each problem is logged to `logger` at its level; the first at or above `error_level` raises its
        error (all fixes are applied before).

        Parameters
        ----------
        logger : logging.Logger, optional
            Default :data:`gpuimg.imageglobals.logger`.
        error_level : int, optional
            Default :data:`gpuimg.imageglobals.error_level` (40).
        source : str, optional
            The file the header came from, named in the error.

        Raises
        ------
        HeaderDataError
            For a problem at or above `error_level`.
        """
        logger = imageglobals.logger if logger is None else logger
        error_level = imageglobals.error_level if error_level is None else error_level
        for report in run_battery(self, fix=True):
            report.log_raise(logger, error_level, source=source)

    @classmethod
    def diagnose_binaryblock(cls, binaryblock: bytes, endianness: str | None = None) -> str:
        """Return the problems the checks find in `binaryblock`, one a line ('' when none); fixes nothing.

        Examples
        --------
        >>> from gpuimg.headers import AnalyzeHeader
        >>> hdr = AnalyzeHeader()
        >>> hdr['pixdim'][1] = -2
        >>> AnalyzeHeader.diagnose_binaryblock(hdr.binaryblock)
        'pixdim[1,2,3] should be positive'
        """
        reports = run_battery(cls(binaryblock, endianness, check=False), fix=False)
        return "\n".join(report.message for report in reports if report.message)

    def validate(self, filename: str = UNNAMED, file_size: int | None = None) -> None:
        """Raise :class:`~gpuimg.errors.HeaderError` if the header cannot be right.

        Parameters
        ----------
        filename : str
            Name of the file the header came from, used in the message.
        file_size : int, optional
            Size in bytes of the file holding the data, when known.
        """
        found = int(self._structarr["sizeof_hdr"])
        if found != self.sizeof_hdr:
            swapped = int(self._structarr["sizeof_hdr"].byteswap())
            raise header_error(
                filename,
                "sizeof_hdr",
                f"{found} (byte-swapped {swapped})",
                f"{self.sizeof_hdr} in either byte order",
            )

    @classmethod
    def may_contain_header(cls, binaryblock: bytes) -> bool:
        """Return True if `binaryblock` could start with a header of this class."""
        if len(binaryblock) < cls.sizeof_hdr:
            return False
        size = np.frombuffer(binaryblock[:4], dtype=np.int32)[0]
        return cls.sizeof_hdr in (int(size), int(size.byteswap()))

    # -- state --------------------------------------------------------------------------------

    @property
    def binaryblock(self) -> bytes:
        """The header bytes, in the header's byte order."""
        return self._structarr.tobytes()

    @property
    def structarr(self) -> np.ndarray:
        """The structured scalar holding the fields (changes write through)."""
        return self._structarr

    @property
    def endianness(self) -> ByteOrder:
        """Byte order of the header: ``'<'`` or ``'>'``."""
        return NATIVE if self._structarr.dtype.isnative else SWAPPED

    def copy(self: H) -> H:
        """Return an independent copy."""
        return type(self)(self.binaryblock, self.endianness, check=False)

    def as_byteswapped(self: H, endianness: str | None = None) -> H:
        """Return a copy in byte order `endianness` (default: the other one)."""
        order = (
            (SWAPPED if self.endianness == NATIVE else NATIVE)
            if endianness is None
            else endian_code(endianness)
        )
        if order == self.endianness:
            return self.copy()
        new = self.copy()
        new._structarr = self._structarr.astype(self._structarr.dtype.newbyteorder(order))
        return new

    def __eq__(self, other: object) -> bool:
        try:
            other_arr = other.structarr  # type: ignore[attr-defined]
        except AttributeError:
            return False
        if other_arr.dtype.newbyteorder("=") != self._structarr.dtype.newbyteorder("="):
            return False
        if other_arr.dtype != self._structarr.dtype:
            other_arr = other_arr.astype(self._structarr.dtype)
        return self.binaryblock == other_arr.tobytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} endianness={self.endianness!r}>"

    # -- mapping access -----------------------------------------------------------------------

    def __getitem__(self, field: str) -> np.ndarray:
        return self._structarr[field]

    def __setitem__(self, field: str, value: Any) -> None:
        self._structarr[field] = value

    @property
    def field_names(self) -> tuple[str, ...]:
        """Field names, in header order (the template is a structured dtype)."""
        return self.template_dtype.names or ()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __contains__(self, field: object) -> bool:
        return field in self.field_names

    def keys(self) -> list[str]:
        """Field names, in header order."""
        return list(self.field_names)

    def values(self) -> list[np.ndarray]:
        """Field values, in header order."""
        return [self._structarr[k] for k in self.field_names]

    def items(self) -> list[tuple[str, np.ndarray]]:
        """``(name, value)`` pairs, in header order."""
        return list(zip(self.keys(), self.values(), strict=True))

    def get(self, field: str, default: Any = None) -> Any:
        """Return the field value, or `default` when the header has no such field."""
        return self._structarr[field] if field in self else default
