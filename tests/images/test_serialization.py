"""Images written to and read from explicit file maps, bytes, streams and URLs."""

from __future__ import annotations

import io

import numpy as np
import pytest

import gpuimg

CLASSES = [
    gpuimg.AnalyzeImage,
    gpuimg.Spm99AnalyzeImage,
    gpuimg.Spm2AnalyzeImage,
    gpuimg.Nifti1Pair,
    gpuimg.Nifti1Image,
    gpuimg.Nifti2Pair,
    gpuimg.Nifti2Image,
]


def bytes_file_map(image_class):
    file_map = image_class.make_file_map()
    for holder in file_map.values():
        holder.fileobj = io.BytesIO()
    return file_map


@pytest.mark.parametrize("image_class", CLASSES, ids=lambda c: c.__name__)
def test_save_to_an_explicit_file_map_when_the_image_has_none(image_class):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = image_class(data, np.eye(4))
    img.file_map = None
    file_map = bytes_file_map(image_class)
    img.to_file_map(file_map)
    assert img.file_map is file_map
    np.testing.assert_array_equal(np.asarray(image_class.from_file_map(file_map).dataobj), data)


@pytest.mark.parametrize(
    "image_class", [gpuimg.Nifti1Image, gpuimg.Nifti2Image], ids=lambda c: c.__name__
)
def test_bytes_and_streams_round_trip(image_class, tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    img = image_class(data, np.diag([2, 3, 4, 1]))
    content = img.to_bytes()
    path = tmp_path / "img.nii"
    img.to_filename(path)
    assert content == path.read_bytes()  # the bytes are the file's content
    for loaded in (
        image_class.from_bytes(content),
        image_class.from_stream(io.BufferedReader(io.BytesIO(content))),
        image_class.from_url(path.as_uri()),
    ):
        np.testing.assert_array_equal(loaded.get_fdata(), data)
        np.testing.assert_array_equal(loaded.affine, img.affine)
    stream = io.BytesIO()
    img.to_stream(stream, dtype=np.int16)
    assert image_class.from_bytes(stream.getvalue()).get_data_dtype() == np.int16


def test_pairs_have_no_single_stream_api():
    """As in nibabel, only single-file images serialize (a pair is two files)."""
    assert not hasattr(gpuimg.Nifti1Pair, "to_bytes")
    assert issubclass(gpuimg.Nifti1Image, gpuimg.images.filebased.SerializableImage)


@pytest.mark.parametrize("method", ["set_qform", "set_sform"])
def test_set_xform_update_affine(method):
    img = gpuimg.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4))
    affine = img.affine
    new = np.diag([2.0, 3.0, 4.0, 1.0])
    getattr(img, method)(new, "scanner", update_affine=False)
    np.testing.assert_array_equal(img.affine, np.eye(4))  # header changed, affine kept
    getattr(img, method)(new, "scanner")
    np.testing.assert_array_equal(img.affine, img.header.get_best_affine())
    assert img.affine is affine  # updated in place, as nibabel does


def test_mask_is_an_alias_of_uint8():
    img = gpuimg.Nifti1Image(np.arange(24, dtype="f4").reshape(2, 3, 4), np.eye(4), dtype="mask")
    assert img.get_data_dtype() == np.uint8
    img.set_data_dtype("mask")
    assert gpuimg.Nifti1Image.from_bytes(img.to_bytes()).get_data_dtype() == np.uint8
