"""`envspec models` in-process: usage, and every refusal that needs no network (one line, its exit code)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.models import local, lockfile
from envspec.models.plan import RemoteFile, plan_files
from envspec.project import Project
from envspec.spec.load import load_spec

from .conftest import BASE_SPEC, entry_yaml, spec_text


def write(tmp_path: Path, models: str) -> str:
    (tmp_path / "envspec.yml").write_text(spec_text(models))
    return str(tmp_path / "envspec.yml")


def lock_with_a_pickle(tmp_path: Path) -> None:
    spec = load_spec(tmp_path / "envspec.yml")
    data = b"\x80\x04pickle"
    listing = [RemoteFile("model.ckpt", len(data), sha256=hashlib.sha256(data).hexdigest())]
    locked = {n: lockfile.locked_model(e, "e" * 40, plan_files(e, listing)) for n, e in spec.document.models.items()}
    lockfile.write(local.lockfile_path(Project(tmp_path)), lockfile.build(locked))


def err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ")
    return lines[-1]


def test_models_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == ExitCode.USAGE
    assert "ACTION" in capsys.readouterr().err


def test_pull_before_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd"))
    assert main(["--spec", spec, "models", "pull"]) == ExitCode.CHECK_FAILED
    line = err_line(capsys)
    assert "no models lockfile" in line and "run `envspec models lock` first" in line


def test_pull_of_an_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd"))
    assert main(["--spec", spec, "models", "pull", "nope"]) == ExitCode.SPEC_INVALID
    assert "no model named 'nope'" in err_line(capsys)


def test_check_without_a_lockfile_names_the_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd") + entry_yaml("other"))
    assert main(["--spec", spec, "models", "lock", "--check"]) == ExitCode.CHECK_FAILED
    line = err_line(capsys)
    assert "no models lockfile for models sd, other" in line and "envspec models lock" in line


def test_a_stale_lockfile_stops_pull_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd", layout="single_file", file="model.ckpt"))
    lock_with_a_pickle(tmp_path)
    write(tmp_path, entry_yaml("sd", layout="single_file", file="model.ckpt", license="Apache-2.0"))
    assert main(["--spec", spec, "models", "pull"]) == ExitCode.CHECK_FAILED
    assert "stale for sd" in err_line(capsys)
    assert main(["--spec", spec, "models", "lock", "--check"]) == ExitCode.CHECK_FAILED
    assert "stale: sd (envspec.yml changed)" in err_line(capsys)


def test_a_pickle_is_refused_before_any_download(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd", layout="single_file", file="model.ckpt"))
    lock_with_a_pickle(tmp_path)
    assert main(["--spec", spec, "models", "pull"]) == ExitCode.UNTRUSTED
    line = err_line(capsys)
    assert "refusing pickled files" in line and "sd: model.ckpt" in line and "--trust-pickle" in line
    assert not (tmp_path / "models").exists()


def test_update_names_an_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, entry_yaml("sd"))
    assert main(["--spec", spec, "models", "lock", "--update", "nope"]) == ExitCode.SPEC_INVALID
    assert "--update nope: no such entry" in err_line(capsys)
    assert main(["--spec", spec, "models", "lock", "--check", "--update"]) == ExitCode.USAGE


def test_a_spec_without_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "envspec.yml").write_text(BASE_SPEC)
    spec = str(tmp_path / "envspec.yml")
    assert main(["--spec", spec, "models", "pull"]) == 0
    assert "no models in envspec.yml" in capsys.readouterr().err
    assert main(["--spec", spec, "models", "lock", "--check"]) == 0
