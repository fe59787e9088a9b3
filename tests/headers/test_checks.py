"""The headers' check battery (check_fix, diagnose_binaryblock), with nibabel's headers as the oracle."""

from __future__ import annotations

import io
import logging

import nibabel as nib
import numpy as np
import pytest
from nibabel.batteryrunners import BatteryRunner

import gpuimg
from gpuimg import imageglobals
from gpuimg.errors import HeaderDataError, HeaderError, WrapStructError
from gpuimg.headers import AnalyzeHeader, Nifti1Header
from gpuimg.headers.checks import Report, run_battery

from .nib_pairs import ALL_PAIRS, Pair


def _set(field, value):
    def edit(hdr):
        hdr[field] = value

    return edit


def _set_item(field, index, value):
    def edit(hdr):
        hdr[field][index] = value

    return edit


def _both(*edits):
    def edit(hdr):
        for one in edits:
            one(hdr)

    return edit


#: name -> (edit making the defect, the field the class must have for it to apply).
DEFECTS = {
    "none": (lambda hdr: None, "sizeof_hdr"),
    "sizeof_hdr": (_set("sizeof_hdr", 350), "sizeof_hdr"),
    "unknown-datatype": (_set("datatype", -1), "sizeof_hdr"),
    "void-datatype": (_set("datatype", 0), "sizeof_hdr"),
    "datatype-all": (_set("datatype", 255), "sizeof_hdr"),
    "float128": (_set("datatype", 1536), "sizeof_hdr"),
    "bitpix": (_set("bitpix", 16), "sizeof_hdr"),
    "negative-pixdim": (_set_item("pixdim", 1, -2), "sizeof_hdr"),
    "zero-pixdim": (_set_item("pixdim", 2, 0), "sizeof_hdr"),
    "zero-and-negative-pixdim": (
        _both(_set_item("pixdim", 1, 0), _set_item("pixdim", 3, -2)),
        "sizeof_hdr",
    ),
    "nan-slope": (_set("scl_slope", np.nan), "scl_slope"),
    "inf-intercept": (_set("scl_inter", np.inf), "scl_inter"),
    "large-origin": (_set_item("origin", 0, 101), "origin"),
    "qfac": (_set_item("pixdim", 0, 0), "qform_code"),
    "magic": (_set("magic", b"ooh"), "magic"),
    "offset-not-16": (_set("vox_offset", 600), "magic"),
    "offset-in-header": (_set("vox_offset", 10), "magic"),
    "qform_code": (_set("qform_code", -1), "qform_code"),
    "sform_code": (_set("sform_code", 6), "sform_code"),
    "eol-zero": (_set("eol_check", 0), "eol_check"),
    "eol-corrupt": (_set("eol_check", (13, 10, 0, 10)), "eol_check"),
    "several": (
        _both(_set("bitpix", 8), _set_item("pixdim", 2, -1), _set("sizeof_hdr", 1)),
        "sizeof_hdr",
    ),
}


def _cases(defects) -> list:
    """(pair, defect) for each defect whose field the pair's header has."""
    return [
        pytest.param(pair, defect, id=f"{pair}-{defect}")
        for pair in ALL_PAIRS
        for defect in defects
        if DEFECTS[defect][1] in pair.ours.template_dtype.names
    ]


def _defective(pair: Pair, defect: str, endianness: str = "<") -> tuple:
    ours, theirs = pair.build(endianness, DEFECTS[defect][0])
    assert ours.binaryblock == theirs.binaryblock
    return ours, theirs


def _state(report) -> tuple:
    return report.problem_level, report.problem_msg, report.fix_msg


@pytest.mark.parametrize(("pair", "defect"), _cases(DEFECTS))
def test_reports_and_fixes_match_nibabel(pair, defect):
    ours, theirs = _defective(pair, defect)
    battery = BatteryRunner(type(theirs)._get_checks())
    expected = [_state(r) for r in battery.check_only(theirs)]
    assert [_state(r) for r in run_battery(ours.copy(), fix=False)] == expected
    assert ours.diagnose_binaryblock(ours.binaryblock) == theirs.diagnose_binaryblock(
        theirs.binaryblock
    )
    fixed, reports = battery.check_fix(theirs.copy())
    ours_fixed = ours.copy()
    assert [_state(r) for r in run_battery(ours_fixed, fix=True)] == [_state(r) for r in reports]
    assert ours_fixed.binaryblock == fixed.binaryblock


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=0)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _check_fix_outcome(header, error_level: int) -> tuple:
    """(records logged, error raised or None, fixed block) of ``header.copy().check_fix``."""
    logger = logging.getLogger(f"gpuimg.test.checks.{id(header)}")
    logger.propagate = False
    logger.setLevel(1)
    capture = _Capture()
    logger.addHandler(capture)
    copy = header.copy()
    try:
        copy.check_fix(logger=logger, error_level=error_level)
        error = None
    except Exception as exc:
        error = (type(exc).__name__, str(exc))
    finally:
        logger.removeHandler(capture)
    return capture.records, error, copy.binaryblock


@pytest.mark.parametrize("error_level", [10, 30, 40, 50])
@pytest.mark.parametrize(
    ("pair", "defect"), _cases(["sizeof_hdr", "unknown-datatype", "several", "magic"])
)
def test_check_fix_logs_and_raises_as_nibabel(pair, defect, error_level):
    ours, theirs = _defective(pair, defect, ">")
    assert _check_fix_outcome(ours, error_level) == _check_fix_outcome(theirs, error_level)


def test_problem_raises_header_data_error_at_the_error_level():
    hdr = Nifti1Header()
    hdr["qform_code"] = -1
    hdr.check_fix(error_level=31)
    assert hdr["qform_code"] == 0
    hdr["qform_code"] = -1
    with pytest.raises(HeaderDataError, match="^qform_code -1 not valid$"):
        hdr.check_fix(error_level=30)
    assert hdr["qform_code"] == 0  # every fix is applied before the error


@pytest.fixture
def test_logger():
    saved = imageglobals.logger, imageglobals.error_level
    stream = io.StringIO()
    logger = logging.getLogger("gpuimg.test.checks.globals")
    logger.setLevel(10)
    logger.addHandler(logging.StreamHandler(stream))
    imageglobals.logger = logger
    yield stream
    logger.handlers.clear()
    imageglobals.logger, imageglobals.error_level = saved


def test_check_fix_uses_the_imageglobals_logger_and_error_level(test_logger):
    hdr = AnalyzeHeader()
    hdr["bitpix"] = 16
    hdr.copy().check_fix()
    assert (
        test_logger.getvalue()
        == "bitpix does not match datatype; setting bitpix to match datatype\n"
    )
    imageglobals.error_level = 10
    with pytest.raises(HeaderDataError, match="^bitpix does not match datatype$"):
        hdr.copy().check_fix()
    with imageglobals.ErrorLevel(11):
        hdr.copy().check_fix()
    assert imageglobals.error_level == 10


def test_logging_output_suppressor(test_logger):
    bad = bytes(AnalyzeHeader.template_dtype.itemsize)
    with imageglobals.LoggingOutputSuppressor(), pytest.raises(HeaderDataError):
        AnalyzeHeader(bad)
    assert test_logger.getvalue() == ""
    with pytest.raises(HeaderDataError):
        AnalyzeHeader(bad)
    assert "data code 0 not supported" in test_logger.getvalue()


@pytest.mark.parametrize("cls", [pair.ours for pair in ALL_PAIRS], ids=lambda c: c.__name__)
def test_construction_from_bytes_runs_check_fix(cls):
    calls = []

    class Recording(cls):
        def check_fix(self, *args, **kwargs):
            calls.append(args)

    block = cls().binaryblock
    Recording(block)
    Recording.from_fileobj(io.BytesIO(block + bytes(4)))
    assert len(calls) == 2
    Recording(block, check=False)
    Recording().as_byteswapped()
    assert len(calls) == 2
    zeros = bytes(len(block))
    with pytest.raises(HeaderDataError, match="^data code 0 not supported$"):
        cls(zeros)
    assert cls(zeros, check=False)["datatype"] == 0


@pytest.mark.parametrize("cls", [pair.ours for pair in ALL_PAIRS], ids=lambda c: c.__name__)
def test_wrong_length_raises_wrap_struct_error(cls):
    block = cls().binaryblock
    for wrong in (block[:-1], block + b"\0"):
        with pytest.raises(
            WrapStructError, match="^<fileobj>: (truncated header|header block too long)"
        ):
            cls(wrong)
    with pytest.raises(HeaderError, match="^x.hdr: truncated header"):
        cls.from_fileobj(io.BytesIO(block[:-1]), filename="x.hdr")


def test_str_lists_the_fields_as_nibabel():
    for pair in ALL_PAIRS:
        ours, theirs = pair.build(">", _set("datatype", 4))
        if "intent_code" in ours:
            for hdr in (ours, theirs):
                hdr["intent_code"], hdr["slice_code"], hdr["sform_code"] = 2, 99, 7
        assert str(ours).splitlines()[1:] == str(theirs).splitlines()[1:]
        assert str(ours).splitlines()[0] == f"{type(ours)} object, endian='>'"


def test_load_fixes_and_logs_as_nibabel(tmp_path, caplog):
    path = tmp_path / "img.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    raw[80:84] = np.float32(0).tobytes()  # pixdim[1] = 0
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="gpuimg.global"):
        img = gpuimg.load(path)
    assert img.header.get_zooms()[0] == 1
    assert caplog.messages == ["pixdim[1,2,3] should be non-zero; setting 0 dims to 1"]
    with (
        imageglobals.ErrorLevel(30),
        pytest.raises(HeaderDataError, match=f"^{path}: pixdim\\[1,2,3\\] should be non-zero$"),
    ):
        gpuimg.load(path)


def test_report_message_and_equality():
    report = Report(HeaderDataError, 30, "problem")
    assert report.message == "problem"
    report.fix_msg = "fixed"
    assert report.message == "problem; fixed"
    assert report == Report(HeaderDataError, 30, "problem", "fixed")
    assert report != Report(HeaderDataError, 20, "problem", "fixed")


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=str)
def test_from_fileobj_takes_nibabels_arguments(pair: Pair) -> None:
    """``from_fileobj(fileobj, endianness, check)`` positionally and by keyword, as nibabel's."""
    theirs = pair.theirs(endianness=">")
    theirs.set_data_shape((2, 3, 4))
    block = theirs.binaryblock + bytes(4)
    for endianness in (None, ">"):
        ours = pair.ours.from_fileobj(io.BytesIO(block), endianness, False)
        nib_hdr = pair.theirs.from_fileobj(io.BytesIO(block), endianness, False)
        assert ours.endianness == nib_hdr.endianness == ">"
        assert ours.binaryblock == nib_hdr.binaryblock
    # An explicit byte order is taken as given, even against the block's own, as by nibabel.
    ours = pair.ours.from_fileobj(io.BytesIO(block), endianness="<", check=False)
    nib_hdr = pair.theirs.from_fileobj(io.BytesIO(block), endianness="<", check=False)
    assert ours.endianness == nib_hdr.endianness == "<"
    assert ours.binaryblock == nib_hdr.binaryblock


@pytest.mark.parametrize("endianness", ["<", ">"])
def test_spm99_slope_is_nibabels_0d_float32(endianness: str) -> None:
    """SPM99's get_slope_inter gives the header's 0-d float32 slope, as nibabel (so ``slope * data``
    stays float32), and None for a slope of 0, NaN or inf."""
    from gpuimg.headers import Spm99AnalyzeHeader

    ours, theirs = (
        Spm99AnalyzeHeader(endianness=endianness),
        nib.Spm99AnalyzeHeader(endianness=endianness),
    )
    for value in (2.5, 0.0, np.nan, np.inf):
        ours["scl_slope"] = theirs["scl_slope"] = value
        got, expected = ours.get_slope_inter(), theirs.get_slope_inter()
        if expected[0] is None:
            assert got == expected
            continue
        assert got[1] is None and isinstance(got[0], np.ndarray) and got[0].shape == ()
        assert got[0].dtype == expected[0].dtype and got[0] == expected[0]
        data = np.arange(4, dtype=np.int16)
        assert (got[0] * data).dtype == (expected[0] * data).dtype == np.float32
