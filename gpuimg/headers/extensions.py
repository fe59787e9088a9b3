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

from gpuimg.errors import HeaderDataError, HeaderError
from gpuimg.headers.codes import EXTENSION_CODES

_FIELDS_SIZE = 8  # esize and ecode


class NiftiExtension:
    """One NIfTI header extension, with nibabel's access to its content.

    ``content`` is the content as stored (bytes; or str when given as str, written UTF-8 encoded),
    ``text`` and ``json()`` decode it, and ``get_object()`` (nibabel's ``get_content``) gives its
    runtime form: the content itself here, another object in subclasses that override
    ``_unmangle`` (content to object) and ``_mangle`` (object to content), as nibabel's do. A runtime
    object, once made, is what is written, so it may be changed in place.

    Parameters
    ----------
    code : int or str
        Extension code or its label (``'comment'``, ``'afni'``...). Unknown
        codes are kept as they are, as nibabel keeps them; an unknown label
        cannot be written (:class:`~gpuimg.errors.HeaderDataError`).
    content : bytes or str
        The extension's content.
    object : optional
        The content in runtime form (then ``content`` is made from it).

    Examples
    --------
    >>> ext = NiftiExtension('comment', b'hello')
    >>> ext.code, ext.get_sizeondisk(), ext.text
    (6, 16, 'hello')
    """

    #: The text encoding of :attr:`text` (None: UTF-8); nibabel's attribute.
    encoding: str | None = None
    _object: Any = None

    def __init__(self, code: int | str, content: bytes | str = b"", object: Any = None) -> None:
        self.code: int | str = int(code) if not isinstance(code, str) else code
        if isinstance(code, str) and code in EXTENSION_CODES:
            self.code = EXTENSION_CODES.code(code)
        self._raw: bytes | str = content if isinstance(content, str) else bytes(content)
        self._on_disk: bytes | None = (
            None  # the bytes read, padding included, to write back as read
        )
        if object is not None:
            self._object = object

    @classmethod
    def from_raw(cls, code: int, raw: bytes) -> NiftiExtension:
        """Make an extension from its bytes on disk (content plus padding).

        ``content`` is `raw` without trailing NUL bytes (as nibabel reads it);
        `raw` itself is what :meth:`write_to` writes back while ``content`` is
        unchanged.
        """
        ext = cls(code, raw.rstrip(b"\x00"))
        ext._on_disk = bytes(raw)
        return ext

    def _mangle(self, obj: Any) -> bytes | str:
        """The content of the runtime object ``obj`` (the object itself here; subclasses convert)."""
        return obj

    def _unmangle(self, content: bytes | str) -> Any:
        """The runtime object of ``content`` (the content itself here; subclasses convert)."""
        return content

    @property
    def content(self) -> bytes | str:
        """The content as stored: bytes, or the str it was given as (made from the object, if any)."""
        if self._object is not None:
            self._raw = self._mangle(self._object)
        return self._raw

    @content.setter
    def content(self, value: bytes | str) -> None:
        self._raw = value if isinstance(value, str) else bytes(value)
        self._object = None

    def get_object(self) -> Any:
        """The content in its runtime form, made once and kept (so changes to it are written)."""
        if self._object is None:
            self._object = self._unmangle(self._raw)
        return self._object

    #: nibabel's older name of :meth:`get_object`.
    get_content = get_object

    @property
    def _content(self) -> Any:
        # nibabel's legacy attribute, which subclasses written for nibabel use.
        return self.get_object()

    def get_code(self) -> int | str:
        """Return the extension code."""
        return self.code

    @property
    def label(self) -> str:
        """The label of the extension code (``'<unknown code N>'`` if not a known code)."""
        return self.code if isinstance(self.code, str) else EXTENSION_CODES.label(self.code)

    @property
    def text(self) -> str:
        """The content decoded with :attr:`encoding` (UTF-8 when None)."""
        return self._content_bytes().decode(self.encoding or "utf-8")

    def json(self) -> Any:
        """Return the content parsed as JSON."""
        return json.loads(self._content_bytes())

    def _content_bytes(self) -> bytes:
        content = self.content
        return content.encode("utf-8") if isinstance(content, str) else content

    def _payload(self) -> bytes:
        content = self._content_bytes()
        if self._on_disk is not None and self._on_disk.rstrip(b"\x00") == content:
            return self._on_disk
        return content

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
        if isinstance(self.code, str):
            raise HeaderDataError(
                f"extension code {self.code!r} cannot be written: expected an integer code or one "
                f"of {EXTENSION_CODES.labels()}"
            )
        payload = self._payload()
        size = -(-(_FIELDS_SIZE + len(payload)) // 16) * 16
        fields = np.array([size, self.code], dtype=np.int32)
        if byteswap:
            fields = fields.byteswap()
        fileobj.write(fields.tobytes())
        fileobj.write(payload)
        fileobj.write(bytes(size - _FIELDS_SIZE - len(payload)))

    def __eq__(self, other: object) -> bool:
        # The bytes each would write: a str content equals its UTF-8 encoding.
        return (
            isinstance(other, NiftiExtension)
            and self.code == other.code
            and self._content_bytes() == other._content_bytes()
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

    def get_codes(self) -> list[int | str]:
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
            Bytes available for extensions (up to the data); None or a negative
            number (nibabel's) to read to the end of the file (a detached ``.hdr``).
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
        remaining = None if size is None or size < 0 else size
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
