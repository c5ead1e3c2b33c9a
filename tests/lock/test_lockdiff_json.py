"""`envspec diff --json`, and what `envspec diff` says when it prints nothing (a real git repository)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsondocs import only_document

from envspec.cli.main import main

from .test_lockdiff import _git, repo

pytestmark = pytest.mark.integration
__all__ = ["repo"]  # the fixture, imported


def test_diff_json_lists_each_change_with_both_sides(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    argv = ["--spec", str(repo / "envspec.yml"), "diff", "-t", "linux-cuda", "-t", "win-cuda", "-t", "osx-64", "--json"]
    assert main(argv) == 0
    doc = only_document(capsys.readouterr().out, "diff")
    assert doc["base_ref"] == "HEAD" and doc["base"] == _git(repo, "rev-parse", "HEAD")
    by_target = {t["target"]: t for t in doc["targets"]}
    cuda = by_target["linux-cuda"]
    assert (cuda["in_base"], cuda["in_tree"], cuda["lockfile"]) == (True, True, "lockfiles/linux-cuda.conda-lock.yml")
    assert {
        "name": "pytorch",
        "kind": "changed",
        "before": {"version": "2.9.1", "build": "cuda129_py312_0"},
        "after": {"version": "2.9.1", "build": "cpu_py312_0"},
    } in cuda["changes"]
    win = by_target["win-cuda"]
    assert (win["in_base"], win["in_tree"]) == (False, True)
    assert {c["kind"] for c in win["changes"]} == {"added"}
    assert by_target["osx-64"] == {
        "target": "osx-64",
        "lockfile": "lockfiles/osx-64.conda-lock.yml",
        "in_base": False,
        "in_tree": False,
        "changes": [],
    }


def test_no_lockfiles_anywhere_is_said_on_stderr(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--spec", str(repo / "envspec.yml"), "diff", "-t", "osx-64", "-t", "osx-arm64"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""  # a PR body stays empty
    assert "no lockfiles to compare: none of osx-64, osx-arm64 has a lockfile" in captured.err
    assert "`envspec lock` writes them" in captured.err


def test_no_changes_is_said_on_stderr(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "current")
    capsys.readouterr()
    assert main(["--spec", str(repo / "envspec.yml"), "diff"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no lockfile changes against HEAD" in captured.err
