"""Reorientation, ``img.slicer`` and ``gpuimg.funcs`` give nibabel's images on nibabel's test files."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpuimg
from gpuimg.orientations import OrientationError

nib = pytest.importorskip("nibabel")
from nibabel.testing import data_path  # noqa: E402

FILES = ["anatomical.nii", "functional.nii", "example4d.nii.gz", "example_nifti2.nii.gz"]


def load_both(name: str):
    path = os.path.join(data_path, name)
    return gpuimg.load(path), nib.load(path)


def assert_same_image(ours, theirs):
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    ours_data, theirs_data = np.asanyarray(ours.dataobj), np.asanyarray(theirs.dataobj)
    assert ours_data.dtype == theirs_data.dtype
    np.testing.assert_array_equal(ours_data, theirs_data)
    assert ours.header.get_dim_info() == theirs.header.get_dim_info()
    assert ours.header.get_zooms() == theirs.header.get_zooms()


@pytest.mark.parametrize("name", FILES)
def test_as_closest_canonical_matches_nibabel(name):
    ours, theirs = load_both(name)
    assert_same_image(gpuimg.as_closest_canonical(ours), nib.as_closest_canonical(theirs))


@pytest.mark.parametrize("codes", ["LPS", "SAR", "IRP"])
def test_as_reoriented_matches_nibabel_and_moves_dim_info(codes):
    ours, theirs = load_both("example4d.nii.gz")
    for img in (ours, theirs):
        img.header.set_dim_info(freq=0, phase=1, slice=2)
    ornt = nib.orientations.axcodes2ornt(codes)
    assert_same_image(ours.as_reoriented(ornt), theirs.as_reoriented(ornt))


def test_canonical_image_stays_a_proxy_image():
    ours, _ = load_both("anatomical.nii")
    canonical = gpuimg.as_closest_canonical(ours)
    ras = canonical.as_reoriented([[0, 1], [1, 1], [2, 1]])
    assert ras is canonical
    assert gpuimg.is_proxy(gpuimg.as_closest_canonical(ras).dataobj) is False  # read once
    on_disk = gpuimg.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.diag([2.0, 3, 4, 1]))
    assert gpuimg.as_closest_canonical(on_disk) is on_disk


def test_enforce_diag():
    oblique = np.array([[0.9, 0.1, 0, 0], [-0.1, 0.9, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    img = gpuimg.Nifti1Image(np.zeros((2, 2, 2), np.float32), oblique)
    with pytest.raises(OrientationError, match="not diagonal"):
        gpuimg.as_closest_canonical(img, enforce_diag=True)
    gpuimg.as_closest_canonical(img)


@pytest.mark.parametrize(
    "slicer",
    [
        (slice(1, 5), slice(None, None, 2), slice(3, 4)),
        (Ellipsis, 0),
        (slice(None), slice(2, None), slice(None), slice(1, 3)),
        (slice(2, 9, 3),),
        (slice(None), slice(None), slice(None), None),
    ],
)
def test_slicer_matches_nibabel(slicer):
    ours, theirs = load_both("example4d.nii.gz")
    sliced = ours.slicer[slicer]
    assert_same_image(sliced, theirs.slicer[slicer])


def test_slicer_negative_start_keeps_world_positions():
    img = gpuimg.Nifti1Image(np.arange(60.0).reshape(3, 4, 5), np.diag([2.0, 3, 4, 1]))
    for slicer in [(slice(-2, None),), (slice(None, None, -1),), (slice(1, 4), slice(None, 0, -2))]:
        sliced = img.slicer[slicer]
        first_voxel = tuple(s.indices(n)[0] for s, n in zip(slicer, img.shape, strict=False))
        origin = img.affine @ [*first_voxel, *(0,) * (3 - len(first_voxel)), 1]
        np.testing.assert_array_equal(sliced.affine[:, 3], origin)
        np.testing.assert_array_equal(sliced.get_fdata(), img.get_fdata()[slicer])


@pytest.mark.parametrize("slicer", [(0,), (slice(None), None), ([0, 1],), (slice(5, 5),)])
def test_bad_slicers_raise_index_error_as_nibabel(slicer):
    ours, theirs = load_both("anatomical.nii")
    with pytest.raises(IndexError):
        theirs.slicer[slicer]
    with pytest.raises(IndexError):
        ours.slicer[slicer]


def test_zero_step_raises_value_error_as_nibabels_slicer_tests_ask():
    ours, theirs = load_both("anatomical.nii")
    # nibabel's test_slicer asks for ValueError; its proxy divides by the step (ZeroDivisionError).
    with pytest.raises((ValueError, ZeroDivisionError)):
        theirs.slicer[:, ::0]
    with pytest.raises(ValueError, match="step cannot be zero"):
        ours.slicer[:, ::0]


def test_four_to_three_and_concat_match_nibabel(tmp_path):
    ours, theirs = load_both("example4d.nii.gz")
    ours_3d, theirs_3d = gpuimg.four_to_three(ours), nib.four_to_three(theirs)
    assert len(ours_3d) == len(theirs_3d) == ours.shape[3]
    for mine, other in zip(ours_3d, theirs_3d, strict=True):
        assert_same_image(mine, other)
    assert_same_image(gpuimg.concat_images(ours_3d), nib.concat_images(theirs_3d))
    assert_same_image(
        gpuimg.concat_images(ours_3d[:2], axis=2), nib.concat_images(theirs_3d[:2], axis=2)
    )
    paths = [str(tmp_path / f"v{i}.nii") for i in range(2)]
    for img, path in zip(ours_3d, paths, strict=False):
        gpuimg.save(img, path)
    assert_same_image(gpuimg.concat_images(paths), nib.concat_images(paths))


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        ([], {}, "empty"),
        ([np.zeros((2, 2, 2)), np.zeros((2, 2))], {}, "dimensions"),
        ([np.zeros((2, 2, 2)), np.zeros((2, 2, 3))], {}, "not compatible"),
        ([np.zeros((2, 2, 2)), np.zeros((2, 2, 2))], {"check_affines": True}, "Affine"),
    ],
)
def test_concat_errors_as_nibabel(images, kwargs, match):
    for module in (gpuimg, nib):
        imgs = [
            module.Nifti1Image(data.astype(np.float32), np.diag([1.0 + i, 1, 1, 1]))
            for i, data in enumerate(images)
        ]
        with pytest.raises(ValueError, match=match):
            module.concat_images(imgs, **kwargs)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 1), (2, 3, 4, 1, 1), (2, 3, 4, 2, 1)])
def test_squeeze_image_matches_nibabel(shape):
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    ours = gpuimg.squeeze_image(gpuimg.Nifti1Image(data, np.eye(4)))
    assert_same_image(ours, nib.squeeze_image(nib.Nifti1Image(data, np.eye(4))))


def test_squeeze_image_keeps_the_proxy():
    ours, _ = load_both("anatomical.nii")
    assert gpuimg.is_proxy(gpuimg.squeeze_image(ours).dataobj)
    with pytest.raises(ValueError, match="four dimensions"):
        gpuimg.four_to_three(ours)
