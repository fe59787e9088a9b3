"""nibabel's battery of header checks: each finds one kind of problem in the fields, and may fix it.

A check is a function ``check(header, fix) -> Report``: it looks at the header's fields and reports a
problem (a level from 10 to 50, following :mod:`logging`, and a message), and with ``fix`` True repairs the
header in place where it can, saying how in the report's ``fix_msg``. A report of level 0 means no problem.
Each header class lists its checks in its ``check_battery`` (see :data:`ANALYZE`, :data:`SPM`,
:data:`NIFTI1`, :data:`NIFTI2`); the headers' ``check_fix`` and ``diagnose_binaryblock`` run them (see
:mod:`gpuimg.headers.structured`). The messages, levels and fixes are nibabel 5's.

>>> from gpuimg.headers import AnalyzeHeader
>>> hdr = AnalyzeHeader()
>>> hdr['bitpix'] = 8
>>> [r.message for r in run_battery(hdr, fix=True) if r.problem_level]
['bitpix does not match datatype; setting bitpix to match datatype']
>>> int(hdr['bitpix'])
32
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpuimg.errors import HeaderDataError
from gpuimg.headers.codes import XFORM_CODES


@dataclass
class Report:
    """What one check found in a header, and what its fix did (nibabel's ``batteryrunners.Report``).

    Parameters
    ----------
    error : exception class or None
        What to raise when the problem is at or above the error level (None: never raise).
    problem_level : int
        0 (no problem) to 50 (critical), as :mod:`logging` levels; after a fix, the level of the problem found.
    problem_msg : str
        What is wrong ('' when nothing is).
    fix_msg : str
        What the fix did ('' when no fix ran).
    """

    error: type[Exception] | None = Exception
    problem_level: int = 0
    problem_msg: str = ""
    fix_msg: str = ""

    @property
    def message(self) -> str:
        """The problem, followed by the fix when there was one (``'problem; fix'``)."""
        return f"{self.problem_msg}; {self.fix_msg}" if self.fix_msg else self.problem_msg

    def log_raise(
        self, logger: logging.Logger, error_level: int = 40, *, source: str | None = None
    ) -> None:
        """Log the problem at its level; raise :attr:`error` when the level is `error_level` or above.

        Parameters
        ----------
        logger : logging.Logger
            Where the message goes (a report of level 0, no problem, logs nothing).
        error_level : int, optional
            The lowest problem level that raises.
        source : str, optional
            The file the header came from, put before the problem in the raised error's message.
        """
        if self.problem_level:
            logger.log(self.problem_level, self.message)
        if self.problem_level and self.problem_level >= error_level and self.error is not None:
            raise self.error(
                self.problem_msg if source is None else f"{source}: {self.problem_msg}"
            )


#: A check: ``check(header, fix)`` returns the report of the problem it looked for.
Check = Callable[[Any, bool], Report]


def run_battery(header: Any, *, fix: bool) -> list[Report]:
    """Run the checks of `header`'s class on it, in order; with `fix`, each fixes the header in place.

    Returns
    -------
    reports : list of Report
        One per check, in the order of the class's ``check_battery``.
    """
    return [check(header, fix) for check in type(header).check_battery]


def _problem(level: int, message: str) -> Report:
    return Report(HeaderDataError, level, message)


# -- Analyze -------------------------------------------------------------------------------------------


def check_sizeof_hdr(hdr: Any, fix: bool) -> Report:
    """``sizeof_hdr`` must be the format's header size (level 30; the fix sets it)."""
    if hdr["sizeof_hdr"] == hdr.sizeof_hdr:
        return Report(HeaderDataError)
    report = _problem(30, f"sizeof_hdr should be {hdr.sizeof_hdr}")
    if fix:
        hdr["sizeof_hdr"] = hdr.sizeof_hdr
        report.fix_msg = f"set sizeof_hdr to {hdr.sizeof_hdr}"
    return report


def _bitpix_of(hdr: Any, code: int) -> int | None:
    """Bits per voxel of data type `code` (0 for a known type without a numpy dtype; None: unknown)."""
    table = hdr.data_types
    if code not in table.codes():
        return None
    return table.dtype_for(code).itemsize * 8 if code in table.supported_codes() else 0


def check_datatype(hdr: Any, fix: bool) -> Report:
    """``datatype`` must be a code the format knows and gpuimg can read (level 40; no fix)."""
    code = int(hdr["datatype"])
    bitpix = _bitpix_of(hdr, code)
    if bitpix:
        return Report(HeaderDataError)
    problem = "not recognized" if bitpix is None else "not supported"
    report = _problem(40, f"data code {code} {problem}")
    if fix:
        report.fix_msg = "not attempting fix"
    return report


def check_bitpix(hdr: Any, fix: bool) -> Report:
    """``bitpix`` must match ``datatype`` (level 10; the fix sets it from the data type)."""
    bitpix = _bitpix_of(hdr, int(hdr["datatype"]))
    if bitpix is None:
        report = _problem(10, "no valid datatype to fix bitpix")
        if fix:
            report.fix_msg = "no way to fix bitpix"
        return report
    if bitpix == hdr["bitpix"]:
        return Report(HeaderDataError)
    report = _problem(10, "bitpix does not match datatype")
    if fix:
        hdr["bitpix"] = bitpix
        report.fix_msg = "setting bitpix to match datatype"
    return report


def check_pixdims(hdr: Any, fix: bool) -> Report:
    """Voxel sizes ``pixdim[1:4]`` must be positive (0: level 30, set to 1; negative: level 35, abs)."""
    pixdim = hdr["pixdim"]
    spatial = pixdim[1:4].copy()
    problems, fixes = [], []
    level = 0
    if np.any(spatial == 0):
        level = 30
        problems.append("pixdim[1,2,3] should be non-zero")
        fixes.append("setting 0 dims to 1")
        spatial[spatial == 0] = 1
    if np.any(spatial < 0):
        level = 35
        problems.append("pixdim[1,2,3] should be positive")
        fixes.append("setting to abs of pixdim values")
        spatial = np.abs(spatial)
    if not level:
        return Report(HeaderDataError)
    report = _problem(level, " and ".join(problems))
    if fix:
        pixdim[1:4] = spatial
        report.fix_msg = " and ".join(fixes)
    return report


# -- SPM -----------------------------------------------------------------------------------------------


def check_origin(hdr: Any, fix: bool) -> Report:
    """SPM's voxel ``origin`` far outside the image (level 20; left as set, not used for the affine)."""
    origin = hdr["origin"][:3]
    dims = hdr["dim"][1:4]
    if not np.any(origin) or (np.all(origin > -dims) and np.all(origin < dims * 2)):
        return Report(HeaderDataError)
    report = _problem(20, "very large origin values relative to dims")
    if fix:
        report.fix_msg = "leaving as set, ignoring for affine"
    return report


# -- NIfTI ---------------------------------------------------------------------------------------------


def check_qfac(hdr: Any, fix: bool) -> Report:
    """``pixdim[0]`` (qfac) must be 1 or -1 (level 20; the fix sets 1)."""
    if hdr["pixdim"][0] in (-1, 1):
        return Report(HeaderDataError)
    report = _problem(20, "pixdim[0] (qfac) should be 1 (default) or -1")
    if fix:
        hdr["pixdim"][0] = 1
        report.fix_msg = "setting qfac to 1"
    return report


def check_magic(hdr: Any, fix: bool) -> Report:
    """``magic`` must be the single-file or the pair magic (level 45; no fix)."""
    magic = hdr["magic"].item()
    if magic in (hdr.pair_magic, hdr.single_magic):
        return Report(HeaderDataError)
    report = _problem(45, f"magic string {magic.decode('latin1')!r} is not valid")
    if fix:
        report.fix_msg = "leaving as is, but future errors are likely"
    return report


def check_offset(hdr: Any, fix: bool) -> Report:
    """``vox_offset``: past the header in a single file (level 40, raised to the minimum), else a
    multiple of 16 for SPM (level 30, left as is); 0 means "unset" and passes."""
    offset = hdr["vox_offset"].item()
    if offset == 0:
        return Report(HeaderDataError)
    if hdr["magic"].item() == hdr.single_magic and offset < hdr.single_vox_offset:
        report = _problem(40, f"vox offset {int(offset)} too low for single file nifti1")
        if fix:
            hdr["vox_offset"] = hdr.single_vox_offset
            report.fix_msg = f"setting to minimum value of {hdr.single_vox_offset}"
        return report
    if not offset % 16:
        return Report(HeaderDataError)
    report = _problem(30, f"vox offset (={offset:g}) not divisible by 16, not SPM compatible")
    if fix:
        report.fix_msg = "leaving at current value"
    return report


def _check_xform_code(field: str, hdr: Any, fix: bool) -> Report:
    code = int(hdr[field])
    if code in XFORM_CODES.codes():
        return Report(HeaderDataError)
    report = _problem(30, f"{field} {code} not valid")
    if fix:
        hdr[field] = 0
        report.fix_msg = "setting to 0"
    return report


def check_qform_code(hdr: Any, fix: bool) -> Report:
    """``qform_code`` must be a known xform code (level 30; the fix sets 0, "unknown")."""
    return _check_xform_code("qform_code", hdr, fix)


def check_sform_code(hdr: Any, fix: bool) -> Report:
    """``sform_code`` must be a known xform code (level 30; the fix sets 0, "unknown")."""
    return _check_xform_code("sform_code", hdr, fix)


_GOOD_EOL = (13, 10, 26, 10)


def check_eol(hdr: Any, fix: bool) -> Report:
    """NIfTI-2's ``eol_check`` bytes must be 13, 10, 26, 10 (all 0: level 20; else level 40, the file
    went through end-of-line conversion); the fix sets them."""
    found = hdr["eol_check"]
    if np.all(found == _GOOD_EOL):
        return Report(HeaderDataError)
    if np.all(found == 0):
        report = _problem(20, "EOL check all 0")
    else:
        report = _problem(
            40, "EOL check not 0 or 13, 10, 26, 10; data may be corrupted by EOL conversion"
        )
    if fix:
        hdr["eol_check"] = _GOOD_EOL
        report.fix_msg = "setting EOL check to 13, 10, 26, 10"
    return report


#: The batteries of the header classes, in the order nibabel runs them.
ANALYZE: Sequence[Check] = (check_sizeof_hdr, check_datatype, check_bitpix, check_pixdims)
SPM: Sequence[Check] = (*ANALYZE, check_origin)
NIFTI1: Sequence[Check] = (
    *ANALYZE,
    check_qfac,
    check_magic,
    check_offset,
    check_qform_code,
    check_sform_code,
)
NIFTI2: Sequence[Check] = (*NIFTI1, check_eol)
