"""The gpuimg error hierarchy.

Every class subclasses :class:`GpuimgError` and also the builtin a caller would
naturally catch, so ``except OSError`` and ``except gpuimg.ImageFileError``
both work for a file that cannot be read as an image.
"""

from __future__ import annotations


class GpuimgError(Exception):
    """Base class of every error gpuimg raises on purpose."""


class ImageFileError(GpuimgError, OSError):
    """A file cannot be read (or written) as an image of the expected format."""


class HeaderError(ImageFileError):
    """A header on disk is malformed: wrong size, bad magic, impossible dims or offsets."""


class WrapStructError(HeaderError):
    """A header's binary block has the wrong length (nibabel's ``wrapstruct.WrapStructError``)."""


class TruncatedDataError(ImageFileError):
    """The data block is shorter than the header promises."""


class CompressedStreamError(ImageFileError):
    """A gzip stream is corrupt or truncated."""


class FileChangedError(ImageFileError):
    """A file changed while gpuimg was reading it, so the data read might mix two versions."""


class HeaderDataError(GpuimgError, ValueError):
    """A header value is invalid (set by the caller, or inconsistent on read)."""


class UnknownCodeError(HeaderDataError, KeyError):
    """A code, label or alias that a code table (xform, intent, units...) does not have.

    Also a ``KeyError``, as nibabel's code tables raise for unknown keys.
    """

    __str__ = HeaderDataError.__str__  # KeyError's would quote the message


class HeaderTypeError(HeaderDataError):
    """A header of this type cannot store the value: e.g. scale factors in plain Analyze, an intercept
    in SPM (nibabel's ``spatialimages.HeaderTypeError``; also a :class:`HeaderDataError`)."""


class FileHolderError(GpuimgError, ValueError):
    """A file holder has neither a filename nor a file object to open."""


class WriterError(GpuimgError, ValueError):
    """Data cannot be written as the on-disk type (nibabel's ``arraywriters.WriterError``).

    For example float data written as integers in a format that stores no scale factor, complex data
    written as a real type, or negative and positive data written as unsigned integers with a slope only.
    """


class ScalingError(WriterError):
    """The scale factors that writing the data needs cannot be stored (not finite in float32)."""


class ExpiredDeprecationError(GpuimgError, RuntimeError):
    """A deprecated API whose removal date has passed was called."""


class DeviceUnavailableError(GpuimgError, RuntimeError):
    """A GPU was asked for but CuPy or a CUDA device is missing."""


class DeviceMemoryError(GpuimgError, MemoryError):
    """The GPU ran out of memory while gpuimg was reading into it."""
