"""NIfTI-1 and NIfTI-2 headers against nibabel's: affines, coded fields, scaling, files."""

from __future__ import annotations

import gzip
import io
import warnings
from contextlib import nullcontext

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuimg.errors import HeaderDataError
from gpuimg.headers import Nifti1Header, Nifti1PairHeader, Nifti2Header, Nifti2PairHeader

from .nib_pairs import NIB_DATA, NIFTI_PAIRS, PAIR_BY_CLASS, assert_same_header

ENDIANS = ["<", ">"]
XFORM_CODES = [None, 0, 1, 2, 3, 4, 5, "unknown", "scanner", "aligned", "talairach", "mni"]


def _shaped(hdr):
    hdr.set_data_shape((4, 5, 6))
    hdr.set_zooms((2.0, 2.5, 3.0))


def _rotation(angles):
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


finite = st.floats(-100, 100, allow_nan=False)
angles = st.tuples(*[st.floats(-np.pi, np.pi)] * 3)
zooms = st.tuples(*[st.floats(0.1, 10)] * 3)
shears = st.tuples(*[st.floats(-0.5, 0.5)] * 3)


@st.composite
def affines(draw):
    affine = np.eye(4)
    rzs = _rotation(np.array(draw(angles))) @ np.diag(draw(zooms))
    if draw(st.booleans()):
        rzs[:, 2] *= -1
    if draw(st.booleans()):
        xy, xz, yz = draw(shears)
        rzs = rzs @ np.array([[1, xy, xz], [0, 1, yz], [0, 0, 1]])
    affine[:3, :3] = rzs
    affine[:3, 3] = draw(st.tuples(finite, finite, finite))
    return affine


@settings(max_examples=60, deadline=None)
@given(affine=affines(), pair_index=st.integers(0, 3), big=st.booleans())
def test_random_affines_match_nibabel(affine, pair_index, big):
    pair = NIFTI_PAIRS[pair_index]
    ours, theirs = pair.build(">" if big else "<", _shaped)
    for hdr in (ours, theirs):
        hdr.set_qform(affine, "scanner")
    # Quaternion maths in float64/longdouble then stored as float32: equal to the
    # last stored bit in nearly all cases, so compare the maths to 1e-6.
    np.testing.assert_allclose(ours.get_qform(), theirs.get_qform(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        ours.get_qform_quaternion().astype(float),
        theirs.get_qform_quaternion().astype(float),
        atol=1e-6,
    )
    assert ours.get_zooms() == theirs.get_zooms()
    for hdr in (ours, theirs):
        hdr.set_sform(affine, "mni")
    np.testing.assert_array_equal(ours.get_sform(), theirs.get_sform())
    np.testing.assert_array_equal(ours.get_best_affine(), theirs.get_best_affine())
    for hdr in (ours, theirs):
        hdr.set_sform(None)
    np.testing.assert_allclose(ours.get_best_affine(), theirs.get_best_affine(), atol=1e-6)


@pytest.mark.parametrize("pair", NIFTI_PAIRS, ids=str)
@pytest.mark.parametrize("endianness", ENDIANS)
def test_simple_qform_bytes_match(pair, endianness):
    affine = np.array([[0, -2.0, 0, 10], [3.0, 0, 0, -20], [0, 0, -1.5, 5], [0, 0, 0, 1]])

    def edit(hdr):
        _shaped(hdr)
        hdr.set_qform(affine)
        hdr.set_sform(affine * 2, code="talairach")

    ours, theirs = pair.build(endianness, edit)
    assert_same_header(ours, theirs)
    np.testing.assert_array_equal(ours.get_qform(), theirs.get_qform())


@pytest.mark.parametrize("pair", NIFTI_PAIRS[::2], ids=str)
@pytest.mark.parametrize("method", ["set_qform", "set_sform"])
def test_xform_code_defaults(pair, method):
    ours, theirs = pair.ours(), pair.theirs()
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    for affine_arg, code in [(affine, c) for c in XFORM_CODES] + [(None, None), (affine, None)]:
        getattr(ours, method)(affine_arg, code)
        getattr(theirs, method)(affine_arg, code)
        assert ours.binaryblock == theirs.binaryblock, (affine_arg, code)
    getter = method.replace("set", "get")
    assert getattr(ours, getter)(coded=True)[1] == getattr(theirs, getter)(coded=True)[1]
    getattr(ours, method)(None)
    assert getattr(ours, getter)(coded=True) == (None, 0)
    with pytest.raises(HeaderDataError, match="unknown xform code 'nowhere'"):
        getattr(ours, method)(affine, "nowhere")
    with pytest.raises(HeaderDataError, match=r"expected \(4, 4\)"):
        getattr(ours, method)(np.eye(3))


def test_best_affine_precedence():
    hdr = Nifti1Header()
    _shaped(hdr)
    np.testing.assert_array_equal(hdr.get_best_affine(), hdr.get_base_affine())
    hdr.set_qform(np.diag([4.0, 5, 6, 1]), code="scanner")
    np.testing.assert_array_equal(hdr.get_best_affine(), np.diag([4.0, 5, 6, 1]))
    hdr.set_sform(np.diag([7.0, 8, 9, 1]), code="aligned")
    np.testing.assert_array_equal(hdr.get_best_affine(), np.diag([7.0, 8, 9, 1]))


def test_qform_refuses_shears_when_asked_and_bad_fields():
    hdr = Nifti1Header()
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(HeaderDataError, match="shears"):
        hdr.set_qform(sheared, strip_shears=False)
    hdr.set_qform(np.eye(4))
    hdr["pixdim"][0] = 0
    with pytest.raises(HeaderDataError, match="qfac"):
        hdr.get_qform()
    hdr["pixdim"][0] = 1
    hdr["quatern_b"] = 2
    with pytest.raises(HeaderDataError, match="norm > 1"):
        hdr.get_qform()


@pytest.mark.parametrize("pair", NIFTI_PAIRS[::2], ids=str)
@pytest.mark.parametrize(
    ("slope", "inter"), [(1, 0), (2.5, -3), (0, 4), (np.nan, 0), (np.inf, 1), (-0.5, np.nan)]
)
def test_get_slope_inter_matches(pair, slope, inter):
    ours, theirs = pair.build("<", lambda hdr: hdr.structarr.__setitem__("scl_slope", slope))
    ours["scl_inter"] = theirs["scl_inter"] = inter
    if np.isfinite(slope) and slope and not np.isfinite(inter):
        with pytest.raises(HeaderDataError, match="expected a finite value"):
            ours.get_slope_inter()
    else:
        assert ours.get_slope_inter() == theirs.get_slope_inter()
        assert all(v is None or type(v) is float for v in ours.get_slope_inter())


def test_set_slope_inter_rules():
    hdr = Nifti1Header()
    hdr.set_slope_inter(2.0, 1.0)
    assert hdr.get_slope_inter() == (2.0, 1.0)
    hdr.set_slope_inter(None, None)
    assert np.isnan(hdr["scl_slope"]) and np.isnan(hdr["scl_inter"])
    for slope, inter, match in [
        (0, 0, "finite non-zero"),
        (np.inf, 0, "finite non-zero"),
        (1, -np.inf, "intercept is -inf"),
        (1, None, "both NaN or neither"),
    ]:
        with pytest.raises(HeaderDataError, match=match):
            hdr.set_slope_inter(slope, inter)


@pytest.mark.parametrize("pair", NIFTI_PAIRS[::2], ids=str)
def test_coded_fields_match(pair):
    def edit(hdr):
        hdr.set_xyzt_units("mm", "msec")
        hdr.set_dim_info(1, None, 2)
        hdr.set_intent("f test", (3, 12), name="stats")
        hdr["descrip"] = "a header"

    ours, theirs = pair.build("<", edit)
    assert ours.binaryblock == theirs.binaryblock
    assert ours.get_xyzt_units() == theirs.get_xyzt_units() == ("mm", "msec")
    assert ours.get_dim_info() == theirs.get_dim_info() == (1, None, 2)
    for code_repr in ("label", "code"):
        assert ours.get_intent(code_repr) == theirs.get_intent(code_repr)
    for field in ("datatype", "qform_code", "sform_code", "intent_code", "slice_code"):
        assert ours.get_value_label(field) == theirs.get_value_label(field)


def test_intent_rules():
    ours, theirs = Nifti1Header(), nib.Nifti1Header()
    for args in [("t test", (10,)), ("z score",), (3,), ("NIFTI_INTENT_BETA", (1, 2))]:
        ours.set_intent(*args)
        theirs.set_intent(*args)
        assert ours.binaryblock == theirs.binaryblock
    ours.set_intent(9999, allow_unknown=True)
    assert ours.get_intent() == ("unknown code 9999", (), "")
    with pytest.raises(HeaderDataError, match="takes 2 parameters, got 1"):
        ours.set_intent("f test", (1,))
    with pytest.raises(HeaderDataError, match="unknown intent code 9999"):
        ours.set_intent(9999)
    with pytest.raises(HeaderDataError, match="unknown intent code 'nonsense'"):
        ours.set_intent("nonsense", allow_unknown=True)
    with pytest.raises(HeaderDataError, match="expected None, 0, 1 or 2"):
        ours.set_dim_info(freq=3)


@pytest.mark.parametrize(
    "shape", [(163842, 1, 1), (163842, 1, 1, 3), (40000, 1, 1), (70000, 1, 1, 2)], ids=str
)
def test_freesurfer_shapes_match(shape):
    ours, theirs = Nifti1Header(), nib.Nifti1Header()
    for hdr in (ours, theirs):
        long_vector = shape[0] > np.iinfo(np.int16).max and shape[0] != 163842
        with pytest.warns(UserWarning, match="Freesurfer") if long_vector else nullcontext():
            hdr.set_data_shape(shape)
    assert ours.binaryblock == theirs.binaryblock
    assert ours.get_data_shape() == theirs.get_data_shape() == shape
    Nifti1Header(ours.binaryblock).validate("fs.nii", file_size=352 + 4 * int(np.prod(shape)))
    big = Nifti2Header()
    big.set_data_shape(shape)
    assert big.get_data_shape() == shape and big["dim"][1] == shape[0]


@pytest.mark.parametrize(
    ("name", "ours_class"),
    [
        ("nifti1.hdr", Nifti1PairHeader),
        ("nifti2.hdr", Nifti2PairHeader),
        ("example4d.nii.gz", Nifti1Header),
        ("example_nifti2.nii.gz", Nifti2Header),
    ],
)
def test_nibabel_test_data_fields_equal(name, ours_class):
    path = NIB_DATA / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as f:
        ours = ours_class.from_fileobj(f, filename=str(path))
    with opener(path, "rb") as f:
        theirs = PAIR_BY_CLASS[ours_class].theirs.from_fileobj(f)
    assert_same_header(ours, theirs)
    for key in theirs.keys():
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_array_equal(ours.get_qform(), theirs.get_qform())
    assert ours.get_xyzt_units() == theirs.get_xyzt_units()
    assert ours.get_intent() == theirs.get_intent()
    assert [(e.code, e.content) for e in ours.extensions] == [
        (e.get_code(), e.content) for e in theirs.extensions
    ]
    buffer = io.BytesIO()
    ours.write_to(buffer)
    with opener(path, "rb") as f:
        assert f.read(len(buffer.getvalue())) == buffer.getvalue()


@pytest.mark.parametrize("pair", NIFTI_PAIRS, ids=str)
@pytest.mark.parametrize("endianness", ENDIANS)
def test_write_read_round_trip_matches_nibabel(pair, endianness):
    ours, theirs = pair.build(endianness, _shaped)
    out_ours, out_theirs = io.BytesIO(), io.BytesIO()
    ours.write_to(out_ours)
    theirs.write_to(out_theirs)
    assert out_ours.getvalue() == out_theirs.getvalue()
    assert ours.get_data_offset() == theirs.get_data_offset()
    expected_offset = pair.ours.single_vox_offset if pair.ours.is_single else 0
    assert ours.get_data_offset() == expected_offset
    out_ours.seek(0)
    again = pair.ours.from_fileobj(out_ours)
    assert again == ours and again.endianness == endianness
    out_ours.seek(0)
    assert pair.theirs.from_fileobj(out_ours) == theirs


def test_magic_and_may_contain_header():
    for cls, magic in [
        (Nifti1Header, b"n+1"),
        (Nifti1PairHeader, b"ni1"),
        (Nifti2Header, b"n+2"),
        (Nifti2PairHeader, b"ni2"),
    ]:
        hdr = cls()
        assert hdr["magic"] == magic
        assert cls.may_contain_header(hdr.binaryblock)
        assert cls.may_contain_header(hdr.as_byteswapped().binaryblock)
        assert not cls.may_contain_header(hdr.binaryblock[:-1])
    assert not Nifti1Header.may_contain_header(Nifti2Header().binaryblock[:348])
    assert not Nifti2Header.may_contain_header(Nifti1Header().binaryblock + bytes(192))


def test_conversion_between_single_and_pair_sets_magic():
    single = Nifti2Header()
    single.set_data_shape((2, 3))
    pair = Nifti2PairHeader.from_header(single)
    assert pair["magic"] == b"ni2" and pair.get_data_shape() == (2, 3)
    assert Nifti1Header.from_header(pair)["magic"] == b"n+1"


def test_conversion_checks_the_result():
    single = Nifti1Header()
    single.set_data_offset(352)
    with pytest.raises(
        HeaderDataError,
        match=r"^<Nifti2Header.from_header>: header field 'vox_offset' is 352, expected >= 544",
    ):
        Nifti2Header.from_header(single)
    assert Nifti2Header.from_header(single, check=False).get_data_offset() == 352


@pytest.mark.parametrize("code", range(1, 7))
@pytest.mark.parametrize(("start", "end", "count"), [(0, 0, 7), (1, 5, 7), (0, 6, 8)])
def test_slice_times_match_nibabel(code, start, end, count):
    ours, theirs = Nifti1Header(), nib.Nifti1Header()
    for hdr in (ours, theirs):
        hdr.set_dim_info(slice=2)
        hdr.set_data_shape((1, 1, count))
        hdr.set_slice_duration(0.1)
        hdr["slice_code"], hdr["slice_start"], hdr["slice_end"] = code, start, end
    times = ours.get_slice_times()
    np.testing.assert_allclose(
        [np.nan if t is None else t for t in times],
        [np.nan if t is None else t for t in theirs.get_slice_times()],
    )
    for hdr in (ours, theirs):
        hdr["slice_code"] = hdr["slice_start"] = hdr["slice_end"] = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Multiple slice orders satisfy"
            hdr.set_slice_times(times)
    for field in ("slice_code", "slice_start", "slice_end", "slice_duration"):
        assert ours[field] == theirs[field]


def test_slice_times_need_the_slice_axis():
    hdr = Nifti1Header()
    with pytest.raises(HeaderDataError, match="slice dimension not set"):
        hdr.set_slice_duration(0.1)
    hdr.set_dim_info(slice=2)
    hdr.set_data_shape((2, 2, 3))
    with pytest.raises(HeaderDataError, match='slice code is "unknown"'):
        hdr.get_slice_times()
    with pytest.raises(HeaderDataError, match="None in the middle"):
        hdr.set_slice_times([0.0, None, 0.2])
