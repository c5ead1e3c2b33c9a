from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.spec.load import load_spec


def test_targets_table(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spec", str(repo / "envspec.yml"), "targets"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["TARGET", "SUBDIR", "ACCEL", "CUDA", "RUNNER", "TORCH"]
    assert "linux-cuda  linux-64" in out and "12.9" in out and "windows-latest" in out


def test_targets_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spec", str(repo / "envspec.yml"), "targets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    by_name = {t["name"]: t for t in data["targets"]}
    assert by_name["win-cuda"]["cuda"] == "12.9"
    assert by_name["osx-arm64"]["accelerator"] == "mps"
    # every column the table has, from the spec's own records
    spec = load_spec(repo / "envspec.yml")
    assert [t["name"] for t in data["targets"]] == list(spec.targets)
    for target in spec.resolve_all():
        row = by_name[target.name]
        assert (row["subdir"], row["accelerator"], row["cuda"], row["runner"], row["smoke_device"]) == (
            target.subdir,
            target.accelerator,
            target.cuda_version,
            target.runner,
            target.smoke_device,
        )


def test_render_then_check(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(project_copy / "envspec.yml")
    assert main(["--spec", spec, "render", "--check"]) == ExitCode.CHECK_FAILED
    assert main(["--spec", spec, "render"]) == 0
    capsys.readouterr()
    assert main(["--spec", spec, "render", "--check"]) == 0
    (project_copy / "environment-osx-64.yml").write_text("edited by hand\n")
    assert main(["--spec", spec, "render", "--check"]) == ExitCode.CHECK_FAILED
    captured = capsys.readouterr()
    assert "-edited by hand" in captured.out
    assert "run `envspec render`" in captured.err


def test_bad_spec_is_one_line_with_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "envspec.yml"
    spec.write_text("version: 1\nname: x\nchannels: [conda-forge]\ndependencies: [python]\ntargets: {}\nbogus: 1\n")
    assert main(["--spec", str(spec), "targets"]) == ExitCode.SPEC_INVALID
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {spec}:")
    assert "Traceback" not in err


def test_missing_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--spec", str(tmp_path / "nope.yml"), "render"]) == ExitCode.SPEC_INVALID
    assert "file not found" in capsys.readouterr().err


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == ExitCode.USAGE
    assert main([]) == ExitCode.USAGE


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "render" in capsys.readouterr().out


def test_a_refused_file_operation_is_one_line(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder where render writes a file: one line naming the path, exit 6, no traceback."""
    spec = str(project_copy / "envspec.yml")
    target = project_copy / "environment-osx-64.yml"
    target.unlink(missing_ok=True)
    target.mkdir()
    assert main(["--spec", spec, "render"]) == ExitCode.TOOL_FAILED
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: ") and "environment-osx-64.yml" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_report_out_onto_a_file_is_one_line(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = project_copy / "envspec.yml"
    (project_copy / "results").mkdir()
    assert main(["--spec", str(spec), "report", str(project_copy / "results"), "--out", str(spec)]) == 6
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: ") and str(spec) in err[-1]


def test_one_exit_code_table_the_smoke_test_included() -> None:
    from envspec.smoke import cli as smoke_cli

    smoke_codes = (smoke_cli.EXIT_OK, smoke_cli.EXIT_FAILED, smoke_cli.EXIT_SETUP, smoke_cli.EXIT_INTERRUPTED)
    table = (ExitCode.OK, ExitCode.CHECK_FAILED, ExitCode.SMOKE_SETUP, ExitCode.INTERRUPTED)
    assert smoke_codes == table
    assert len({int(c) for c in ExitCode}) == len(ExitCode)  # no code means two things
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for code in ExitCode:  # every code is documented in the README's table
        assert f"\n| {int(code)} |" in readme, code


def test_debug_shows_the_traceback_behind_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = ["--spec", str(tmp_path / "none.yml"), "targets"]
    monkeypatch.delenv("ENVSPEC_DEBUG", raising=False)
    assert main(missing) == ExitCode.SPEC_INVALID
    plain = capsys.readouterr().err
    assert plain.count("\n") == 1 and "Traceback" not in plain
    assert main(["--debug", *missing]) == ExitCode.SPEC_INVALID
    debug = capsys.readouterr().err
    assert plain.strip() in debug and "Traceback (most recent call last)" in debug and "SpecError" in debug
    monkeypatch.setenv("ENVSPEC_DEBUG", "1")
    assert main(missing) == ExitCode.SPEC_INVALID
    assert "Traceback (most recent call last)" in capsys.readouterr().err
