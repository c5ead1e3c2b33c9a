"""The doctor's disk check counts the locked models still to pull: ``resources.models_need`` word for word.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md).
"""

from __future__ import annotations

from pathlib import Path

from envspec.doctor.resources import ModelsNeed, models_need
from envspec.models import local
from envspec.project import Project
from envspec.spec.load import Spec, parse_spec

from .conftest import spec_text
from .test_models_local import place, setup  # noqa: F401  (setup is a fixture)


def test_models_need_counts_what_a_pull_still_writes(setup: tuple[Project, Spec]) -> None:  # noqa: F811
    project, spec = setup
    assert models_need(project, spec) == ModelsNeed(1304, "lockfiles/models.lock.yml, files not pulled yet")
    place(project, "one")
    assert models_need(project, spec) == ModelsNeed(304, "lockfiles/models.lock.yml, files not pulled yet")


def test_models_need_without_models_or_without_a_lockfile(setup: tuple[Project, Spec], tmp_path: Path) -> None:  # noqa: F811
    project, spec = setup
    no_models = parse_spec(spec_text("  {}\n"), tmp_path / "envspec.yml")
    assert models_need(project, no_models) is None  # a lockfile, but the spec has no models
    local.lockfile_path(project).unlink()
    assert models_need(project, spec) is None  # models, but no lockfile
