"""A file without read permission is a PermissionError naming it, from load and from the command line.

Root reads any file, so as root each check runs in a forked child that has become user ``nobody``.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import tempfile

import nibabel as nib
import numpy as np
import pytest

import gpuimg
from gpuimg import cli

NOBODY = 65534

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture
def unreadable():
    """An image file with mode 0 in a folder anyone may enter (tmp_path's parents are private)."""
    folder = tempfile.mkdtemp(prefix="gpuimg-perm-")
    os.chmod(folder, 0o777)
    path = os.path.join(folder, "secret.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.eye(4)), path)
    os.chmod(path, 0)
    yield path
    shutil.rmtree(folder)


def _as_other_user(function):
    """``function()``'s result (or the exception it raised), run as a user who cannot read the file."""
    if os.geteuid() != 0:
        try:
            return function()
        except Exception as error:
            return error
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                outcome = function()
            except Exception as error:
                outcome = error
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pickle.load(pipe)
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_load_raises_permission_error_naming_the_file(unreadable):
    error = _as_other_user(lambda: gpuimg.load(unreadable))
    assert isinstance(error, PermissionError), repr(error)
    assert error.filename == unreadable


def _cli(*argv: str) -> tuple[int, str]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(list(argv))
    return code, stderr.getvalue()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("command", ["info", "convert", "bench"])
def test_cli_says_permission_denied(unreadable, command):
    argv = {
        "info": ["info", unreadable],
        "convert": ["convert", unreadable, os.path.join(tempfile.gettempdir(), "x.nii")],
        "bench": ["bench", "--repeat", "1", "--device", "cpu", unreadable],
    }[command]
    code, message = _as_other_user(lambda: _cli(*argv))
    assert code == cli.EXIT_FILE
    assert f"{unreadable}: Permission denied" in message
    assert "cannot work out file type" not in message.lower()
