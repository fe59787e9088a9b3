"""Every nibabel name MONAI, TorchIO and nilearn use exists in gpuimg, or docs say why it is left out."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from nibabel_clients import CLIENTS, client_names

import gpuimg

DOC = Path(__file__).parents[1] / "docs" / "nibabel-clients.md"


def left_out() -> set[str]:
    """The names the docs' table marks as left out."""
    rows = [line for line in DOC.read_text().splitlines() if "| left out" in line]
    return {re.findall(r"`([^`]+)`", row.split("|")[1])[0] for row in rows}


def resolve(name: str):
    """The gpuimg object at nibabel's dotted ``name`` (modules imported as nibabel's would be)."""
    parts = name.split(".")[1:]
    obj = gpuimg
    for index, part in enumerate(parts):
        if not hasattr(obj, part):
            importlib.import_module(".".join(["gpuimg", *parts[: index + 1]]))
        obj = getattr(obj, part)
    return obj


def test_left_out_names_are_really_absent():
    assert left_out() >= {"nibabel.freesurfer", "nibabel.gifti"}
    for name in left_out():
        with pytest.raises((AttributeError, ImportError)):
            resolve(name)


@pytest.mark.parametrize("client", CLIENTS)
def test_client_names_are_provided_or_documented(client):
    names = client_names(client)
    if names is None:
        pytest.skip(f"{client} is not installed")
    assert names, f"no nibabel use found in {client}: the scan is broken"
    skipped = left_out()
    missing = [
        f"{name} (used in {where})"
        for name, where in names.items()
        if not any(name == out or name.startswith(out + ".") for out in skipped)
        and not _resolves(name)
    ]
    assert not missing, f"nibabel names {client} uses that gpuimg lacks: {missing}"


def _resolves(name: str) -> bool:
    try:
        resolve(name)
    except (AttributeError, ImportError):
        return False
    return True


def test_nibabel_paths_hold_gpuimg_classes_and_errors():
    assert gpuimg.nifti1.Nifti1Image is gpuimg.Nifti1Image
    assert gpuimg.nifti2.Nifti2Image is gpuimg.Nifti2Image
    assert gpuimg.analyze.AnalyzeImage is gpuimg.AnalyzeImage
    assert gpuimg.spatialimages.SpatialImage is gpuimg.SpatialImage
    assert gpuimg.filebasedimages.ImageFileError is gpuimg.ImageFileError
    assert gpuimg.loadsave.save is gpuimg.save
    with pytest.raises(gpuimg.filebasedimages.ImageFileError):
        gpuimg.load(__file__)


def test_code_tables_are_subscriptable_as_nibabel_s():
    nib = pytest.importorskip("nibabel")
    for key in ("NIFTI_INTENT_POINTSET", "NIFTI_INTENT_TRIANGLE", "t test", 3):
        assert gpuimg.nifti1.intent_codes[key] == nib.nifti1.intent_codes[key]
    for key in ("scanner", "mni", 4):
        assert gpuimg.nifti1.xform_codes[key] == nib.nifti1.xform_codes[key]
    assert gpuimg.nifti1.unit_codes["mm"] == nib.nifti1.unit_codes["mm"]
    with pytest.raises(KeyError, match="no such intent"):
        gpuimg.nifti1.intent_codes["no such intent"]


def test_extension_get_content_as_nibabel(tmp_path):
    nib = pytest.importorskip("nibabel")
    path = str(tmp_path / "ext.nii")
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4))
    img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"hello gpuimg"))
    nib.save(img, path)
    ours = gpuimg.load(path).header.extensions[0]
    assert isinstance(ours, gpuimg.nifti1.Nifti1Extension)
    assert ours.get_content() == nib.load(path).header.extensions[0].get_content()


def test_nifti1_load_save_as_nibabel(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = gpuimg.Nifti1Image(data, np.eye(4))
    for name, cls in (("a.nii", gpuimg.Nifti1Image), ("b.img", gpuimg.Nifti1Pair)):
        gpuimg.nifti1.save(img, tmp_path / name)
        loaded = gpuimg.nifti1.load(tmp_path / name)
        assert type(loaded) is cls
        np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), data)
