"""FileBasedImage basics: file maps, filenames, sniffing, saving under another class."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg
from gpuimg.errors import ImageFileError
from gpuimg.images.filebased import types_filenames
from gpuimg.images.fileholders import FileHolder


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.img", {"image": "a.img", "header": "a.hdr"}),
        ("a.hdr.gz", {"image": "a.img.gz", "header": "a.hdr.gz"}),
        ("A.IMG", {"image": "A.IMG", "header": "A.HDR"}),
    ],
)
def test_pair_filenames(name, expected):
    assert types_filenames(name, gpuimg.Nifti1Pair.files_types, (".gz",)) == expected


def test_wrong_extension_for_the_class():
    with pytest.raises(ImageFileError, match=r"a\.nii: file extension not recognised"):
        gpuimg.Nifti1Pair.filespec_to_file_map("a.nii")


def test_make_file_map_and_filenames(tmp_path):
    empty = gpuimg.Nifti1Image.make_file_map()
    assert empty["image"].filename is None and empty["image"].fileobj is None
    filled = gpuimg.Nifti1Pair.make_file_map({"image": "x.img", "header": "x.hdr"})
    assert filled["header"].filename == "x.hdr"
    img = gpuimg.Nifti1Pair(np.zeros((2, 3), np.int16), np.eye(4))
    assert img.get_filename() is None
    img.set_filename(tmp_path / "pair.hdr")
    assert img.get_filename() == str(tmp_path / "pair.img")
    assert img.file_map["header"].filename == str(tmp_path / "pair.hdr")


def test_to_filename_save_and_instance_to_filename(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = gpuimg.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.save(tmp_path / "single.nii")
    assert img.get_filename() == str(tmp_path / "single.nii")
    gpuimg.Nifti2Image.instance_to_filename(img, tmp_path / "as_nifti2.nii")
    converted = gpuimg.load(tmp_path / "as_nifti2.nii")
    assert isinstance(converted, gpuimg.Nifti2Image)
    np.testing.assert_array_equal(np.asanyarray(converted.dataobj), data)
    np.testing.assert_array_equal(converted.affine, img.affine)


def test_path_maybe_image_sniffs_once_and_reuses(tmp_path):
    path = tmp_path / "single.nii"
    gpuimg.Nifti1Image(np.zeros((2, 2), np.float32), np.eye(4)).to_filename(path)
    maybe_pair, sniff = gpuimg.Nifti1Pair.path_maybe_image(path)
    assert maybe_pair is False
    maybe_single, sniff_again = gpuimg.Nifti1Image.path_maybe_image(path, sniff)
    assert maybe_single is True
    assert sniff_again is not None and sniff_again[1] == str(path)
    assert gpuimg.Nifti2Image.path_maybe_image(path, sniff_again)[0] is False


def test_image_cannot_be_sliced_directly():
    img = gpuimg.Nifti1Image(np.zeros((2, 2)), np.eye(4))
    with pytest.raises(TypeError, match="dataobj"):
        img[0]


def test_header_and_extra_are_kept():
    header = gpuimg.Nifti1Header()
    header["descrip"] = b"kept"
    img = gpuimg.Nifti1Image(np.zeros((2, 2), np.float32), np.eye(4), header=header, extra={"k": 1})
    assert img.header["descrip"] == b"kept"
    assert img.header is not header
    assert img.extra == {"k": 1}


def test_a_file_map_with_neither_name_nor_file_is_an_image_file_error():
    """Not a TypeError from deep inside ``open``: the error says what the holder lacks."""
    with pytest.raises(ImageFileError, match="neither a file name nor a file object"):
        gpuimg.Nifti1Image.from_file_map({"image": FileHolder()})


def test_get_prepare_fileobj_opens_names_and_borrows_file_objects(tmp_path):
    import gzip
    import io

    from gpuimg.errors import FileHolderError
    from gpuimg.images.fileholders import FileHolder, copy_file_map

    path = tmp_path / "f.img.gz"
    with FileHolder(filename=path).get_prepare_fileobj("wb") as fileobj:
        fileobj.write(b"abcdef")
    assert gzip.decompress(path.read_bytes()) == b"abcdef"  # the suffix picks the compression
    with FileHolder(filename=path, pos=2).get_prepare_fileobj() as fileobj:
        assert fileobj.read() == b"cdef"
    stream = io.BytesIO(b"0123456789")
    with FileHolder(fileobj=stream, pos=3).get_prepare_fileobj() as fileobj:
        assert fileobj.read(2) == b"34"
    assert not stream.closed  # the caller's file object stays open
    with pytest.raises(FileHolderError, match="no filename or file object"):
        FileHolder().get_prepare_fileobj()
    file_map = {"image": FileHolder(filename="a.nii", fileobj=stream)}
    copied = copy_file_map(file_map)
    assert copied["image"] is not file_map["image"] and copied["image"].fileobj is stream


@pytest.mark.parametrize(
    ("module", "image_class", "name"),
    [
        ("analyze", gpuimg.AnalyzeImage, "a.img"),
        ("spm99analyze", gpuimg.Spm99AnalyzeImage, "a.img"),
        ("spm2analyze", gpuimg.Spm2AnalyzeImage, "a.img"),
        ("nifti1", gpuimg.Nifti1Image, "a.nii"),
        ("nifti1", gpuimg.Nifti1Pair, "a.img"),
        ("nifti2", gpuimg.Nifti2Image, "a.nii"),
        ("nifti2", gpuimg.Nifti2Pair, "a.img"),
    ],
)
def test_module_load_and_save(tmp_path, module, image_class, name):
    import importlib

    formats = importlib.import_module(f"gpuimg.{module}")
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    formats.save(gpuimg.Nifti1Image(data, np.eye(4)), tmp_path / name)
    loaded = formats.load(tmp_path / name)
    assert type(loaded) is image_class
    np.testing.assert_array_equal(np.asarray(loaded.dataobj), data)
