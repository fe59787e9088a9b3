"""Saves are atomic, durable and keep modes: a failure anywhere leaves the old file byte-identical."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest

import gpuimg
from gpuimg import cli, config
from gpuimg.formats import analyze
from gpuimg.io import atomic
from gpuimg.io.recompress import rewrite_as_bgzf

FORMATS = ["out.nii", "out.nii.gz", "out.img", "out.img.gz", "out.nii.bz2", "out.img.zst"]


def _image(nbytes: int, seed: int = 0) -> gpuimg.Nifti1Image:
    """An int16 image of about ``nbytes`` of random (incompressible) data."""
    rng = np.random.default_rng(seed)
    data = rng.integers(-(2**15), 2**15, (nbytes // 2 // 64, 8, 8), dtype=np.int16)
    return gpuimg.Nifti1Image(data, np.eye(4))


def _snapshot(folder) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _save_old(folder, name: str) -> dict[str, bytes]:
    gpuimg.save(_image(20_000, seed=1), str(folder / name))
    return _snapshot(folder)


class _FullDisk(atomic._TemporaryFile):
    """A file on a disk with ``room`` bytes left: writes beyond it fail with ENOSPC."""

    room = 0

    def write(self, data) -> int:
        written = getattr(self, "_written", 0)
        if written + memoryview(data).nbytes > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._written = written + memoryview(data).nbytes
        return super().write(data)


def _single_file(name: str) -> bool:
    return name.startswith("out.nii")


# -- failures leave the old file intact ----------------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("room", [0, 100_000], ids=["fails-at-final-flush", "fails-mid-write"])
def test_out_of_space_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, name, room):
    before = _save_old(tmp_path, name)
    monkeypatch.setattr(atomic, "_TemporaryFile", _FullDisk)
    monkeypatch.setattr(_FullDisk, "room", room)
    with pytest.raises(OSError, match="No space left on device") as caught:
        gpuimg.save(_image(400_000), str(tmp_path / name))
    assert _snapshot(tmp_path) == before
    if _single_file(name):
        assert caught.value.filename == str(tmp_path / name)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("stage", ["fsync", "replace", "link"])
def test_failure_while_finishing_leaves_old_file(tmp_path, monkeypatch, name, stage):
    before = _save_old(tmp_path, name)

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic.os, stage, fail)
    with pytest.raises(OSError, match="Input/output error") as caught:
        gpuimg.save(_image(50_000), str(tmp_path / name))
    assert _snapshot(tmp_path) == before
    assert caught.value.filename in {str(tmp_path / f) for f in before}
    assert ".tmp" not in str(caught.value)


def test_error_in_the_data_leaves_old_file(tmp_path, monkeypatch):
    before = _save_old(tmp_path, "out.nii.gz")

    def broken(*args, **kwargs):
        raise ValueError("scaling broke")

    monkeypatch.setattr(analyze, "write_array", broken)
    with pytest.raises(ValueError, match="scaling broke"):
        gpuimg.save(_image(50_000), str(tmp_path / "out.nii.gz"))
    assert _snapshot(tmp_path) == before


def test_without_unnamed_files_the_hidden_temporary_goes_too(tmp_path, monkeypatch):
    before = _save_old(tmp_path, "out.nii.gz")
    monkeypatch.setattr(atomic, "_FD_LINKS", str(tmp_path / "no-such-folder"))
    monkeypatch.setattr(atomic, "_TemporaryFile", _FullDisk)
    with pytest.raises(OSError, match="No space left on device"):
        gpuimg.save(_image(50_000), str(tmp_path / "out.nii.gz"))
    assert _snapshot(tmp_path) == before
    monkeypatch.undo()
    monkeypatch.setattr(atomic, "_FD_LINKS", str(tmp_path / "no-such-folder"))
    gpuimg.save(_image(50_000), str(tmp_path / "out.nii.gz"))
    assert os.listdir(tmp_path) == ["out.nii.gz"]


def test_error_names_the_target_not_a_temporary(tmp_path):
    target = str(tmp_path / "missing-folder" / "out.nii.gz")
    with pytest.raises(FileNotFoundError) as caught:
        gpuimg.save(_image(1000), target)
    assert caught.value.filename == target
    assert ".tmp" not in str(caught.value)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (needs root and a kernel that lets this container mount; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)]
    try:
        subprocess.run(mount, check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True, timeout=30)


@pytest.mark.parametrize("name", FORMATS)
def test_real_full_disk_leaves_old_file(small_tmpfs, name):
    before = _save_old(small_tmpfs, name)
    with pytest.raises(OSError, match="No space left on device") as caught:
        gpuimg.save(_image(400_000), str(small_tmpfs / name))
    assert _snapshot(small_tmpfs) == before
    assert caught.value.filename in {str(small_tmpfs / f) for f in before}
    assert ".tmp" not in str(caught.value)


# -- a killed save leaves nothing behind ---------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="no O_TMPFILE: the leftover is documented")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_save_killed_mid_write_leaves_old_file_and_nothing_else(tmp_path):
    before = _save_old(tmp_path, "out.nii.gz")
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: signal once the save is writing, then wait to be killed
        try:
            original = analyze.write_array

            def stall(fileobj, *args, **kwargs):
                original(fileobj, *args, **kwargs)
                fileobj.flush()
                os.write(ready_write, b"!")
                time.sleep(60)

            analyze.write_array = stall
            gpuimg.save(_image(300_000), str(tmp_path / "out.nii.gz"))
        finally:
            os._exit(1)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"!"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(ready_read)
    assert _snapshot(tmp_path) == before


# -- modes and durability ------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the umask for a test (restored after)."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077], ids=oct)
def test_new_files_get_the_umask_mode(tmp_path, umask, name, mask):
    umask(mask)
    gpuimg.save(_image(1000), str(tmp_path / name))
    for saved in os.listdir(tmp_path):
        assert stat.S_IMODE(os.stat(tmp_path / saved).st_mode) == 0o666 & ~mask


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664, 0o600], ids=oct)
def test_replaced_files_keep_their_mode(tmp_path, umask, name, mode):
    umask(0o077)
    _save_old(tmp_path, name)
    for saved in os.listdir(tmp_path):
        os.chmod(tmp_path / saved, mode)
    gpuimg.save(_image(1000), str(tmp_path / name))
    for saved in os.listdir(tmp_path):
        assert stat.S_IMODE(os.stat(tmp_path / saved).st_mode) == mode


def test_bgzf_rewrite_out_of_space_leaves_old_file(tmp_path, monkeypatch):
    before = _save_old(tmp_path, "t1.nii.gz")
    monkeypatch.setattr(atomic, "_TemporaryFile", _FullDisk)
    with pytest.raises(OSError, match="No space left on device") as caught:
        rewrite_as_bgzf(tmp_path / "t1.nii.gz")
    assert caught.value.filename == str(tmp_path / "t1.nii.gz")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("bgzf", [False, True])
def test_convert_in_place_keeps_the_mode(tmp_path, umask, capsys, bgzf):
    umask(0o077)
    path = str(tmp_path / "t1.nii.gz")
    _save_old(tmp_path, "t1.nii.gz")
    os.chmod(path, 0o644)
    argv = ["convert", "--bgzf", path] if bgzf else ["convert", path, path]
    assert cli.main(argv) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path) == ["t1.nii.gz"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another owner")
def test_replaced_file_keeps_its_owner_where_permitted(tmp_path):
    _save_old(tmp_path, "out.nii")
    os.chown(tmp_path / "out.nii", 65534, 65534)
    gpuimg.save(_image(1000), str(tmp_path / "out.nii"))
    status = os.stat(tmp_path / "out.nii")
    assert (status.st_uid, status.st_gid) == (65534, 65534)


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_setting(tmp_path, monkeypatch, fsync):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        atomic.os, "fsync", lambda fd: synced.append(os.fstat(fd).st_mode) or real_fsync(fd)
    )
    with config.configure(fsync=fsync):
        gpuimg.save(_image(1000), str(tmp_path / f"{uuid.uuid4().hex}.img"))
    kinds = sorted("folder" if stat.S_ISDIR(mode) else "file" for mode in synced)
    assert kinds == (["file", "file", "folder"] if fsync else [])


@pytest.mark.parametrize("room", [0, 100_000], ids=["fails-at-final-flush", "fails-mid-write"])
def test_out_of_space_with_bgzf_leaves_old_file(tmp_path, monkeypatch, room):
    before = _save_old(tmp_path, "out.nii.gz")
    monkeypatch.setattr(atomic, "_TemporaryFile", _FullDisk)
    monkeypatch.setattr(_FullDisk, "room", room)
    with pytest.raises(OSError, match="No space left on device") as caught:
        gpuimg.save(_image(400_000), str(tmp_path / "out.nii.gz"), bgzf=True)
    assert _snapshot(tmp_path) == before
    assert caught.value.filename == str(tmp_path / "out.nii.gz")
    monkeypatch.undo()
    gpuimg.save(_image(400_000), str(tmp_path / "bgzf.nii.gz"), bgzf=True)
    np.testing.assert_array_equal(
        gpuimg.load(tmp_path / "bgzf.nii.gz").get_fdata(), _image(400_000).get_fdata()
    )


# -- the replaced file ----------------------------------------------------------------------------


def _freed_on(monkeypatch, inode: int) -> list[str]:
    """Names of the threads that close the last descriptor of ``inode`` once it has no name."""
    threads: list[str] = []
    real_close = os.close

    def close(fd: int) -> None:
        found = os.fstat(fd)
        if found.st_ino == inode and found.st_nlink == 0:
            threads.append(threading.current_thread().name)
        real_close(fd)

    monkeypatch.setattr(atomic.os, "close", close)
    return threads


@pytest.mark.skipif(os.name != "posix", reason="an open file is replaced only on POSIX")
def test_a_large_replaced_file_is_freed_off_the_saving_thread(tmp_path, monkeypatch):
    """The rename would free the old file's blocks inline (25-80 ms for 33-67 MB here)."""
    target = tmp_path / "out.nii"
    gpuimg.save(_image(2 << 20, seed=1), str(target))
    old = os.stat(target)
    threads = _freed_on(monkeypatch, old.st_ino)
    new_image = _image(2 << 20, seed=2)
    gpuimg.save(new_image, str(target))
    deadline = time.monotonic() + 10
    while not threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads and threads[0] != threading.current_thread().name
    assert os.stat(target).st_ino != old.st_ino
    np.testing.assert_array_equal(gpuimg.load(target).get_fdata(), new_image.get_fdata())


def test_small_files_links_and_symlinks_are_replaced_as_before(tmp_path, monkeypatch):
    small = tmp_path / "small.nii"
    _save_old(tmp_path, "small.nii")  # 20 kB: not worth a thread
    linked = tmp_path / "linked.nii"
    gpuimg.save(_image(2 << 20), str(linked))
    os.link(linked, tmp_path / "other-name.nii")  # replacing it frees nothing
    pointed = tmp_path / "pointed.nii"
    gpuimg.save(_image(2 << 20), str(pointed))
    os.symlink(pointed, tmp_path / "symlink.nii")
    started = []
    monkeypatch.setattr(atomic, "_close_later", started.append)
    for name in (small, linked, tmp_path / "symlink.nii"):
        gpuimg.save(_image(1000), str(name))
    assert started == []
    assert (tmp_path / "other-name.nii").stat().st_size > 2 << 20
    assert not (tmp_path / "symlink.nii").is_symlink() and pointed.stat().st_size > 2 << 20
