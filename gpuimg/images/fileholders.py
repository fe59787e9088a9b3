"""File holders: where each file of an image lives (a filename, an open file object, or both)."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Literal

from gpuimg.errors import FileHolderError
from gpuimg.io.openers import open_image_file


@dataclass
class FileHolder:
    """One file of an image's ``file_map``.

    Parameters
    ----------
    filename : str or None
        Path of the file.
    fileobj : file-like or None
        An open file object to use instead of opening ``filename``.
    pos : int
        Position in ``fileobj`` where the file's content starts.
    """

    filename: str | None = None
    fileobj: Any = None
    pos: int = 0

    def __post_init__(self) -> None:
        if self.filename is not None:
            self.filename = os.fspath(self.filename)

    @property
    def file_like(self):
        """The filename when there is one, else the file object."""
        return self.filename if self.filename is not None else self.fileobj

    def get_prepare_fileobj(self, mode: Literal["rb", "wb"] = "rb") -> Any:
        """An open file positioned at ``pos``, for use in a ``with`` block.

        The holder's own file object is used as it is and left open; a filename is opened in ``mode``
        (compressed by its ``.gz``, ``.bz2`` or ``.zst`` suffix) and closed at the end of the block. A file opened by name for
        writing is new: it starts at 0 whatever ``pos`` says.

        Raises
        ------
        FileHolderError
            When the holder has neither a file object nor a filename.
        """
        if self.fileobj is not None:
            self.fileobj.seek(self.pos)
            return _Borrowed(self.fileobj)
        if self.filename is None:
            raise FileHolderError("the file holder has no filename or file object to open")
        if mode == "wb":
            return open_image_file(self.filename, "wb")
        fileobj = open_image_file(self.filename)
        if self.pos:
            fileobj.seek(self.pos)
        return fileobj

    def same_file_as(self, other: FileHolder) -> bool:
        """True when both holders refer to the same file."""
        return self.filename == other.filename and self.fileobj is other.fileobj


class _Borrowed:
    """A caller's open file used in a ``with`` block that must not close it."""

    def __init__(self, fileobj: Any) -> None:
        self._fileobj = fileobj

    def __enter__(self) -> Any:
        return self._fileobj

    def __exit__(self, *exc_info: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fileobj, name)


def copy_file_map(file_map: dict[str, FileHolder]) -> dict[str, FileHolder]:
    """A new ``file_map`` of shallow copies of the holders (the file objects themselves are shared)."""
    return {kind: copy.copy(holder) for kind, holder in file_map.items()}
