"""File holders: where each file of an image lives (a filename, an open file object, or both)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


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

    def same_file_as(self, other: FileHolder) -> bool:
        """True when both holders refer to the same file."""
        return self.filename == other.filename and self.fileobj is other.fileobj
