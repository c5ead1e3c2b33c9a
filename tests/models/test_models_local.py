"""What the doctor and the smoke wiring ask without a network: sizes, and the pulled smoke model's path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from envspec.models import local, lockfile, models_size, pulled_model_path, smoke_model_path
from envspec.models.plan import RemoteFile, plan_files
from envspec.models.pull import file_digest
from envspec.project import Project
from envspec.spec.load import Spec, parse_spec

from .conftest import entry_yaml, spec_text
from .fakehub import git_oid

COMMIT = "c" * 40
FILES = {
    "model_index.json": b"{}",
    "unet/config.json": b"{}",
    "unet/diffusion_pytorch_model.fp16.safetensors": b"u" * 300,
    "big.safetensors": b"b" * 1000,
}


def remote() -> list[RemoteFile]:
    return [
        RemoteFile(p, len(d), sha256=hashlib.sha256(d).hexdigest())
        if p.endswith(".safetensors")
        else RemoteFile(p, len(d), git_sha1=git_oid(d))
        for p, d in FILES.items()
    ]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Project, Spec]:
    models = entry_yaml("sd", variant="fp16") + entry_yaml(
        "one", layout="single_file", file="big.safetensors", smoke="true"
    )
    (tmp_path / "envspec.yml").write_text(spec_text(models))
    spec = parse_spec(spec_text(models), tmp_path / "envspec.yml")
    locked = {
        name: lockfile.locked_model(entry, COMMIT, plan_files(entry, remote()))
        for name, entry in spec.document.models.items()
    }
    lockfile.write(local.lockfile_path(Project(tmp_path)), lockfile.build(locked))
    return Project(tmp_path), spec


def place(project: Project, name: str, complete: bool = True) -> Path:
    """Lay a model folder out as a pull does, manifest included."""
    lock = local.read_lock(project)
    assert lock is not None
    folder = local.model_dir(project, name)
    records = {}
    for f in lock.models[name].files:
        target = folder / f.target
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(FILES[f.path])
        assert file_digest(target, f) == f.digest
        records[f.target] = local.ManifestFile(f.target, f.size, f.digest, target.stat().st_mtime_ns)
    commit = COMMIT if complete else ""
    local.write_manifest(folder, local.Manifest(name, "acme/tiny-sd", commit, lock.models[name].load, records))
    return folder


def test_models_size_sums_locked_files_and_what_is_missing(setup: tuple[Project, Spec]) -> None:
    project, _ = setup
    assert models_size(project) == 2 + 2 + 300 + 1000
    assert models_size(project, ["sd"]) == 304
    assert models_size(project, ["one"], missing_only=True) == 1000
    place(project, "one")
    assert models_size(project, missing_only=True) == 304
    assert models_size(project, ["one"], missing_only=True) == 0
    assert models_size(Project(project.root / "elsewhere")) == 0  # no lockfile


def test_the_smoke_model_path_is_there_only_when_completely_pulled(setup: tuple[Project, Spec]) -> None:
    project, spec = setup
    assert smoke_model_path(project, spec) is None  # chosen, not pulled
    folder = place(project, "one", complete=False)
    assert smoke_model_path(project, spec) is None  # a pull that did not finish
    place(project, "one")
    assert smoke_model_path(project, spec) == folder / "big.safetensors"
    (folder / "big.safetensors").write_bytes(b"short")
    assert smoke_model_path(project, spec) is None  # a file changed size since
    sd = place(project, "sd")
    assert pulled_model_path(project, "sd") == sd
    assert (sd / "unet/diffusion_pytorch_model.safetensors").is_file()
    (sd / "unet/config.json").unlink()
    assert pulled_model_path(project, "sd") is None


def test_a_manifest_for_another_commit_is_not_the_locked_model(setup: tuple[Project, Spec]) -> None:
    project, _ = setup
    folder = place(project, "sd")
    text = (folder / local.MANIFEST).read_text()
    (folder / local.MANIFEST).write_text(text.replace(COMMIT, "d" * 40))
    assert pulled_model_path(project, "sd") is None
    (folder / local.MANIFEST).write_text("{not json")
    assert pulled_model_path(project, "sd") is None


def test_no_smoke_model_chosen(tmp_path: Path) -> None:
    spec = parse_spec(spec_text(entry_yaml("sd")), tmp_path / "envspec.yml")
    assert smoke_model_path(Project(tmp_path), spec) is None
