"""The edge of the CLI: global options parsed as options, settings read once, one target choice for
every command, the machine probed once per run, answers that need no spec load."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from envspec.cli.main import build_parser, main, requested_command
from envspec.doctor.probe import RecordedProbe
from envspec.errors import ExitCode
from envspec.render.context import PACKAGE_TEMPLATES
from envspec.settings import Settings

DATA = Path(__file__).resolve().parent.parent / "data" / "doctor"


def recording(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    data.update(changes)
    return data


# --------------------------------------------------------------------------------------------
# Global options are options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--spec", "report", "targets"], "targets"),
        (["--spec=up", "doctor", "--target", "up"], "doctor"),
        (["--debug", "lock", "--target", "report"], "lock"),
        (["targets", "--json"], "targets"),
        (["--help"], None),
        (["--spec"], None),
        ([], None),
        (["frobnicate"], None),
    ],
)
def test_the_command_is_found_after_the_global_options(argv: list[str], command: str | None) -> None:
    assert requested_command(argv) == command


def test_a_spec_named_like_a_command(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`envspec --spec report targets` lists the targets of the file `report` (was an AttributeError)."""
    shutil.copy2(repo / "envspec.yml", tmp_path / "report")
    monkeypatch.chdir(tmp_path)
    assert main(["--spec", "report", "targets"], environ={}) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split()[0] == "TARGET" and "linux-cuda" in captured.out
    assert "Traceback" not in captured.err


def test_help_lists_every_command_without_importing_one() -> None:
    parser = build_parser()
    text = parser.format_help()
    for name in ("targets", "render", "lock", "install", "doctor", "up"):
        assert name in text
    # a command's own options appear only when that command is asked for
    assert "--allow-cpu" not in build_parser().format_help()
    assert "--allow-cpu" in build_parser("up")._subparsers._group_actions[0].choices["up"].format_help()  # type: ignore[union-attr]


def test_settings_come_from_the_environment_given_and_options_win(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = str(repo / "envspec.yml")
    assert main(["targets", "--json"], environ={"ENVSPEC_SPEC": spec}) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    missing = str(tmp_path / "none.yml")
    assert main(["--spec", missing, "targets"], environ={"ENVSPEC_SPEC": spec}) == ExitCode.SPEC_INVALID
    assert missing in capsys.readouterr().err
    settings = Settings.from_environ({"ENVSPEC_DEBUG": "0", "ENVSPEC_MIRRORS": "conda-forge=file:///m"})
    assert settings.debug is False and settings.mirrors == "conda-forge=file:///m"
    assert Settings.from_environ({"ENVSPEC_DEBUG": "1"}).debug is True


def test_the_limits_and_the_package_cache_come_from_the_settings() -> None:
    """Read once at the edge and passed down: the stages never read these variables (#20)."""
    from envspec.cli.common import Context
    from envspec.cli.install import InstallRequest
    from envspec.settings import FetchLimits, LockLimits

    assert Settings().lock_limits() == LockLimits(900, 1 << 30, FetchLimits(60, 8 << 30))
    environ = {
        "ENVSPEC_LOCK_TIMEOUT": "1800",
        "ENVSPEC_LOCK_MEMORY": "2e9",
        "ENVSPEC_STALL_TIMEOUT": "5",
        "ENVSPEC_MAX_PACKAGE_BYTES": "1000",
        "ENVSPEC_PKGS_DIR": "/pkgs",
    }
    settings = Settings.from_environ(environ)
    assert settings.lock_limits() == LockLimits(1800, 2_000_000_000, FetchLimits(5, 1000))
    assert settings.pkgs_dir == Path("/pkgs") and Settings.from_environ({"ENVSPEC_PKGS_DIR": ""}).pkgs_dir is None
    ctx = Context(settings)
    options = InstallRequest("t", "/env", None).options("linux-64", {}, ctx)
    assert options.limits == FetchLimits(5, 1000) and options.cache_dir == Path("/pkgs")
    given = InstallRequest("t", "/env", None, cache_dir=Path("/mine")).options("linux-64", {}, ctx)
    assert given.cache_dir == Path("/mine")  # --cache-dir wins over $ENVSPEC_PKGS_DIR


# --------------------------------------------------------------------------------------------
# One target choice; the machine probed once
# --------------------------------------------------------------------------------------------


class CountingProbe(RecordedProbe):
    """A recorded machine that counts how often it is probed (each probing asks its memory once)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.probings = 0

    def memory_total(self) -> int | None:
        self.probings += 1
        return super().memory_total()


def test_host_subdir_makes_up_and_doctor_agree(
    project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With ENVSPEC_HOST_SUBDIR=osx-64 on a Linux GPU box, up and doctor both choose osx-64."""
    spec = str(project_copy / "envspec.yml")
    probe = RecordedProbe(recording("linux-h100-580", env={"ENVSPEC_HOST_SUBDIR": "osx-64"}))
    assert main(["--spec", spec, "render"], environ={}) == 0
    capsys.readouterr()
    main(["--spec", spec, "doctor", "--json"], environ={}, probe=probe)
    doctor = json.loads(capsys.readouterr().out)
    main(["--spec", spec, "up", "--locked", "--prefix", str(tmp_path / "env")], environ={}, probe=probe)
    err = capsys.readouterr().err
    assert doctor["recommended"] == doctor["target"] == "osx-64"
    assert "up: no TARGET given; using osx-64" in err
    assert "recommended target: osx-64" in err  # up's own doctor step says the same
    assert "linux-cuda" not in err.split("[1/6] doctor")[1].split("[2/6]")[0].split("checked target")[0]


def test_up_probes_the_machine_once(project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project_copy / "envspec.yml")
    assert main(["--spec", spec, "render"], environ={}) == 0
    probe = CountingProbe(recording("linux-no-gpu"))
    argv = ["--spec", spec, "up", "--allow-cpu", "--locked", "--prefix", str(tmp_path / "env")]
    assert main(argv, environ={}, probe=probe) == ExitCode.CHECK_FAILED  # no lockfile and --locked
    assert "[1/6] doctor: " in capsys.readouterr().err
    assert probe.probings == 1
    assert sum(call.startswith("nvidia-smi") for call in probe.calls) == 1


def test_install_without_target_uses_the_host_subdir(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project_copy / "envspec.yml")
    probe = CountingProbe(recording("linux-h100-580", env={"ENVSPEC_HOST_SUBDIR": "osx-64"}))
    code = main(["--spec", spec, "install", "--prefix", str(project_copy / "env")], environ={}, probe=probe)
    assert code != 0 and "target: osx-64 (detected for this machine)" in capsys.readouterr().err
    assert probe.probings == 1


# --------------------------------------------------------------------------------------------
# Answers without loading the spec (what makes targets / render --check fast)
# --------------------------------------------------------------------------------------------


def test_targets_answer_follows_every_spec_edit(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = project_copy / "envspec.yml"
    assert main(["--spec", str(spec), "targets", "--json"], environ={}) == 0
    first = json.loads(capsys.readouterr().out)
    assert (project_copy / ".envspec-cache" / "targets-stamp.json").is_file()
    assert main(["--spec", str(spec), "targets", "--json"], environ={}) == 0
    assert json.loads(capsys.readouterr().out) == first  # from the stamp, the same answer
    spec.write_text(spec.read_text().replace("runner: windows-latest", "runner: windows-2025"))
    assert main(["--spec", str(spec), "targets", "--json"], environ={}) == 0
    runners = {t["name"]: t["runner"] for t in json.loads(capsys.readouterr().out)["targets"]}
    assert runners["win-cuda"] == "windows-2025"


def test_render_check_stamp_misses_on_any_changed_input(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project_copy / "envspec.yml")
    assert main(["--spec", spec, "render"], environ={}) == 0
    assert main(["--spec", spec, "render", "--check"], environ={}) == 0
    assert (project_copy / ".envspec-cache" / "render-stamp.json").is_file()
    assert main(["--spec", spec, "render", "--check"], environ={}) == 0
    # a project's own template (it overrides envspec's of the same name) counts as an input
    template = project_copy / "templates" / "environment.yml.j2"
    template.parent.mkdir()
    shutil.copy2(PACKAGE_TEMPLATES / "environment.yml.j2", template)
    assert main(["--spec", spec, "render", "--check"], environ={}) == 0  # the same text: still current
    template.write_text(template.read_text() + "# edited\n")
    assert main(["--spec", spec, "render", "--check"], environ={}) == ExitCode.CHECK_FAILED
    template.write_text(template.read_text().replace("# edited\n", ""))
    assert main(["--spec", spec, "render", "--check"], environ={}) == 0
    (project_copy / "ci" / "stray.yml").write_text("# GENERATED by `envspec render`\n")
    assert main(["--spec", spec, "render", "--check"], environ={}) == ExitCode.CHECK_FAILED
    capsys.readouterr()


@pytest.mark.integration
@pytest.mark.parametrize(
    "argv",
    [["--help"], ["targets"], ["render", "--check"]],
    ids=["help", "targets", "render-check"],
)
def test_fast_answers_do_not_import_pydantic(project_copy: Path, argv: list[str]) -> None:
    """What keeps these commands near the cost of starting Python (benchmarks/bench_cli.py times it)."""
    code = (
        "import sys; from envspec.cli.main import main; code = main(sys.argv[1:]); "
        "heavy = sorted(m for m in ('pydantic', 'jinja2', 'rattler', 'envspec.spec.schema') if m in sys.modules); "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    env_argv = [sys.executable, "-c", code]
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"], environ={}) == 0
    for _ in range(2):  # the first run of targets / render --check loads the spec and stores its answer
        proc = subprocess.run(
            [*env_argv, *argv], cwd=project_copy, capture_output=True, text=True, timeout=120, check=False
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY []"


def test_render_stamp_watches_every_file_render_owns() -> None:
    from envspec.cli import render as cmd_render
    from envspec.render.files import OWNED_GLOBS

    assert cmd_render.OWNED_GLOBS == OWNED_GLOBS


@pytest.mark.integration
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_ends_up_as_an_interrupt(project_copy: Path, tmp_path: Path) -> None:
    """`envspec up` handles SIGTERM as `envspec install` does: like Ctrl-C (exit 130, one line), not
    killed mid-step. The run is caught in its first step by an `nvidia-smi` that says when it started
    (the one tool a test may stand in for) and then waits."""
    import os
    import signal
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ready = tmp_path / "probing"
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho $$ > {ready}.tmp && mv {ready}.tmp {ready}\nexec sleep 300\n")
    smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ENVSPEC_HOST_SUBDIR", None)
    argv = ["--spec", str(project_copy / "envspec.yml"), "up", "linux-cuda", "--prefix", str(tmp_path / "env")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "envspec", *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300  # a hang guard only: the verdict never depends on it
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "envspec up never asked nvidia-smi"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if ready.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(ready.read_text()), signal.SIGKILL)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "error: interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "env").exists()


@pytest.mark.parametrize(
    "answer",
    [{"version": 1, "targets": [{"name": "x"}]}, {"version": 1, "targets": "x"}, ["x"], {"version": 2, "targets": []}],
)
def test_a_damaged_targets_stamp_misses_and_never_crashes(
    project_copy: Path, capsys: pytest.CaptureFixture[str], answer: Any
) -> None:
    spec = project_copy / "envspec.yml"
    assert main(["--spec", str(spec), "targets", "--json"], environ={}) == 0
    good = capsys.readouterr().out
    stamp_file = project_copy / ".envspec-cache" / "targets-stamp.json"
    stamp = json.loads(stamp_file.read_text())
    stamp["answer"] = answer
    stamp_file.write_text(json.dumps(stamp))
    assert main(["--spec", str(spec), "targets", "--json"], environ={}) == 0
    assert capsys.readouterr().out == good
    stamp_file.write_text("{not json")
    assert main(["--spec", str(spec), "targets"], environ={}) == 0
