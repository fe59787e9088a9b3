"""BGZF files gpuimg writes are read by every gzip reader; BGZF files others write are read as BGZF.

Readers checked: ``gzip -t``, Python's ``gzip``, ``zlib`` (wbits 31, member after member), nibabel
with and without ``indexed_gzip``, htslib (through pysam) and the ``bgzip`` package. Writers checked:
htslib (``pysam.tabix_compress``, what ``bgzip`` runs) and the ``bgzip`` package. The list of readers
is in ``docs/bgzf.md``.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib

import numpy as np
import pytest

import gpuimg
from gpuimg.io.bgzf import BgzfReader, is_bgzf_file
from gpuimg.io.openers import open_image_file
from tests.oracle import nib


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A scaled, big-endian int16 image (about 20 blocks) saved by gpuimg as BGZF and as one stream."""
    root = tmp_path_factory.mktemp("compat")
    rng = np.random.default_rng(5)
    data = rng.integers(-200, 800, (48, 40, 36, 5), dtype=np.int16).astype(">i2")
    img = gpuimg.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    img.header.set_slope_inter(0.5, 10.0)
    paths = {"bgzf": root / "bgzf.nii.gz", "single": root / "single.nii.gz"}
    gpuimg.save(img, paths["bgzf"], bgzf=True)
    gpuimg.save(img, paths["single"], bgzf=False)
    assert is_bgzf_file(paths["bgzf"]) and not is_bgzf_file(paths["single"])
    return paths


def uncompressed(paths) -> bytes:
    return gzip.decompress(paths["single"].read_bytes())


@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip program")
def test_gzip_program_accepts_it(image):
    result = subprocess.run(["gzip", "-t", str(image["bgzf"])], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    result = subprocess.run(["gzip", "-dc", str(image["bgzf"])], capture_output=True, check=True)
    assert result.stdout == uncompressed(image)


def test_python_gzip_reads_it(image):
    with gzip.open(image["bgzf"]) as f:
        assert f.read() == uncompressed(image)


def test_zlib_reads_every_member(image):
    raw, parts, members = image["bgzf"].read_bytes(), [], 0
    while raw:
        decompressor = zlib.decompressobj(31)
        parts.append(decompressor.decompress(raw))
        assert decompressor.eof
        raw, members = decompressor.unused_data, members + 1
    assert b"".join(parts) == uncompressed(image)
    assert members > 10


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed_gzip", "gzip"])
def test_nibabel_reads_it(image, monkeypatch, indexed):
    from nibabel import _compression

    if indexed:
        pytest.importorskip("indexed_gzip")
    monkeypatch.setattr(_compression, "HAVE_INDEXED_GZIP", indexed)
    with nib.openers.Opener(image["bgzf"]) as opener:
        assert (type(opener.fobj).__name__ == "IndexedGzipFile") == indexed
    theirs = nib.load(image["bgzf"])
    reference = nib.load(image["single"]).get_fdata()
    np.testing.assert_array_equal(theirs.get_fdata(), reference)
    np.testing.assert_array_equal(theirs.dataobj[5:30:2, :, 7, 3], reference[5:30:2, :, 7, 3])


def test_htslib_reads_it(image):
    pysam = pytest.importorskip("pysam")
    with pysam.BGZFile(str(image["bgzf"]), "rb") as f:
        assert f.read() == uncompressed(image)


def test_bgzip_package_reads_it(image):
    bgzip = pytest.importorskip("bgzip")
    with open(image["bgzf"], "rb") as raw, bgzip.BGZipReader(raw, num_threads=1) as reader:
        assert bytes(reader.read()) == uncompressed(image)


def write_with_htslib(source, target) -> None:
    pysam = pytest.importorskip("pysam")
    with pysam.BGZFile(str(target), "wb") as f:
        f.write(source)


def write_with_bgzip_package(source, target) -> None:
    bgzip = pytest.importorskip("bgzip")
    with open(target, "wb") as raw, bgzip.BGZipWriter(raw, num_threads=1) as writer:
        writer.write(source)


@pytest.mark.parametrize("writer", [write_with_htslib, write_with_bgzip_package])
def test_bgzf_written_by_others_is_read_as_bgzf(tmp_path, image, writer):
    target = tmp_path / "theirs.nii.gz"
    writer(uncompressed(image), target)
    assert is_bgzf_file(target)
    with open_image_file(target) as f:
        assert isinstance(f, BgzfReader)
        assert f.read() == uncompressed(image)
    ours = gpuimg.load(target)
    reference = nib.load(image["single"])
    np.testing.assert_array_equal(ours.get_fdata(), reference.get_fdata())
    np.testing.assert_array_equal(ours.dataobj[:, 3, ::3, 1:4], reference.dataobj[:, 3, ::3, 1:4])
