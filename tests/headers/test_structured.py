"""Reading headers: byte-order detection, nibabel's load-time fixes, and every bad input."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

import gpuimg
from gpuimg.errors import HeaderDataError, HeaderError
from gpuimg.headers import (
    AnalyzeHeader,
    Nifti1Header,
    Nifti1PairHeader,
    Nifti2Header,
    Spm2AnalyzeHeader,
)
from gpuimg.headers.structured import NATIVE, SWAPPED, endian_code

from .nib_pairs import ALL_PAIRS, PAIR_BY_CLASS, assert_same_header

CLASSES = [pair.ours for pair in ALL_PAIRS]
NIFTI_SINGLE = [Nifti1Header, Nifti2Header]


def _block(cls, endianness="<", **fields) -> bytes:
    hdr = cls(endianness=endianness)
    hdr.set_data_shape((2, 3, 4))
    for name, value in fields.items():
        hdr[name] = value
    return hdr.binaryblock


def _read(cls, block: bytes, **kwargs):
    return cls.from_fileobj(io.BytesIO(block), filename="bad.img", **kwargs)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("endianness", ["<", ">"])
def test_wrong_sizeof_hdr(cls, endianness):
    block = _block(cls, endianness, sizeof_hdr=cls.sizeof_hdr + 1)
    with pytest.raises(
        HeaderError,
        match=rf"^bad.img: header field 'sizeof_hdr' is {cls.sizeof_hdr + 1} \(byte-swapped "
        rf"-?\d+\), expected {cls.sizeof_hdr} in either byte order$",
    ):
        _read(cls, block)
    assert _read(cls, block, check=False).endianness == endianness


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_truncated_header(cls):
    size = cls.template_dtype.itemsize
    with pytest.raises(
        HeaderError, match=rf"^bad.img: truncated header: read 100 bytes, expected {size}$"
    ):
        _read(cls, _block(cls)[:100])
    with pytest.raises(HeaderError, match="truncated header: 100 bytes"):
        cls(_block(cls)[:100])
    with pytest.raises(HeaderError, match="header block too long"):
        cls(_block(cls) + b"\0")


@pytest.mark.parametrize("cls", [Nifti1Header, Nifti1PairHeader, Nifti2Header])
@pytest.mark.parametrize("magic", [b"xyz", b"", b"n+3"])
def test_bad_magic(cls, magic):
    with pytest.raises(
        HeaderError, match=rf"^bad.img: header field 'magic' is {re.escape(repr(magic))}, expected"
    ):
        _read(cls, _block(cls, magic=magic))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dim0", [-1, 8, 300])
def test_bad_number_of_dims(cls, dim0):
    hdr = cls(_block(cls), check=False)
    hdr["dim"][0] = dim0
    with pytest.raises(
        HeaderError, match=rf"bad.img: header field 'dim\[0\]' is {dim0}, expected 0 to 7"
    ):
        _read(cls, hdr.binaryblock)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_negative_dim(cls):
    hdr = cls(_block(cls), check=False)
    hdr["dim"][2] = -3
    with pytest.raises(HeaderError, match=r"bad.img: header field 'dim\[2\]' is -3, expected >= 0"):
        _read(cls, hdr.binaryblock)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("code", [0, 1, 255, 999, 1536])
def test_unsupported_datatype(cls, code):
    with pytest.raises(
        HeaderError, match=rf"bad.img: header field 'datatype' is {code}, expected one of \["
    ):
        _read(cls, _block(cls, datatype=code))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_negative_vox_offset(cls):
    with pytest.raises(
        HeaderError, match=r"bad.img: header field 'vox_offset' is -16(\.0)?, expected >= 0"
    ):
        _read(cls, _block(cls, vox_offset=-16))


@pytest.mark.parametrize("cls", NIFTI_SINGLE)
@pytest.mark.parametrize("offset", [1, 100, 351])
def test_vox_offset_inside_single_file_header(cls, offset):
    with pytest.raises(
        HeaderError,
        match=rf"bad.img: header field 'vox_offset' is {offset}, expected >= "
        rf"{cls.single_vox_offset} \(after the header\) in a single file",
    ):
        _read(cls, _block(cls, vox_offset=offset) + bytes(4))
    # 0 means "unset", accepted as nibabel accepts it; pair headers have no such limit.
    _read(cls, _block(cls, vox_offset=0) + bytes(4))
    _read(Nifti1PairHeader, _block(Nifti1PairHeader, vox_offset=offset))


def test_corrupt_eol_check():
    with pytest.raises(
        HeaderError,
        match=r"bad.img: header field 'eol_check' is \(13, 10, 10, 10\), expected \(13, 10, 26, 10\)",
    ):
        _read(Nifti2Header, _block(Nifti2Header, eol_check=(13, 10, 10, 10)) + bytes(4))
    fixed = _read(Nifti2Header, _block(Nifti2Header, eol_check=0) + bytes(4))
    assert tuple(fixed["eol_check"]) == (13, 10, 26, 10)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_data_must_fit_in_file(cls):
    hdr = cls()
    hdr.set_data_shape((2, 3, 4))
    hdr.set_data_dtype(np.int16)
    hdr.set_data_offset(1024)
    hdr.validate("data.img", file_size=1024 + 48)
    with pytest.raises(
        HeaderError,
        match=r"^data.img: data block of 48 bytes \(shape \(2, 3, 4\), 2 bytes per voxel\) at "
        r"offset 1024 needs a file of 1072 bytes, found 1071$",
    ):
        hdr.validate("data.img", file_size=1071)


def test_huge_dims_do_not_overflow():
    hdr = Nifti2Header()
    hdr.set_data_shape((2**40, 2**40, 2**30))
    hdr.set_data_dtype(np.float64)
    with pytest.raises(HeaderError, match=f"data block of {2**110 * 8} bytes"):
        hdr.validate("huge.nii", file_size=2**40)


def test_check_false_and_default_file_name():
    block = _block(AnalyzeHeader, datatype=999)
    assert _read(AnalyzeHeader, block, check=False)["datatype"] == 999
    with pytest.raises(HeaderError, match="^<fileobj>: header field 'datatype'"):
        AnalyzeHeader.from_fileobj(io.BytesIO(block))
    # Built from bytes alone, a header runs nibabel's check_fix: nibabel's error and message.
    with pytest.raises(HeaderDataError, match="^data code 999 not recognized$"):
        AnalyzeHeader(block)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("endianness", ["<", ">"])
def test_load_time_fixes_match_nibabel(cls, endianness):
    hdr = cls(_block(cls, endianness), check=False)
    hdr["pixdim"][1:4] = (0, -2, 3)
    hdr["bitpix"] = 3
    if "qform_code" in hdr:
        hdr["pixdim"][0] = 0
        hdr["qform_code"], hdr["sform_code"] = 17, 2
    block = hdr.binaryblock + bytes(4)
    ours = _read(cls, block)
    theirs = PAIR_BY_CLASS[cls].theirs.from_fileobj(io.BytesIO(block))
    assert_same_header(ours, theirs)
    assert ours.get_zooms()[:3] == (1, 2, 3)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_byte_order_detection(cls):
    for endianness in ("<", ">"):
        assert cls(_block(cls, endianness)).endianness == endianness
    # sizeof_hdr wrong both ways: nibabel's dim[0] rule decides.
    hdr = cls(_block(cls, ">"), check=False)
    hdr["sizeof_hdr"] = 1
    assert cls(hdr.binaryblock, check=False).endianness == ">"


def test_may_contain_header():
    analyze = _block(AnalyzeHeader)
    assert AnalyzeHeader.may_contain_header(analyze)
    assert AnalyzeHeader.may_contain_header(_block(AnalyzeHeader, ">"))
    assert not AnalyzeHeader.may_contain_header(analyze[:347])
    assert not AnalyzeHeader.may_contain_header(_block(AnalyzeHeader, sizeof_hdr=1))
    assert Spm2AnalyzeHeader.may_contain_header(analyze)
    assert not Spm2AnalyzeHeader.may_contain_header(_block(Nifti1Header))
    assert not Nifti1Header.may_contain_header(analyze)


def test_endian_codes():
    assert endian_code("little") == "<" and endian_code("BIG") == ">"
    assert endian_code("=") == NATIVE and endian_code("swapped") == SWAPPED
    with pytest.raises(ValueError, match="endianness 'middle' not recognized"):
        endian_code("middle")


def test_code_table_keys_are_every_code_label_and_alias():
    from gpuimg import nifti1

    keys = nifti1.xform_codes.keys()
    assert {0, 1, "unknown", "scanner", "aligned"} <= set(keys)
    assert all(nifti1.xform_codes[key] in nifti1.xform_codes.codes() for key in keys)


def test_unknown_codes_raise_key_error_as_nibabel():
    from gpuimg import nifti1

    hdr = nifti1.Nifti1Header()
    for bad in (-1, 6, "no such space"):
        with pytest.raises(KeyError, match=f"unknown xform code {bad!r}"):
            hdr.set_qform(np.eye(4), bad)
    with pytest.raises(gpuimg.HeaderDataError):  # still gpuimg's header error
        hdr.set_sform(np.eye(4), 10)
