"""noxfile sessions driven by a stand-in for nox's Session that runs envspec in-process."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import subprocess
from pathlib import Path
from typing import Any

import pytest

from envspec.cli.main import main
from envspec.doctor.recommend import default_target
from envspec.spec.load import load_spec


class FakeSession:
    """What the verify session uses of ``nox.Session``. ``run`` captures output like nox does:
    with ``silent=True`` it returns stdout, plus stderr unless ``stderr`` is not nox's default
    ``subprocess.STDOUT``."""

    venv_backend = "virtualenv"

    def __init__(self, posargs: list[str], tmp: Path) -> None:
        self.posargs = posargs
        self.tmp = tmp
        self.env: dict[str, str | None] = {}  # nox passes it to every command; None drops a variable
        self.calls: list[tuple[str, ...]] = []
        self.installs: list[tuple[str, ...]] = []

    def install(self, *args: str) -> None:
        self.installs.append(args)

    def create_tmp(self) -> str:
        return str(self.tmp)

    def log(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        raise AssertionError(message)

    def run(self, *args: str, silent: bool = False, stderr: Any = subprocess.STDOUT, **_: Any) -> str | None:
        self.calls.append(args)
        if args[:2] == ("envspec", "up"):
            return None  # the real run is tests/test_up_e2e.py
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args[1:]))
        return (out.getvalue() + (err.getvalue() if stderr == subprocess.STDOUT else "")) if silent else None


@functools.cache  # loaded once: nox refuses (a warning now, an error later) to register a session twice
def _noxfile(repo: Path) -> Any:
    spec = importlib.util.spec_from_file_location("envspec_noxfile", repo / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration  # the doctor probes this machine (nvidia-smi, sysctl... where present)
def test_verify_without_target_runs_up_for_the_recommended_target(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The doctor prints progress on stderr; the session must still read its JSON."""
    monkeypatch.chdir(repo)
    session = FakeSession([], tmp_path)
    _noxfile(repo).verify(session)
    up = [c for c in session.calls if c[:2] == ("envspec", "up")]
    assert len(up) == 1
    recommended = default_target(load_spec(repo / "envspec.yml"))
    assert up[0][2] == recommended.name
    assert ("--allow-cpu" in up[0]) == (recommended.smoke_device != "cpu")
    assert "--locked" in up[0]  # as the CI job: it never re-locks
    # as the CI job: the models are pulled only once their lockfile is committed
    assert ("--no-models" in up[0]) == (not (repo / "lockfiles" / "models.lock.yml").is_file())


def test_lint_runs_zizmor_offline_on_the_github_workflows(repo: Path, tmp_path: Path) -> None:
    """zizmor audits what GitHub reads, with no GitHub API calls; its non-zero exit on a finding fails lint."""

    class Recorder(FakeSession):
        def run(self, *args: str, **_: Any) -> None:
            self.calls.append(args)

    session = Recorder([], tmp_path)
    _noxfile(repo).lint(session)
    zizmor = [call for call in session.calls if call[0] == "zizmor"]
    assert len(zizmor) == 1
    assert "--offline" in zizmor[0] and zizmor[0][-1] == ".github/workflows/"
    assert "--no-exit-codes" not in zizmor[0]


@pytest.mark.integration  # runs the real `pip config list`
def test_uv_is_given_pips_find_links_and_constraints_and_rebuilds_the_project(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv reads no pip configuration: a machine whose CPU torch wheel lies in a find-links folder
    would get PyPI's CUDA build from uv. The noxfile passes pip's settings (files and PIP_* variables)
    to uv, once each; pip itself is left to its own configuration."""
    wheels, constraints = tmp_path / "wheels", tmp_path / "constraints.txt"
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[install]\nconstraint = {constraints}\nfind-links = {wheels}\n", encoding="utf-8")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_FIND_LINKS", f"{wheels} {tmp_path / 'extra'}")
    noxfile = _noxfile(repo)
    assert noxfile.nox.options.default_venv_backend == "uv|virtualenv"  # uv where nox finds it, else pip
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    noxfile._pip_files_for_uv.cache_clear()
    try:
        uv = FakeSession([], tmp_path)
        uv.venv_backend = "uv"
        noxfile.install(uv, "-e", ".[test,smoke]")
        pip = FakeSession([], tmp_path)
        noxfile.install(pip, "-e", ".[test,smoke]")
    finally:
        noxfile._pip_files_for_uv.cache_clear()
    ((*options, editable, project),) = uv.installs
    assert (editable, project) == ("-e", ".[test,smoke]")
    pairs = list(zip(options[::2], options[1::2], strict=True))
    for pair in [("--find-links", str(wheels)), ("--find-links", str(tmp_path / "extra")),
                 ("--constraint", str(constraints)), ("--reinstall-package", "envspec")]:  # fmt: skip
        assert pairs.count(pair) == 1, (pair, pairs)
    assert pip.installs == [("-e", ".[test,smoke]")]
    # the session's commands write bytecode (each child process would compile envspec again otherwise),
    # so uv need not compile everything up front
    assert uv.env == pip.env == {"PYTHONDONTWRITEBYTECODE": None} and "--compile-bytecode" not in options
