"""`envspec diff` (the relock pull request's body) on lockfiles that are not what they should be."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from smokefixtures import write_conda_lock

from envspec.cli.main import main
from envspec.errors import ExitCode, SpecError
from envspec.lock.diff import packages_of


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("package: [[\n", r"not a conda-lock\.yml: "),
        ("- 1\n", r"no 'package' list"),
        ("package: 3\n", r"no 'package' list"),
        ("version: 1\npackage:\n  - {name: tqdm}\n", r"package\.0: needs a 'name' and a 'version'"),
        ("version: 1\npackage:\n  - {name: [x], version: '1'}\n", r"package\.0: needs a 'name' and a 'version'"),
        ("version: 2\npackage: []\n", r"conda-lock format version 2; envspec reads version 1"),
    ],
)
def test_a_broken_lockfile_is_a_one_line_spec_error(text: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=r"^lockfiles/x\.conda-lock\.yml: (.*: )?" + pattern) as info:
        packages_of(text, "lockfiles/x.conda-lock.yml")
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    assert "\n" not in info.value.one_line()


def test_conda_packages_with_version_and_build() -> None:
    text = (
        "version: 1\npackage:\n"
        "  - {name: tqdm, version: 4.67.1, manager: conda, url: 'https://x/noarch/tqdm-4.67.1-pyhd8ed1ab_0.conda'}\n"
        "  - {name: numpy, version: 2.0, manager: conda, url: 'https://x/linux-64/numpy-2.0-py312_1.tar.bz2'}\n"
        "  - {name: foo, version: '1', manager: pip, url: 'https://pypi/foo.whl'}\n"
    )
    assert packages_of(text) == {"tqdm": ("4.67.1", "pyhd8ed1ab_0"), "numpy": ("2.0", "py312_1")}
    assert packages_of(None) == {} and packages_of("") == {}


# --- `envspec diff --base` against a real git repository (issue #11, case 9) ---------------------


def _git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=envspec", "-c", "user.email=dev@envspec.invalid", "-c", "commit.gpgsign=false"]
    return subprocess.run(
        ["git", "-C", str(root), *identity, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(project_copy: Path) -> Path:
    """A git repository holding the project, with linux-cuda's lockfile committed (a CUDA torch)
    and changed in the working tree (a CPU torch); win-cuda's lockfile exists only in the working tree."""
    _git(project_copy, "init", "-q")
    write_conda_lock(project_copy, "linux-cuda", "linux-64", "cuda129_py312_0")
    _git(project_copy, "add", "-A")
    _git(project_copy, "commit", "-q", "-m", "lockfiles")
    write_conda_lock(project_copy, "linux-cuda", "linux-64", "cpu_py312_0")
    write_conda_lock(project_copy, "win-cuda", "win-64", "cuda128_py312_0")
    return project_copy


def _diff(repo: Path, *args: str) -> list[str]:
    return ["--spec", str(repo / "envspec.yml"), "diff", "--target", "linux-cuda", *args]


@pytest.mark.integration
def test_diff_against_head_shows_only_the_change(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_diff(repo, "--base", "HEAD")) == 0
    out = capsys.readouterr().out
    assert "### linux-cuda (1 changed)" in out
    assert "| pytorch | changed | 2.9.1 `cuda129_py312_0` | 2.9.1 `cpu_py312_0` |" in out


@pytest.mark.integration
@pytest.mark.parametrize("option", ["--output={out}", "--output", "-p", "-"])
def test_a_base_that_is_an_option_is_refused_before_git_sees_it(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    out_dir = tmp_path / "written-by-git"
    base = option.format(out=out_dir)
    assert main(_diff(repo, f"--base={base}")) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""  # no diff claiming every package was added
    assert captured.err.startswith(f"error: --base {base!r} is not a git ref") and captured.err.count("\n") == 1
    assert not out_dir.exists()  # git wrote nothing


@pytest.mark.integration
@pytest.mark.parametrize("base", ["no-such-branch", "HEAD~5", "HEAD:envspec.yml", "0" * 40])
def test_a_base_that_is_no_commit_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str], base: str) -> None:
    assert main(_diff(repo, "--base", base)) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: --base {base!r} is not a commit of this repository")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


@pytest.mark.integration
def test_a_lockfile_missing_at_the_base_is_all_added(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--spec", str(repo / "envspec.yml"), "diff", "--target", "win-cuda", "--base", "HEAD"]
    assert main(args) == 0
    out = capsys.readouterr().out  # absent at the base: every package added, not an error
    assert "### win-cuda (3 added)" in out and "| pytorch | added |  | 2.9.1 `cuda128_py312_0` |" in out


@pytest.mark.integration
def test_git_failing_to_read_the_base_is_not_a_missing_file(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blob = _git(repo, "rev-parse", "HEAD:lockfiles/linux-cuda.conda-lock.yml")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # the object is gone: a damaged clone
    assert main(_diff(repo, "--base", "HEAD")) == ExitCode.TOOL_FAILED
    captured = capsys.readouterr()
    assert captured.out == ""  # not "every package was added"
    assert captured.err.startswith("error: git cat-file blob ") and captured.err.count("\n") == 1


@pytest.mark.integration
def test_outside_a_git_repository_git_failing_is_a_tool_error(
    project_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_conda_lock(project_copy, "linux-cuda", "linux-64", "cuda129_py312_0")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(project_copy.parent))  # no repository above it either
    assert main(_diff(project_copy, "--base", "HEAD")) == ExitCode.TOOL_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: git rev-parse HEAD failed: fatal: not a git repository") and err.count("\n") == 1
