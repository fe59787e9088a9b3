"""Tests of gpuimg.loader_fill and gpuimg.io.wholegzip: which read fills a slot, values, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg.arrayproxy import ArrayProxy
from gpuimg.io import wholegzip
from gpuimg.io.containers import MAX_DEFLATE_RATIO
from gpuimg.loader import Loader
from gpuimg.loader_fill import WholeGzip

SHAPE = (9, 7, 5)


def _save(path: Path, dtype=np.int16, *, slope=1.0, inter=0.0, big_endian=False) -> str:
    rng = np.random.default_rng(len(path.name))
    data = rng.integers(-300, 300, SHAPE).astype(dtype)
    header = nib.Nifti1Header(endianness=">" if big_endian else "<")
    img = nib.Nifti1Image(data, np.eye(4), header)
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return str(path)


def _expected(path: str, shape=SHAPE) -> np.ndarray:
    volume = np.asarray(nib.load(path).get_fdata(dtype=np.float32))
    source, destination = gpuimg.loader.crop_or_pad(volume.shape, shape)
    expected = np.zeros(shape, np.float32)
    expected[destination] = volume[source]
    return expected


@pytest.fixture
def reads(monkeypatch):
    """Count the whole-file decodes that succeed and the proxy reads that stream."""
    counts = {"whole": 0, "stream": 0}
    decode, stream = wholegzip.decode_whole, ArrayProxy.read_scaled_into

    def counted_decode(*args):
        data = decode(*args)
        counts["whole"] += data is not None
        return data

    def counted_stream(*args, **kwargs):
        counts["stream"] += 1
        return stream(*args, **kwargs)

    monkeypatch.setattr(gpuimg.loader_fill, "decode_whole", counted_decode)
    monkeypatch.setattr(ArrayProxy, "read_scaled_into", counted_stream)
    return counts


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    ("dtype", "slope", "inter", "big_endian"),
    [
        (np.int16, 1.25, -8.0, False),  # float32 arithmetic (the compiled kernels)
        (np.int16, 0.1, 3.3, True),  # float64 arithmetic, byte-swapped: numpy
        (np.float32, 1.0, 0.0, False),  # no scaling: a copy
        (np.uint8, 2.0, 1.0, False),
    ],
)
def test_single_member_gzip_is_decoded_whole(
    tmp_path, reads, order, dtype, slope, inter, big_endian
):
    paths = [
        _save(tmp_path / f"v{i}.nii.gz", dtype, slope=slope, inter=inter, big_endian=big_endian)
        for i in range(3)
    ]
    batches = [np.array(batch) for batch in Loader(paths, 3, order=order)]
    assert reads == {"whole": 3, "stream": 0}
    for got, path in zip(batches[0], paths, strict=True):
        assert got.tobytes() == _expected(path).tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_crops_and_pads_are_decoded_whole(tmp_path, reads, order):
    paths = [_save(tmp_path / f"v{i}.nii.gz", slope=0.5, inter=2.0) for i in range(2)]
    target = (11, 4, 5)
    batch = next(iter(Loader(paths, 2, shape=target, order=order)))
    assert reads == {"whole": 2, "stream": 0}
    for got, path in zip(batch, paths, strict=True):
        assert np.array(got).tobytes() == _expected(path, target).tobytes()


def _multi_member(path: Path) -> None:
    """Rewrite the gzip file at ``path`` as two members."""
    data = gzip.decompress(path.read_bytes())
    half = len(data) // 2
    path.write_bytes(gzip.compress(data[:half]) + gzip.compress(data[half:]))


def test_other_files_stream_through_the_proxy(tmp_path, reads):
    plain = _save(tmp_path / "plain.nii")
    multi = _save(tmp_path / "multi.nii.gz")
    _multi_member(Path(multi))
    bgzf = str(tmp_path / "bgzf.nii.gz")
    gpuimg.save(gpuimg.load(plain), bgzf, bgzf=True)
    paths = [plain, multi, bgzf]
    for order in "CF":
        batch = next(iter(Loader(paths, 3, order=order)))
        for got, path in zip(batch, paths, strict=True):
            assert np.array(got).tobytes() == _expected(path).tobytes()
    assert reads == {"whole": 0, "stream": 6}


def _corrupt(path: Path, where: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[where] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["crc", "data", "truncated"])
def test_bad_gzip_files_raise_naming_the_file(tmp_path, reads, damage):
    good = _save(tmp_path / "good.nii.gz")
    bad = Path(_save(tmp_path / "bad.nii.gz"))
    if damage == "crc":
        _corrupt(bad, -6)  # the CRC32 of the trailer
    elif damage == "data":
        _corrupt(bad, len(bad.read_bytes()) // 2)
    else:  # the trailer and the end of the stream gone
        bad.write_bytes(bad.read_bytes()[:-40])
    assert wholegzip.decode_whole(str(bad), 352 + 2 * int(np.prod(SHAPE))) is None
    with pytest.raises(gpuimg.ImageFileError, match=r"bad\.nii\.gz"):
        list(Loader([good, str(bad)], 2))
    assert reads["whole"] == 1  # the good file; the bad one went to the streaming reader


def test_a_trailer_that_disagrees_is_not_trusted(tmp_path, monkeypatch):
    path = Path(_save(tmp_path / "v.nii.gz"))
    size = len(gzip.decompress(path.read_bytes()))
    decoded = []
    real = wholegzip.deflate.gzip_decompress
    monkeypatch.setattr(
        wholegzip.deflate, "gzip_decompress", lambda *a: decoded.append(a[1]) or real(*a)
    )
    assert wholegzip.decode_whole(path, size) is not None
    # More than the trailer's ISIZE (several members, or a header promising more than is there):
    assert wholegzip.decode_whole(path, size + 16) is None
    # More than deflate can expand the file to: nothing is decoded, nothing allocated for it.
    assert wholegzip.decode_whole(path, path.stat().st_size * MAX_DEFLATE_RATIO + 1) is None
    # A hostile trailer claiming 4 GiB is never an allocation size: it only fails to agree.
    forged = tmp_path / "forged.nii.gz"
    forged.write_bytes(path.read_bytes()[:-4] + (2**32 - 1).to_bytes(4, "little"))
    assert wholegzip.decode_whole(forged, size) is None
    assert decoded == [size]


def test_whole_gzip_declines_what_it_does_not_read(tmp_path):
    path = _save(tmp_path / "v.nii.gz")
    known = WholeGzip.read(gpuimg.load(path).dataobj, np.float32)
    assert known is not None
    whole, data = known
    out = np.zeros(SHAPE, np.float32)
    whole.scale_into(data, out)
    assert out.tobytes() == _expected(path).tobytes()
    assert WholeGzip.read(gpuimg.load(_save(tmp_path / "v.nii")).dataobj, np.float32) is None


def test_files_read_another_way_are_not_read_whole_first(tmp_path, monkeypatch):
    plain = _save(tmp_path / "plain.nii")
    multi = _save(tmp_path / "multi.nii.gz")
    _multi_member(Path(multi))
    bgzf = tmp_path / "bgzf.nii.gz"
    gpuimg.save(gpuimg.load(plain), str(bgzf), bgzf=True)
    whole_reads = []
    monkeypatch.setattr(wholegzip, "_buffer", lambda length: whole_reads.append(length))
    size = 352 + 2 * int(np.prod(SHAPE))
    # BGZF (read block by block) and a trailer that disagrees (several members): the header and the
    # trailer decide before the whole file is read into the buffer.
    assert wholegzip.decode_whole(bgzf, size) is None
    assert wholegzip.decode_whole(multi, size) is None
    assert whole_reads == []


@pytest.fixture
def loads(monkeypatch):
    """The files ``gpuimg.load`` parses, in order (the loader's workers included)."""
    parsed = []
    sniffed = gpuimg.loadsave._sniffed

    def counted(name, *args, **kwargs):
        parsed.append(Path(name).name)
        return sniffed(name, *args, **kwargs)

    monkeypatch.setattr(gpuimg.loadsave, "_sniffed", counted)
    return parsed


def _epoch(loader: Loader, paths: list[str]) -> None:
    """Read one epoch of ``loader`` (one batch of ``paths``) and check its values against nibabel."""
    (batch,) = [np.array(batch) for batch in loader]
    for got, path in zip(batch, paths, strict=True):
        assert got.tobytes() == _expected(path).tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_unchanged_headers_are_parsed_once(tmp_path, loads, order):
    paths = [_save(tmp_path / f"v{i}.nii.gz", slope=1.25, inter=-8.0) for i in range(3)]
    loader = Loader(paths, 3, order=order, num_threads=2)
    loads.clear()  # the constructor's load of the first file, for the shape
    _epoch(loader, paths)
    assert sorted(loads) == ["v0.nii.gz", "v1.nii.gz", "v2.nii.gz"]
    _epoch(loader, paths)
    _epoch(loader, paths)
    assert len(loads) == 3


def test_a_changed_file_is_loaded_again(tmp_path, loads):
    names = ["data", "slope", "shape", "bgzf", "gone"]
    paths = [_save(tmp_path / f"{name}.nii.gz", slope=2.0, inter=1.0) for name in names]
    loader = Loader(paths[:4], 4, shape=SHAPE)
    _epoch(loader, paths[:4])
    loads.clear()
    # The same header bytes with other values: decoded afresh, not parsed again.
    raw = bytearray(gzip.decompress(Path(paths[0]).read_bytes()))
    raw[352:] = bytes(reversed(raw[352:]))
    Path(paths[0]).write_bytes(gzip.compress(bytes(raw)))
    _save(Path(paths[1]), slope=0.5, inter=3.0)  # other scale factors, same size
    img = nib.Nifti1Image(np.ones((9, 7, 6), np.int16), np.eye(4))  # another shape: cropped
    nib.save(img, paths[2])
    gpuimg.save(gpuimg.load(paths[3]), paths[3], bgzf=True)  # read block by block now
    loads.clear()
    (batch,) = [np.array(batch) for batch in loader]
    assert sorted(loads) == ["bgzf.nii.gz", "shape.nii.gz", "slope.nii.gz"]
    for got, path in zip(batch, paths[:4], strict=True):
        assert got.tobytes() == _expected(path).tobytes()
    # A file that went away is reported by the load, naming it, as in the first epoch.
    loader = Loader(paths[4:], 1)
    _epoch(loader, paths[4:])
    Path(paths[4]).unlink()
    with pytest.raises(FileNotFoundError, match=r"gone\.nii\.gz"):
        list(loader)


def test_pairs_are_loaded_every_epoch(tmp_path, loads):
    # A pair's header is in its .hdr: decoding the .img.gz whole says nothing of it.
    path = str(tmp_path / "pair.img.gz")
    data = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    nib.save(nib.Nifti1Pair(data, np.eye(4)), path)
    loader = Loader([path], 1)
    _epoch(loader, [path])
    img = nib.load(path)
    img.header.set_slope_inter(3.0, 1.0)
    nib.save(nib.Nifti1Pair(data, np.eye(4), img.header), path)
    loads.clear()
    _epoch(loader, [path])
    assert loads == ["pair.img.gz"]
