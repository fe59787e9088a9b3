"""NIfTI header extensions: blocks of ``esize, ecode, content`` after the header.

Each extension on disk is an int32 ``esize`` (its total length, a multiple of
16), an int32 ``ecode`` (what it holds, see
:data:`~gpuimg.headers.codes.EXTENSION_CODES`) and ``esize - 8`` bytes of
content, zero-padded. Extensions read from a file keep their bytes, padding
included, so writing them back gives the same bytes.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from typing import IO, Any, BinaryIO

import numpy as np

from gpuimg.errors import HeaderError
from gpuimg.headers.codes import EXTENSION_CODES

_FIELDS_SIZE = 8  # esize and ecode


class NiftiExtension:
    """One NIfTI header extension.

    Parameters
    ----------
    code : int or str
        Extension code or its label (``'comment'``, ``'afni'``...). Unknown
        integer codes are kept as they are.
    content : bytes
        The extension's content.

    Examples
    --------
    >>> ext = NiftiExtension('comment', b'hello')
    >>> ext.code, ext.get_sizeondisk()
    (6, 16)
    """

    def __init__(self, code: int | str, content: bytes = b"") -> None:
        self.code = EXTENSION_CODES.code(code) if isinstance(code, str) else int(code)
        self.content = bytes(content)
        self._raw: bytes | None = None

    @classmethod
    def from_raw(cls, code: int, raw: bytes) -> NiftiExtension:
        """Make an extension from its bytes on disk (content plus padding).

        ``content`` is `raw` without trailing NUL bytes (as nibabel reads it);
        `raw` itself is what :meth:`write_to` writes back while ``content`` is
        unchanged.
        """
        ext = cls(code, raw.rstrip(b"\x00"))
        ext._raw = bytes(raw)
        return ext

    def get_code(self) -> int:
        """Return the extension code."""
        return self.code

    def get_content(self) -> bytes:
        """Return the content (bytes), as nibabel's ``Nifti1Extension.get_content``."""
        return self.content

    @property
    def label(self) -> str:
        """The label of the extension code (``'<unknown code N>'`` if not a known code)."""
        return EXTENSION_CODES.label(self.code)

    @property
    def text(self) -> str:
        """The content decoded as UTF-8."""
        return self.content.decode("utf-8")

    def json(self) -> Any:
        """Return the content parsed as JSON."""
        return json.loads(self.content)

    def _payload(self) -> bytes:
        if self._raw is not None and self._raw.rstrip(b"\x00") == self.content:
            return self._raw
        return self.content

    def get_sizeondisk(self) -> int:
        """Return ``esize``: 8 bytes of fields plus the content, rounded up to 16."""
        return -(-(_FIELDS_SIZE + len(self._payload())) // 16) * 16

    def write_to(self, fileobj: BinaryIO, byteswap: bool = False) -> None:
        """Write ``esize, ecode``, the content and zero padding to `fileobj`.

        Parameters
        ----------
        fileobj : file-like
            Open for binary writing.
        byteswap : bool, optional
            Write ``esize`` and ``ecode`` in the non-native byte order.
        """
        payload = self._payload()
        size = self.get_sizeondisk()
        fields = np.array([size, self.code], dtype=np.int32)
        if byteswap:
            fields = fields.byteswap()
        fileobj.write(fields.tobytes())
        fileobj.write(payload)
        fileobj.write(bytes(size - _FIELDS_SIZE - len(payload)))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, NiftiExtension)
            and self.code == other.code
            and self.content == other.content
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NiftiExtension({self.label!r}, {self.content!r})"


class NiftiExtensions(list):
    """The list of a header's extensions, in file order."""

    def __init__(self, extensions: Iterable[NiftiExtension] = ()) -> None:
        super().__init__(extensions)

    def count(self, ecode: int | str) -> int:
        """Return how many extensions have code `ecode` (a code or a label)."""
        code = EXTENSION_CODES.code(ecode) if isinstance(ecode, str) else int(ecode)
        return sum(1 for ext in self if ext.code == code)

    def get_codes(self) -> list[int]:
        """Return the code of each extension."""
        return [ext.code for ext in self]

    def get_sizeondisk(self) -> int:
        """Return the bytes all extensions take on disk."""
        return sum(ext.get_sizeondisk() for ext in self)

    def write_to(self, fileobj: BinaryIO, byteswap: bool) -> None:
        """Write every extension to `fileobj` (see :meth:`NiftiExtension.write_to`)."""
        for ext in self:
            ext.write_to(fileobj, byteswap)

    @classmethod
    def from_fileobj(
        cls, fileobj: IO[bytes], size: int | None, byteswap: bool, *, source: str = "<fileobj>"
    ) -> NiftiExtensions:
        """Read extensions from the current position of `fileobj`.

        Parameters
        ----------
        fileobj : file-like
            Open for binary reading, just after the 4 extension-flag bytes.
        size : int or None
            Bytes available for extensions (up to the data), or None to read to
            the end of the file (a detached ``.hdr``).
        byteswap : bool
            ``esize`` and ``ecode`` are in the non-native byte order.
        source : str, optional
            File name for error messages.

        Raises
        ------
        HeaderError
            If an extension is truncated or its ``esize`` is impossible.
        """
        extensions = cls()
        remaining = size
        while remaining is None or remaining >= 16:
            fields = fileobj.read(_FIELDS_SIZE)
            if remaining is None and not fields:
                break
            if len(fields) < _FIELDS_SIZE:
                raise HeaderError(
                    f"{source}: truncated extension {len(extensions)}: read {len(fields)} "
                    f"of its {_FIELDS_SIZE} esize/ecode bytes"
                )
            esize, ecode = (int(v) for v in _int32_pair(fields, byteswap))
            limit = remaining if remaining is not None else esize
            if esize < _FIELDS_SIZE or esize > limit:
                raise HeaderError(
                    f"{source}: extension {len(extensions)} field 'esize' is {esize}, "
                    f"expected {_FIELDS_SIZE} to {limit} (the room left for extensions)"
                )
            if esize % 16:
                warnings.warn(
                    f"{source}: extension {len(extensions)} field 'esize' is {esize}, "
                    "expected a multiple of 16; reading it as given",
                    UserWarning,
                    stacklevel=2,
                )
            raw = fileobj.read(esize - _FIELDS_SIZE)
            if len(raw) < esize - _FIELDS_SIZE:
                raise HeaderError(
                    f"{source}: truncated extension {len(extensions)}: read {len(raw)} "
                    f"of its {esize - _FIELDS_SIZE} content bytes"
                )
            extensions.append(NiftiExtension.from_raw(ecode, raw))
            if remaining is not None:
                remaining -= esize
        return extensions

    def __repr__(self) -> str:
        return f"NiftiExtensions([{', '.join(repr(ext) for ext in self)}])"


def _int32_pair(block: bytes, byteswap: bool) -> np.ndarray:
    pair = np.frombuffer(block, dtype=np.int32)
    return pair.byteswap() if byteswap else pair
