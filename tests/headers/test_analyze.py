"""Analyze and SPM headers against nibabel's."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from nibabel.spm2analyze import Spm2AnalyzeHeader as NibSpm2

from gpuimg.errors import HeaderDataError, HeaderTypeError
from gpuimg.headers import AnalyzeHeader, Nifti1Header, Spm2AnalyzeHeader, SpmAnalyzeHeader
from gpuimg.headers.structured import NATIVE

from .nib_pairs import ALL_PAIRS, ANALYZE_PAIRS, NIFTI_PAIRS, RGB, assert_same_header

ENDIANS = ["<", ">"]


def _edit(dtype, shape=(2, 3, 4), zooms=(1.5, 2.0, 3.25)):
    def edit(hdr):
        hdr.set_data_dtype(dtype)
        hdr.set_data_shape(shape)
        hdr.set_zooms(zooms)

    return edit


@pytest.mark.parametrize("endianness", ENDIANS)
@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
def test_default_header_matches(pair, endianness):
    ours, theirs = pair.build(endianness, lambda hdr: None)
    assert_same_header(ours, theirs)


@pytest.mark.parametrize("endianness", ENDIANS)
@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
def test_every_dtype_matches(pair, endianness):
    for dtype in pair.dtypes:
        ours, theirs = pair.build(endianness, _edit(dtype))
        assert_same_header(ours, theirs)
        if dtype.fields is None and dtype.itemsize > 1:
            assert ours.get_data_dtype().isnative == (endianness == NATIVE)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
@pytest.mark.parametrize(
    "shape", [(), (7,), (4, 1), (3, 5, 2), (2, 3, 1, 4), (2, 1, 2, 1, 2, 1, 3)], ids=str
)
def test_shapes_and_zooms_match(pair, shape):
    zooms = tuple(0.5 + i for i in range(len(shape)))
    ours, theirs = pair.build("<", _edit(np.int16, shape, zooms))
    assert_same_header(ours, theirs)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
def test_binary_block_round_trip_detects_byte_order(pair):
    for endianness in ENDIANS:
        ours, theirs = pair.build(endianness, _edit(np.float64))
        again = pair.ours(theirs.binaryblock)
        assert again.endianness == endianness
        assert again == ours
        assert again == ours.as_byteswapped()
        assert ours.as_byteswapped().binaryblock == theirs.as_byteswapped().binaryblock


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
def test_dtype_names_codes_and_types(pair):
    ours = pair.ours()
    for spec in ("int16", "float32", "uint8", 4, np.int32, np.dtype(">f8"), "RGB", RGB, float):
        ours.set_data_dtype(spec)
        theirs = pair.theirs()
        theirs.set_data_dtype(spec)
        assert ours.binaryblock == theirs.binaryblock


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("implausible", "not recognized"),
        ("none", "known but not supported"),
        (np.void, "not supported"),
        (np.longdouble, "not supported"),
        ("float128", "not supported"),
        (np.bool_, "not supported"),
    ],
    ids=str,
)
def test_unsupported_dtypes_raise(pair, spec, match):
    with pytest.raises(HeaderDataError, match=match):
        pair.ours().set_data_dtype(spec)


@pytest.mark.parametrize("spec", ["int8", np.uint16, "int64", np.complex128, "RGBA"])
def test_nifti_only_dtypes_refused_by_analyze(spec):
    with pytest.raises(HeaderDataError, match="not (supported|recognized)"):
        AnalyzeHeader().set_data_dtype(spec)
    Nifti1Header().set_data_dtype(spec)


@pytest.mark.parametrize("spec", [int, "int"])
def test_nifti_refuses_bare_int(spec):
    with pytest.raises(HeaderDataError, match="sized integer"):
        Nifti1Header().set_data_dtype(spec)


def test_set_data_shape_refuses_what_dim_cannot_hold():
    with pytest.raises(HeaderDataError, match="does not fit"):
        AnalyzeHeader().set_data_shape((2**15, 2, 2))
    with pytest.raises(HeaderDataError, match="does not fit"):
        AnalyzeHeader().set_data_shape((1,) * 8)


def test_set_zooms_checks_count_and_sign():
    hdr = AnalyzeHeader()
    hdr.set_data_shape((2, 3))
    with pytest.raises(HeaderDataError, match="expected 2"):
        hdr.set_zooms((1, 2, 3))
    with pytest.raises(HeaderDataError, match=">= 0"):
        hdr.set_zooms((1, -2))


def test_analyze_slope_inter_only_identity():
    hdr = AnalyzeHeader()
    assert hdr.get_slope_inter() == (None, None)
    for slope, inter in ((None, None), (1, 0), (np.nan, np.nan), (1.0, None)):
        hdr.set_slope_inter(slope, inter)
    with pytest.raises(HeaderTypeError, match="cannot store slope 2"):  # nibabel's error
        hdr.set_slope_inter(2, 0)


@pytest.mark.parametrize("pair", ANALYZE_PAIRS[1:], ids=str)
@pytest.mark.parametrize("slope", [0.0, np.nan, np.inf, -np.inf, 2.5, -1.0])
def test_spm_get_slope_inter_matches(pair, slope):
    ours, theirs = pair.build("<", lambda hdr: hdr.__setitem__("scl_slope", slope))
    assert_same_header(ours, theirs)


def test_spm_set_slope_inter():
    hdr = SpmAnalyzeHeader()
    hdr.set_slope_inter(2.0)
    assert hdr.get_slope_inter() == (2.0, None)
    hdr.set_slope_inter(None)
    assert hdr.get_slope_inter() == (None, None)
    with pytest.raises(HeaderDataError, match="finite non-zero"):
        hdr.set_slope_inter(0)
    with pytest.raises(HeaderTypeError, match="cannot store intercept"):  # nibabel's error
        hdr.set_slope_inter(4.0, 3.0)
    assert hdr["scl_slope"] == 4.0  # stored before the intercept is refused, as nibabel does


@pytest.mark.parametrize(
    "fields",
    [
        {"scl_slope": 2.0, "scl_inter": 0.5},
        {"scl_slope": 2.0, "scl_inter": np.nan},
        {"scl_slope": 0, "glmax": 110, "glmin": 10, "cal_max": 0.8, "cal_min": 0.2},
        {"scl_slope": np.nan, "glmax": 110, "glmin": 10, "cal_max": 0.8, "cal_min": 0.8},
        {"scl_slope": np.inf, "glmax": 5, "glmin": 5, "cal_max": 0.8, "cal_min": 0.2},
        {"scl_slope": 0, "glmax": -3, "glmin": 7, "cal_max": -1.5, "cal_min": 2.25},
    ],
    ids=str,
)
def test_spm2_slope_inter_rules(fields):
    ours, theirs = Spm2AnalyzeHeader(), NibSpm2()
    for key, value in fields.items():
        ours[key] = theirs[key] = value
    np.testing.assert_allclose(
        np.array(ours.get_slope_inter(), dtype=float),
        np.array(theirs.get_slope_inter(), dtype=float),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("pair", ANALYZE_PAIRS[1:], ids=str)
@pytest.mark.parametrize(
    "origin", [(0, 0, 0), (3, 4, 5), (-1, 2, 3), (20, 1, 1), (2, 3, 14), (-2, 1, 1)], ids=str
)
def test_spm_origin_affine_matches(pair, origin):
    def edit(hdr):
        _edit(np.int16, (3, 5, 7), (0.9375, 1.1, 2.7))(hdr)
        hdr["origin"][:3] = origin

    ours, theirs = pair.build("<", edit)
    assert_same_header(ours, theirs)


def test_spm_origin_from_affine():
    ours, theirs = ANALYZE_PAIRS[1].build("<", _edit(np.int16, (3, 5, 7), (3, 2, 1)))
    affine = np.diag([3.0, 2, 1, 1])
    affine[:3, 3] = [-6, -6, -4]
    ours.set_origin_from_affine(affine)
    theirs.set_origin_from_affine(affine)
    assert_same_header(ours, theirs)
    with pytest.raises(HeaderDataError, match=r"expected \(4, 4\)"):
        ours.set_origin_from_affine(np.eye(3))


def test_mapping_access_copy_and_pickle():
    hdr = AnalyzeHeader()
    hdr["descrip"] = "a description"
    assert hdr["descrip"] == b"a description"
    assert "descrip" in hdr and "magic" not in hdr
    assert hdr.keys()[0] == "sizeof_hdr" and len(hdr.values()) == len(hdr.keys())
    assert dict(hdr.items())["datatype"] == 16
    assert hdr.get("magic", "absent") == "absent"
    twin = hdr.copy()
    twin["descrip"] = "changed"
    assert hdr != twin and hdr["descrip"] == b"a description"
    assert pickle.loads(pickle.dumps(hdr)) == hdr
    assert hdr != "not a header"
    assert hdr.get_value_label("datatype") == "float32"
    with pytest.raises(ValueError, match="not a coded field"):
        hdr.get_value_label("descrip")


@pytest.mark.parametrize("source", ALL_PAIRS, ids=str)
@pytest.mark.parametrize("target", ALL_PAIRS, ids=str)
def test_from_header_converts_like_nibabel(source, target):
    def edit(hdr):
        _edit(np.int16, (2, 3, 4), (1.5, 2.0, 2.5))(hdr)
        hdr["descrip"] = "converted"

    ours_src, theirs_src = source.build("<", edit)
    if source.is_nifti:
        for hdr in (ours_src, theirs_src):
            hdr.set_sform(np.diag([2.0, 3.0, 4.0, 1.0]), code="mni")
            hdr.set_qform(np.diag([1.0, 2.0, 3.0, 1.0]), code="scanner")
            hdr.set_data_offset(0)
    ours = target.ours.from_header(ours_src)
    theirs = target.theirs.from_header(theirs_src)
    assert type(ours) is target.ours
    assert_same_header(ours, theirs)
    assert target.ours.from_header(None) == target.theirs.from_header(None)


def test_from_header_refuses_unsupported_dtype():
    src = Nifti1Header()
    src.set_data_dtype(np.int8)
    with pytest.raises(HeaderDataError, match="does not support it"):
        AnalyzeHeader.from_header(src)


@pytest.mark.parametrize("rescale", [True, False])
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
@pytest.mark.parametrize("pair", ANALYZE_PAIRS + NIFTI_PAIRS[:1], ids=str)
def test_data_to_and_from_fileobj_match_nibabel(pair, dtype, rescale):
    """The bytes written, the factors stored and the values read back are nibabel's (or its error)."""
    data = np.random.default_rng(0).normal(size=(3, 4, 5)) * 100
    results = []
    for hdr in (pair.ours(), pair.theirs()):
        hdr.set_data_shape(data.shape)
        hdr.set_data_dtype(dtype)
        stream = io.BytesIO()
        try:
            hdr.data_to_fileobj(data, stream, rescale=rescale)
        except Exception as error:  # noqa: BLE001 - nibabel's and gpuimg's classes differ: compare names
            results.append(type(error).__name__)
            continue
        back = hdr.data_from_fileobj(io.BytesIO(stream.getvalue()))
        results.append((stream.getvalue(), np.float64(hdr.get_slope_inter()[0] or 1), back))
    ours, theirs = results
    if isinstance(theirs, str):
        assert ours == theirs
        return
    assert ours[0] == theirs[0] and ours[1] == theirs[1]
    # strict: the dtype too (nibabel scales SPM99 integers in float32, its slope's type)
    np.testing.assert_array_equal(ours[2], theirs[2], strict=True)


def test_data_to_fileobj_checks_the_shape():
    hdr = AnalyzeHeader()
    hdr.set_data_shape((2, 3))
    with pytest.raises(HeaderDataError, match=r"shape \(3, 2\), expected the header's \(2, 3\)"):
        hdr.data_to_fileobj(np.zeros((3, 2)), io.BytesIO())
