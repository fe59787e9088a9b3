"""Tests of the gpuimg command line, in-process through main() and once through python -m gpuimg."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from gpuimg.cli import main
from gpuimg.config import configure
from gpuimg.io.bgzf import is_bgzf_file


@pytest.fixture
def images(tmp_path):
    """A scaled .nii.gz, a float .hdr/.img pair and a NIfTI-2 file."""
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    scaled = nib.Nifti1Image(data, affine)
    scaled.header.set_slope_inter(0.5, 2.0)
    scaled.header.set_xyzt_units("mm", "sec")
    paths = {
        "scaled": str(tmp_path / "scaled.nii.gz"),
        "pair": str(tmp_path / "pair.hdr"),
        "nifti2": str(tmp_path / "two.nii"),
    }
    nib.save(scaled, paths["scaled"])
    nib.save(nib.Nifti1Pair(data.astype(np.float32), affine), paths["pair"])
    nib.save(nib.Nifti2Image(data, affine), paths["nifti2"])
    return paths


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv", [["--help"], ["info", "--help"], ["bench", "--help"], ["convert", "-h"]]
)
def test_help_exits_zero(capsys, argv):
    code, out, _ = _run(capsys, *argv)
    assert code == 0 and "usage: gpuimg" in out


@pytest.mark.parametrize(
    "argv", [[], ["bogus"], ["info"], ["convert", "a.nii"], ["bench", "--repeat", "0", "--sample"]]
)
def test_usage_errors_exit_two(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "error:" in err


def test_info_one_line_per_file(capsys, images):
    code, out, err = _run(capsys, "info", *images.values())
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 3
    scaled, pair, nifti2 = lines
    for expected in (
        "scaled.nii.gz",
        "Nifti1Image",
        "int16",
        "[4, 5, 3]",
        "2.00x3.00x4.00",
        "mm/sec",
    ):
        assert expected in scaled
    assert "*0.5+2" in scaled and "affine [[2 0 0 0] [0 3 0 0] [0 0 4 0]]" in scaled
    assert scaled.endswith(f"{os.path.getsize(images['scaled'])} B")
    assert "Nifti1Pair" in pair and "float32" in pair and "unscaled" in pair
    pair_bytes = os.path.getsize(images["pair"]) + os.path.getsize(images["pair"][:-4] + ".img")
    assert pair.endswith(f"{pair_bytes} B")
    assert "Nifti2Image" in nifti2


def test_info_verbose_prints_the_header(capsys, images):
    code, out, _ = _run(capsys, "info", "-v", images["scaled"])
    assert code == 0
    assert "    sizeof_hdr      : 348" in out and "    magic           : 'n+1'" in out
    assert "    dim             : [3, 4, 5, 3, 1, 1, 1, 1]" in out


def test_info_missing_and_bad_files(capsys, images, tmp_path):
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"not an image at all" * 30)
    missing = str(tmp_path / "missing.nii")
    code, out, err = _run(capsys, "info", images["scaled"], missing, str(garbage))
    assert code == 1
    assert len(out.splitlines()) == 1 and "scaled.nii.gz" in out
    errors = err.splitlines()
    assert len(errors) == 2 and "Traceback" not in err
    assert errors[0].startswith("gpuimg info: error:") and "missing.nii" in errors[0]
    assert "garbage.nii" in errors[1]


@pytest.mark.parametrize("target", ["out.hdr", "out.nii", "out.nii.gz"])
def test_convert(capsys, images, tmp_path, target):
    output = str(tmp_path / target)
    code, _, err = _run(capsys, "convert", images["scaled"], output)
    assert code == 0 and err == ""
    np.testing.assert_array_equal(
        nib.load(output).get_fdata(), nib.load(images["scaled"]).get_fdata()
    )


def test_convert_dtype(capsys, images, tmp_path):
    output = str(tmp_path / "float.nii")
    assert _run(capsys, "convert", images["scaled"], output, "--dtype", "float32")[0] == 0
    converted = nib.load(output)
    assert converted.get_data_dtype() == np.float32
    np.testing.assert_array_equal(converted.get_fdata(), nib.load(images["scaled"]).get_fdata())


def test_convert_errors(capsys, images, tmp_path):
    code, _, err = _run(capsys, "convert", str(tmp_path / "missing.nii"), str(tmp_path / "o.nii"))
    assert code == 1 and "missing.nii" in err and "Traceback" not in err
    code, _, err = _run(capsys, "convert", images["scaled"], str(tmp_path / "o.mgz"))
    assert code == 1 and "o.mgz" in err
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in _files(images))
    code, _, err = _run(
        capsys, "convert", images["scaled"], str(tmp_path / "o.nii"), "--dtype", "bogus"
    )
    assert code == 2 and "not a numpy dtype" in err


def _files(images):
    return [*images.values(), images["pair"][:-4] + ".img"]


def test_python_dash_m(images, tmp_path):
    ok = subprocess.run(
        [sys.executable, "-m", "gpuimg", "info", images["scaled"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "scaled.nii.gz" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "gpuimg", "info", str(tmp_path / "missing.nii")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_convert_bgzf_rewrites_files_and_directories_in_place(capsys, monkeypatch, tmp_path):
    data = np.arange(40 * 30 * 20, dtype=np.int16).reshape(40, 30, 20)
    nested = tmp_path / "set" / "sub"
    nested.mkdir(parents=True)
    names = [tmp_path / "set" / "a.nii.gz", nested / "b.nii.gz", nested / "c.img.gz"]
    for name in names[:2]:
        nib.save(nib.Nifti1Image(data, np.eye(4)), name)
    nib.save(nib.Nifti1Pair(data, np.eye(4)), nested / "c.img.gz")
    (nested / "notes.txt.gz").write_bytes(b"not an image")  # not picked up by the walk
    before = {name: nib.load(name).get_fdata() for name in names}
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = _run(capsys, "convert", "--bgzf", "--level", "6", str(tmp_path / "set"))
    assert code == 0
    assert "4 file(s) rewritten as BGZF, 0 already BGZF, 0 failed" in out  # c.hdr.gz too
    assert "file/s" in err  # the progress bar
    for name in names:
        assert is_bgzf_file(name)
        np.testing.assert_array_equal(nib.load(name).get_fdata(), before[name])
    code, out, _ = _run(capsys, "convert", "--bgzf", str(names[0]))
    assert code == 0 and "0 file(s) rewritten as BGZF, 1 already BGZF" in out
    assert sorted(p.name for p in nested.iterdir()) == [
        "b.nii.gz",
        "c.hdr.gz",
        "c.img.gz",
        "notes.txt.gz",
    ]


def test_convert_bgzf_errors(capsys, tmp_path):
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not gzip at all")
    code, out, err = _run(capsys, "convert", "--bgzf", str(broken))
    assert code == 1 and "broken.nii.gz" in err and "Traceback" not in err
    assert "0 failed" not in out and "1 failed" in out
    assert broken.read_bytes() == b"not gzip at all"
    assert os.listdir(tmp_path) == ["broken.nii.gz"]  # no temporary left behind
    code, _, err = _run(capsys, "convert", "--bgzf", "--dtype", "f4", str(broken))
    assert code == 2 and "--bgzf rewrites files in place" in err
    code, _, err = _run(capsys, "convert", "--bgzf", "--level", "12", str(broken))
    assert code == 2 and "not a gzip level" in err


def test_convert_to_gz_honours_the_bgzf_setting(capsys, images, tmp_path):
    output = tmp_path / "out.nii.gz"
    with configure(bgzf=True):
        assert _run(capsys, "convert", images["scaled"], str(output), "--level", "4")[0] == 0
    assert is_bgzf_file(output)
    np.testing.assert_array_equal(
        nib.load(output).get_fdata(), nib.load(images["scaled"]).get_fdata()
    )
