"""Inputs beyond every bound are one line, never a traceback or a hang (issue #21 families 5 and 7).

A 4,301-digit integer (over Python's int-conversion limit) in envspec.yml or models.lock.yml;
``ENVSPEC_MAX_PACKAGE_BYTES=1e309`` (float infinity); a FIFO, ``/dev/zero`` or a folder where a file
is read (the spec, the models lockfile).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envspec.cli.main import main
from envspec.errors import ExitCode, SpecError
from envspec.fsutil import NotRegularFile, read_regular_text
from envspec.models import lockfile
from envspec.settings import Settings

HUGE = "1" * 4301


def test_a_4301_digit_integer_in_envspec_yml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "envspec.yml"
    spec.write_text(f"version: 1\nname: {HUGE}\n")
    assert main(["--spec", str(spec), "targets"]) == ExitCode.SPEC_INVALID
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too long" in err and "Traceback" not in err


def test_a_4301_digit_integer_in_models_lock_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "models.lock.yml"
    path.write_text(f"version: 1\ninput_hash: sha256:{'0' * 64}\nmodels: {{}}\nsize: {HUGE}\n")
    with pytest.raises(SpecError, match="damaged lockfile"):
        lockfile.read(path)


@pytest.mark.parametrize("value", ["1e309", "inf", "nan", "-5", "0", HUGE, "12 GiB"])
def test_max_package_bytes_out_of_range_is_one_line(value: str) -> None:
    with pytest.raises(SpecError, match="ENVSPEC_MAX_PACKAGE_BYTES") as info:
        Settings.from_environ({"ENVSPEC_MAX_PACKAGE_BYTES": value}).fetch_limits()
    assert "\n" not in info.value.one_line()


def test_max_package_bytes_in_range_is_taken() -> None:
    assert Settings.from_environ({"ENVSPEC_MAX_PACKAGE_BYTES": "1e6"}).fetch_limits().max_package_bytes == 1_000_000
    assert Settings.from_environ({"ENVSPEC_STALL_TIMEOUT": "0.5"}).fetch_limits().stall_s == 0.5


@pytest.mark.parametrize("value", ["many", "-1", "101", "2.5", HUGE])
def test_download_retries_out_of_range_is_one_line(value: str) -> None:
    with pytest.raises(SpecError, match=r"ENVSPEC_DOWNLOAD_RETRIES=.* is not a whole number from 0 to 100") as info:
        Settings.from_environ({"ENVSPEC_DOWNLOAD_RETRIES": value}).fetch_limits()
    assert "\n" not in info.value.one_line()


def test_download_retries_default_to_the_downloaders() -> None:
    from envspec import download

    assert Settings().fetch_limits().retries == download.RETRIES == download.Limits(max_bytes=1).retries
    assert Settings.from_environ({"ENVSPEC_DOWNLOAD_RETRIES": "0"}).fetch_limits().retries == 0


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and devices are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_spec_or_models_lock_that_is_no_regular_file_never_hangs(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "fifo":
        path = tmp_path / "envspec.yml"
        os.mkfifo(path)  # no writer: a blocking open or read would wait forever
    elif kind == "dev-zero":
        path = Path("/dev/zero")  # an endless read
    else:
        path = tmp_path
    assert main(["--spec", str(path), "targets"]) == ExitCode.SPEC_INVALID
    assert "not a regular file" in capsys.readouterr().err
    with pytest.raises(SpecError, match="not a regular file"):
        lockfile.read(path)


def test_read_regular_text_caps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 2048)
    with pytest.raises(NotRegularFile, match="larger than 1024 bytes"):
        read_regular_text(path, max_bytes=1024)
    assert read_regular_text(path, max_bytes=4096) == "x" * 2048


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and devices are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_install_from_a_lockfile_that_is_no_regular_file_never_hangs(
    project_copy: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVSPEC_HOST_SUBDIR", "linux-64")
    lock = Path("/dev/zero")
    if kind == "fifo":
        lock = tmp_path / "x.lock"
        os.mkfifo(lock)
    args = ["--spec", str(project_copy / "envspec.yml"), "install", "linux-cuda", "--lockfile", str(lock)]
    code = main([*args, "--prefix", str(tmp_path / "env"), "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code != 0 and "not a regular file" in err and "Traceback" not in err, err
    assert not (tmp_path / "env").exists()


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_lock_check_with_a_fifo_lockfile_never_hangs(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"]) == 0
    lockfiles = project_copy / "lockfiles"
    lockfiles.mkdir(exist_ok=True)
    os.mkfifo(lockfiles / "linux-cuda.lock")
    os.mkfifo(lockfiles / "linux-cuda.conda-lock.yml")
    code = main(["--spec", str(project_copy / "envspec.yml"), "lock", "--check", "--target", "linux-cuda"])
    err = capsys.readouterr().err
    assert code != 0 and "not a regular file" in err and "Traceback" not in err, err


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_render_check_with_a_fifo_in_place_of_a_generated_file_never_hangs(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(project_copy / "envspec.yml")
    assert main(["--spec", spec, "render"]) == 0
    generated = project_copy / "environment-linux-cuda.yml"
    generated.unlink()
    os.mkfifo(generated)
    assert main(["--spec", spec, "render", "--check"]) == ExitCode.CHECK_FAILED
    assert main(["--spec", spec, "render"]) == 0
    assert generated.is_file() and "GENERATED" in generated.read_text()
    capsys.readouterr()


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_a_fifo_pip_txt_never_hangs_lock_or_install(tmp_path: Path) -> None:
    from envspec.install import pip as install_pip
    from envspec.lock import pypi

    os.mkfifo(tmp_path / "t.pip.txt")
    assert pypi.stored_hash(tmp_path / "t.pip.txt") is None  # stale: lock writes it anew
    lock_text = f"@EXPLICIT\n# pip demo @ https://h/demo-1.0-py3-none-any.whl#sha256={'0' * 64}\n"
    with pytest.raises(NotRegularFile):
        install_pip.plan_pip(lock_text, tmp_path / "t.lock", "lockfiles/t.lock", {})
