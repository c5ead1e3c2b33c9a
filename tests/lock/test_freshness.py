"""The policy before an install: solve a missing or stale lockfile, or refuse it (--locked), or not look (--frozen)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.errors import CheckFailed, ExitCode, SpecError
from envspec.lock.freshness import LockAction, LockMode, ensure_lockfile, lock_action
from envspec.project import Project
from envspec.spec.load import load_spec


@pytest.mark.parametrize(
    ("fresh", "mode", "action"),
    [
        (True, LockMode.AUTO, LockAction.USE),
        (False, LockMode.AUTO, LockAction.RELOCK),  # missing or stale: solved first, as pixi/uv do
        (True, LockMode.LOCKED, LockAction.USE),
        (False, LockMode.LOCKED, LockAction.STOP),
        (True, LockMode.FROZEN, LockAction.UNCHECKED),
        (False, LockMode.FROZEN, LockAction.UNCHECKED),
    ],
)
def test_lock_action(fresh: bool, mode: LockMode, action: LockAction) -> None:
    assert lock_action(fresh, mode) is action


def test_locked_refuses_a_missing_lockfile_naming_it(project_copy: Path) -> None:
    from envspec.render.files import apply, plan_render

    spec = load_spec(project_copy / "envspec.yml")
    project = Project.from_spec_path(spec.path)
    apply(project, plan_render(spec, project))
    target = spec.resolve("linux-cuda")
    with pytest.raises(CheckFailed) as info:
        ensure_lockfile(project, target, mirrors={}, mode=LockMode.LOCKED, progress=lambda _: None)
    assert "lockfiles/linux-cuda.lock does not exist and --locked was given" in info.value.message
    assert info.value.exit_code == ExitCode.CHECK_FAILED
    with pytest.raises(CheckFailed, match="--frozen installs an existing lockfile"):
        ensure_lockfile(project, target, mirrors={}, mode=LockMode.FROZEN, progress=lambda _: None)


def test_frozen_uses_a_lockfile_as_it_is(project_copy: Path) -> None:
    spec = load_spec(project_copy / "envspec.yml")
    project = Project.from_spec_path(spec.path)
    (project.lock_dir).mkdir(exist_ok=True)
    project.explicit_file("osx-64").write_text("@EXPLICIT\n", encoding="utf-8")  # no input hash at all
    relocked, detail = ensure_lockfile(
        project, spec.resolve("osx-64"), mirrors={}, mode=LockMode.FROZEN, progress=lambda _: None
    )
    assert not relocked and "--frozen" in detail


def test_an_unrendered_target_says_to_render(project_copy: Path) -> None:
    spec = load_spec(project_copy / "envspec.yml")
    project = Project.from_spec_path(spec.path)
    with pytest.raises(SpecError, match="environment file or virtual-package spec is missing") as info:
        ensure_lockfile(project, spec.resolve("osx-64"), mirrors={}, mode=LockMode.AUTO, progress=lambda _: None)
    assert info.value.tip == "run `envspec render` first"
