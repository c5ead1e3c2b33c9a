from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from envspec.errors import BusyError
from envspec.fsutil import atomic_create_bytes, atomic_write_bytes, atomic_write_text, current_umask, run_lock


def test_atomic_write_creates_with_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = tmp_path / "a" / "f.txt"
        atomic_write_text(target, "hello\n")
    finally:
        os.umask(old)
    assert target.read_text() == "hello\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_atomic_write_keeps_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_run_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    with run_lock(lock, "locking"), pytest.raises(BusyError, match="already locking"), run_lock(lock, "locking"):
        pass
    with run_lock(lock, "locking"):
        pass


def test_atomic_write_on_a_python_without_fchmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows before Python 3.13 has no os.fchmod (the win-cuda CI job runs 3.11): the atomic write
    takes the Windows branch and still writes, with the mode set by name."""
    import importlib.util
    import sys

    from envspec import fsutil

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delattr(os, "fchmod")
    # a second copy of the module, executed as on Windows: reloading envspec.fsutil itself would give
    # its classes (NotRegularFile...) new identities that the modules which imported them never see
    spec = importlib.util.spec_from_file_location("envspec_fsutil_as_on_windows", fsutil.__file__)
    assert spec is not None and spec.loader is not None
    windows = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(windows)
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o640)
    windows.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert "Windows" in (windows._set_mode.__doc__ or "")  # the Windows branch (os.fchmod is gone here)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_refused_read_says_what_the_file_is_or_which_cap_it_passed(tmp_path: Path) -> None:
    from envspec.fsutil import NotRegularFile, read_regular_bytes

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegularFile, match=r"^not a regular file \(a FIFO\): ") as info:
        read_regular_bytes(tmp_path / "fifo")
    assert (info.value.kind, info.value.cap) == ("a FIFO", None)
    with pytest.raises(NotRegularFile, match=r"\(a directory\)") as info:
        read_regular_bytes(tmp_path)
    assert info.value.kind == "a directory"
    (tmp_path / "big").write_bytes(b"x" * 11)
    with pytest.raises(NotRegularFile, match=r"^larger than 10 bytes: ") as info:
        read_regular_bytes(tmp_path / "big", 10)
    assert (info.value.kind, info.value.cap) == (None, 10)
    assert read_regular_bytes(tmp_path / "big", 10, head=True) == b"x" * 10


def test_atomic_create_never_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "new.yml"
    atomic_create_bytes(target, b"first\n")
    with pytest.raises(FileExistsError):
        atomic_create_bytes(target, b"second\n")
    assert target.read_bytes() == b"first\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["new.yml"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~current_umask()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_run_lock_and_filelock_exclude_each_other(tmp_path: Path) -> None:
    """POSIX: run_lock takes the lock as the filelock package does (an older envspec's), without it."""
    from filelock import FileLock, Timeout

    lock = tmp_path / "run.lock"
    with FileLock(str(lock)), pytest.raises(BusyError):  # noqa: SIM117 - the order is the test
        with run_lock(lock, "locking"):
            pass
    with run_lock(lock, "locking"), pytest.raises(Timeout):
        FileLock(str(lock)).acquire(timeout=0)


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_run_lock_does_not_import_filelock(tmp_path: Path) -> None:
    """(filelock brings asyncio: 25-70 ms of every lock's start-up.)"""
    import subprocess

    code = (
        "import sys; from pathlib import Path; from envspec.fsutil import run_lock\n"
        "with run_lock(Path(sys.argv[1]), 'locking'): pass\n"
        "print('filelock' in sys.modules, 'asyncio' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "l")], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
