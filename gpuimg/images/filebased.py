"""The base of every image: a header, extra metadata and a map of the files the image lives in."""

from __future__ import annotations

import io
import os
import urllib.request
from typing import Any, ClassVar, NamedTuple

from gpuimg.errors import ImageFileError
from gpuimg.headers.generic import FileBasedHeader
from gpuimg.images.fileholders import FileHolder
from gpuimg.io.containers import COMPRESSED_SUFFIXES
from gpuimg.io.openers import open_image_file

FileMap = dict[str, FileHolder]


class AdoptedHeader(NamedTuple):
    """A header an image takes as its own, neither copied nor checked again.

    A load passes the header it has just read and validated (and that nothing else holds) this way,
    where any other header given to an image is converted (copied and checked) by ``from_header``.
    """

    header: Any


def types_filenames(
    filespec: str | os.PathLike,
    files_types: tuple[tuple[str, str], ...],
    compressed: tuple[str, ...],
) -> dict[str, str]:
    """Map each file type of an image class to its filename, from one filename of the set.

    A trailing compression suffix (``.gz``, ``.bz2``, ``.zst``) is carried over to every file; the extension's case is kept.

    Examples
    --------
    >>> types_filenames('t1.img.gz', (('image', '.img'), ('header', '.hdr')), ('.gz',))
    {'image': 't1.img.gz', 'header': 't1.hdr.gz'}
    """
    name = os.fspath(filespec)
    trailing = next((s for s in compressed if name.lower().endswith(s)), "")
    stem = name[: len(name) - len(trailing)] if trailing else name
    for _, ext in files_types:
        if stem.lower().endswith(ext):
            found = stem[len(stem) - len(ext) :]
            base = stem[: len(stem) - len(ext)]
            upper = found.isupper()
            return {
                kind: base + (e.upper() if upper else e) + (trailing.upper() if upper else trailing)
                for kind, e in files_types
            }
    expected = " or ".join(ext + s for _, ext in files_types for s in ("",) + compressed)
    raise ImageFileError(f"{name}: file extension not recognised, expected {expected}")


class FileBasedImage:
    """An image backed by files: ``header``, ``extra`` and ``file_map``.

    Parameters
    ----------
    header : header instance, mapping or None
        Converted to this class's ``header_class``.
    extra : mapping or None
        Metadata that this format's header cannot store.
    file_map : mapping or None
        File holders keyed by file type; an empty map for this class when None.
    """

    header_class: ClassVar[type[Any]] = FileBasedHeader  # a header class of gpuimg.headers
    files_types: ClassVar[tuple[tuple[str, str], ...]] = (("image", ".img"),)
    #: Extensions of the files this class reads; none for the format-free base classes (as nibabel).
    valid_exts: ClassVar[tuple[str, ...]] = ()
    _compressed_suffixes: ClassVar[tuple[str, ...]] = COMPRESSED_SUFFIXES
    makeable = True
    rw = True

    def __init__(self, header=None, extra=None, file_map=None) -> None:
        if isinstance(header, AdoptedHeader) and type(header.header) is self.header_class:
            self._header = header.header
        else:
            self._header = self.header_class.from_header(header)
        self.extra = {} if extra is None else dict(extra)
        self.file_map = self.make_file_map() if file_map is None else file_map

    @property
    def header(self):
        """The image's header."""
        return self._header

    def __getitem__(self, key):
        raise TypeError(
            "Cannot slice image objects; consider using `img.slicer[slice]` to generate a sliced image "
            "(see documentation for caveats) or slicing image array data with `img.dataobj[slice]` or "
            "`img.get_fdata()[slice]`"
        )

    def get_filename(self) -> str | None:
        """The filename of the image's first file type (the data ``.img`` file for pairs, as nibabel)."""
        return self.file_map[self.files_types[0][0]].filename

    def set_filename(self, filename: str | os.PathLike) -> None:
        """Point the image's ``file_map`` at ``filename`` (and its partner files)."""
        self.file_map = self.filespec_to_file_map(filename)

    @classmethod
    def filespec_to_file_map(cls, filespec: str | os.PathLike) -> FileMap:
        """Make a ``file_map`` of this class's files from one filename."""
        names = types_filenames(filespec, cls.files_types, cls._compressed_suffixes)
        return {kind: FileHolder(filename=name) for kind, name in names.items()}

    @classmethod
    def make_file_map(cls, mapping: dict[str, Any] | None = None) -> FileMap:
        """An empty ``file_map``, or one filled from ``{type: filename or file object}``."""
        mapping = mapping or {}
        file_map: FileMap = {}
        for kind, _ in cls.files_types:
            value = mapping.get(kind)
            if value is None or isinstance(value, (str, os.PathLike)):
                file_map[kind] = FileHolder(filename=None if value is None else os.fspath(value))
            else:
                file_map[kind] = FileHolder(fileobj=value)
        return file_map

    @classmethod
    def from_filename(cls, filename: str | os.PathLike) -> Any:
        """Load an image of this class from ``filename``."""
        return cls.from_file_map(cls.filespec_to_file_map(filename))

    load = from_filename

    @classmethod
    def from_file_map(cls, file_map: FileMap, **kwargs):
        """Load an image of this class from a ``file_map``."""
        raise NotImplementedError

    def to_filename(self, filename: str | os.PathLike, **kwargs) -> None:
        """Write the image to ``filename`` (and its partner files), then point ``file_map`` at them."""
        self.file_map = self.filespec_to_file_map(filename)
        self.to_file_map(**kwargs)

    save = to_filename

    def to_file_map(self, file_map: FileMap | None = None, dtype: Any = None) -> None:
        """Write the image to the files in ``file_map``."""
        raise NotImplementedError

    @classmethod
    def instance_to_filename(cls, img: FileBasedImage, filename: str | os.PathLike) -> None:
        """Save any image ``img`` as this class to ``filename``."""
        cls.from_image(img).to_filename(filename)

    @classmethod
    def from_image(cls, img: FileBasedImage):
        """Convert another image to this class."""
        raise NotImplementedError

    @classmethod
    def header_file_for(cls, filename: str | os.PathLike) -> str | None:
        """The file holding the header of an image of this class named ``filename``.

        None when the name rules this class out (another extension).
        """
        name = os.fspath(filename).lower()
        stem = next((name[: -len(s)] for s in cls._compressed_suffixes if name.endswith(s)), name)
        if not stem.endswith(cls.valid_exts):
            return None
        try:
            file_map = cls.filespec_to_file_map(filename)
        except ImageFileError:
            return None
        return file_map["header" if "header" in file_map else "image"].filename

    @classmethod
    def head_may_be_image(cls, head: bytes) -> bool:
        """Whether a header file starting with ``head`` may hold an image of this class."""
        sniff_size = getattr(cls.header_class, "sizeof_hdr", 0)
        if not sniff_size:
            return True
        return len(head) >= sniff_size and cls.header_class.may_contain_header(head)

    @classmethod
    def _sniff_meta_for(cls, meta: str, sniff_nbytes: int, sniff=None):
        """Read (or reuse) the first ``sniff_nbytes`` bytes of ``meta``, the file holding the header."""
        if sniff is not None and sniff[1] == meta and len(sniff[0]) >= sniff_nbytes:
            return sniff
        try:
            with open_image_file(meta) as fileobj:
                return fileobj.read(sniff_nbytes), meta
        except PermissionError:
            raise  # an unreadable file is not one of unknown type
        except (OSError, EOFError):
            return None

    @classmethod
    def path_maybe_image(cls, filename: str | os.PathLike, sniff=None, sniff_max: int = 1024):
        """Return ``(maybe, sniff)``: whether ``filename`` may be an image of this class.

        ``sniff`` is ``(bytes, metadata filename)``, reusable by the next class tried.
        """
        meta = cls.header_file_for(filename)
        if meta is None:
            return False, sniff
        sniff_size = getattr(cls.header_class, "sizeof_hdr", 0)
        if not sniff_size:
            return True, sniff
        sniff = cls._sniff_meta_for(meta, max(sniff_size, sniff_max), sniff)
        if sniff is None:
            return False, sniff
        return cls.head_may_be_image(sniff[0]), sniff


class SerializableImage(FileBasedImage):
    """A single-file image that also reads from and writes to bytes, streams and URLs.

    ``img.to_bytes()`` is the content ``img.to_filename(name)`` would write, and
    ``type(img).from_bytes(img.to_bytes())`` reads it back; images stored in several files (pairs) raise
    ``NotImplementedError``.
    """

    @classmethod
    def _stream_file_map(cls, stream) -> FileMap:
        if len(cls.files_types) > 1:
            raise NotImplementedError(
                f"{cls.__name__} is stored in {len(cls.files_types)} files; "
                "only single-file images are read from or written to one stream"
            )
        return cls.make_file_map({cls.files_types[0][0]: stream})

    @classmethod
    def from_stream(cls, stream: io.IOBase):
        """Load an image from a readable stream (read into memory first when it cannot seek)."""
        if not stream.seekable():
            stream = io.BytesIO(stream.read())
        return cls.from_file_map(cls._stream_file_map(stream))

    def to_stream(self, stream: io.IOBase, **kwargs) -> None:
        """Write the image to a writable stream; ``kwargs`` go to :meth:`to_file_map`."""
        self.to_file_map(self._stream_file_map(stream), **kwargs)

    @classmethod
    def from_bytes(cls, data: bytes):
        """Load an image from the bytes of its file."""
        return cls.from_stream(io.BytesIO(data))

    def to_bytes(self, **kwargs) -> bytes:
        """The bytes the image's file would hold; ``kwargs`` go to :meth:`to_file_map`."""
        stream = io.BytesIO()
        self.to_stream(stream, **kwargs)
        return stream.getvalue()

    @classmethod
    def from_url(cls, url: str | urllib.request.Request, timeout: float = 5):
        """Download ``url`` (``timeout`` seconds at most to answer) and load the image it holds."""
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return cls.from_bytes(response.read())
