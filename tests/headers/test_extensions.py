"""NIfTI header extensions: byte-exact round trips, and nibabel reads what we write."""

from __future__ import annotations

import io
import json

import nibabel as nib
import numpy as np
import pytest

from gpuimg.errors import HeaderDataError, HeaderError
from gpuimg.headers import (
    Nifti1Header,
    Nifti1PairHeader,
    Nifti2Header,
    NiftiExtension,
    NiftiExtensions,
)

from .nib_pairs import NIFTI_PAIRS

CONTENTS = [(6, b"a comment"), ("afni", b"<xml/>" * 5), (44, b""), (1234, bytes(range(40)))]


def _with_extensions(cls, endianness="<"):
    hdr = cls(endianness=endianness)
    hdr.set_data_shape((2, 3))
    hdr.extensions.extend(NiftiExtension(code, content) for code, content in CONTENTS)
    return hdr


def _written(hdr) -> bytes:
    out = io.BytesIO()
    hdr.write_to(out)
    return out.getvalue()


@pytest.mark.parametrize("pair", NIFTI_PAIRS, ids=str)
@pytest.mark.parametrize("endianness", ["<", ">"])
def test_round_trip_and_nibabel_reads_ours(pair, endianness):
    ours = _with_extensions(pair.ours, endianness)
    block = _written(ours)
    ext_size = sum(-(-(8 + len(c)) // 16) * 16 for _, c in CONTENTS)
    header_size = pair.ours.template_dtype.itemsize + 4
    assert len(block) == header_size + ext_size
    if pair.ours.is_single:
        assert ours.get_data_offset() == header_size + ext_size
    again = pair.ours.from_fileobj(io.BytesIO(block))
    assert again.extensions == ours.extensions
    assert _written(again) == block
    theirs = pair.theirs.from_fileobj(io.BytesIO(block))
    assert [(e.get_code(), e.content) for e in theirs.extensions] == [
        (ext.code, ext.content) for ext in ours.extensions
    ]
    assert theirs.binaryblock == ours.binaryblock


@pytest.mark.parametrize("pair", NIFTI_PAIRS, ids=str)
def test_we_read_nibabel_extensions(pair):
    theirs = pair.theirs(endianness=">")
    theirs.extensions.append(nib.nifti1.Nifti1Extension("comment", b"from nibabel"))
    theirs.extensions.append(nib.nifti1.Nifti1Extension(4, b"x" * 17))
    out = io.BytesIO()
    theirs.write_to(out)
    ours = pair.ours.from_fileobj(io.BytesIO(out.getvalue()))
    assert [(e.code, e.content) for e in ours.extensions] == [
        (6, b"from nibabel"),
        (4, b"x" * 17),
    ]
    assert _written(ours) == out.getvalue()


def test_padding_in_raw_bytes_written_back_exactly():
    hdr = Nifti1Header()
    block = bytearray(_written(hdr))
    block[348] = 1
    content = b"text" + bytes(36)  # esize 48 although 16 would hold the text
    block[108:112] = np.float32(352 + 48).tobytes()
    extension = np.array([48, 6], dtype="<i4").tobytes() + content
    ours = Nifti1Header.from_fileobj(io.BytesIO(bytes(block[:348]) + b"\x01\0\0\0" + extension))
    assert ours.extensions[0].content == b"text"
    assert _written(ours)[352:] == extension
    ours.extensions[0].content = b"new text"
    ours.set_data_offset(0)
    assert len(_written(ours)) == 352 + 16


def test_extension_api():
    ext = NiftiExtension("comment", b'{"a": 1}')
    assert (ext.code, ext.get_code(), ext.label) == (6, 6, "comment")
    assert ext.text == '{"a": 1}' and ext.json() == {"a": 1}
    assert ext.get_sizeondisk() == 16
    assert NiftiExtension(99, b"").label == "<unknown code 99>"
    assert ext != NiftiExtension("afni", b'{"a": 1}')
    assert "comment" in repr(ext)
    hdr = _with_extensions(Nifti1PairHeader)
    assert hdr.extensions.count("comment") == 1 and hdr.extensions.count(1234) == 1
    assert hdr.extensions.get_codes() == [6, 4, 44, 1234]
    assert hdr.copy().extensions == hdr.extensions
    assert Nifti2Header.from_header(hdr).extensions == hdr.extensions
    assert "NiftiExtensions" in repr(hdr.extensions)
    unknown = NiftiExtension("nope", b"{}")  # kept as nibabel keeps it: its content is readable
    assert (unknown.code, unknown.label, unknown.json()) == ("nope", "nope", {})
    with pytest.raises(HeaderDataError, match="extension code 'nope' cannot be written"):
        unknown.write_to(io.BytesIO())


def test_vox_offset_too_small_for_extensions_raises():
    hdr = _with_extensions(Nifti1Header)
    hdr.set_data_offset(352)
    with pytest.raises(HeaderDataError, match="expected at least"):
        hdr.write_to(io.BytesIO())


def _single_with_raw_extension(esize: int, payload: bytes, vox_offset: int) -> bytes:
    hdr = Nifti1Header()
    hdr.set_data_offset(vox_offset)
    fields = np.array([esize, 6], dtype="<i4").tobytes()
    return hdr.binaryblock + b"\x01\0\0\0" + fields + payload


@pytest.mark.parametrize(
    ("esize", "payload", "vox_offset", "match"),
    [
        (4, b"", 368, "'esize' is 4, expected 8 to 16"),
        (48, bytes(40), 368, "'esize' is 48, expected 8 to 16"),
        (32, bytes(10), 400, "truncated extension 0: read 10 of its 24 content bytes"),
    ],
)
def test_bad_extensions_raise(esize, payload, vox_offset, match):
    block = _single_with_raw_extension(esize, payload, vox_offset)
    with pytest.raises(HeaderError, match=f"ext.nii: .*{match}"):
        Nifti1Header.from_fileobj(io.BytesIO(block), filename="ext.nii")


def test_truncated_extension_fields_raise():
    block = _single_with_raw_extension(16, b"", 368)[:-4]
    with pytest.raises(HeaderError, match="truncated extension 0: read 4 of its 8"):
        Nifti1PairHeader.from_fileobj(io.BytesIO(block))


def test_esize_not_multiple_of_16_warns_and_is_read():
    block = _single_with_raw_extension(20, b"abcdefghijkl", 372)
    with pytest.warns(UserWarning, match="'esize' is 20, expected a multiple of 16"):
        hdr = Nifti1Header.from_fileobj(io.BytesIO(block))
    assert hdr.extensions[0].content == b"abcdefghijkl"
    assert hdr.extensions.get_sizeondisk() == 32


def test_unchecked_garbage_offset_reads_no_extensions():
    block = bytearray(_single_with_raw_extension(16, bytes(8), 368))
    block[108:112] = np.float32(np.nan).tobytes()
    assert len(Nifti1Header.from_fileobj(io.BytesIO(bytes(block)), check=False).extensions) == 0


def test_str_content_is_kept_and_written_utf8_encoded():
    ours, theirs = (
        NiftiExtension("comment", "hôpital"),
        nib.nifti1.Nifti1Extension("comment", "hôpital"),
    )
    assert ours.get_content() == theirs.get_content() == "hôpital"
    assert ours.content == theirs.content
    assert ours == NiftiExtension(6, "hôpital".encode())  # what each writes
    out = io.BytesIO()
    ours.write_to(out)
    back = nib.nifti1.Nifti1Extensions.from_fileobj(io.BytesIO(out.getvalue()), -1, False)
    assert back[0].get_content() == "hôpital".encode()
    ascii_ext = NiftiExtension("comment", "hôpital".encode())
    ascii_ext.encoding = "ascii"
    with pytest.raises(UnicodeDecodeError):
        _ = ascii_ext.text


def test_subclasses_written_for_nibabel_convert_their_objects():
    class JsonExtension(NiftiExtension):
        def _mangle(self, value):
            return json.dumps(value).encode()

        def _unmangle(self, value):
            return json.loads(value)

    ext = JsonExtension(0, b"{}")
    ext.get_object()["val"] = 1  # the runtime object is kept: changing it changes what is written
    assert ext._content is ext.get_object()
    out = io.BytesIO()
    ext.write_to(out)
    assert out.getvalue() == b"\x20\0\0\0\0\0\0\0" + b'{"val": 1}' + bytes(14)
    assert JsonExtension(0, object={"a": 2}).content == b'{"a": 2}'


@pytest.mark.parametrize("size", [-1, None])
def test_from_fileobj_reads_to_the_end_given_a_negative_size(size):
    out = io.BytesIO()
    for content in (b"Extra comment", b"Comment"):
        NiftiExtension(6, content).write_to(out)
    out.seek(0)
    ours = NiftiExtensions.from_fileobj(out, size, False)
    out.seek(0)
    theirs = nib.nifti1.Nifti1Extensions.from_fileobj(out, -1, False)
    assert (
        [e.content for e in ours] == [e.content for e in theirs] == [b"Extra comment", b"Comment"]
    )
