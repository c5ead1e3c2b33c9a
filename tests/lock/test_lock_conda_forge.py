"""`envspec lock` (conda-lock + envspec's py-rattler conda substitute) against REAL conda-forge records.

The channel is the vendored subset of real conda-forge repodata (tests/data/conda-forge, see its
README for provenance); the targets are torch-only variants of envspec.yml's four targets that the
snapshot can satisfy (tests/data/conda-forge/targets.json, whose ``expect`` py-rattler picks in one
process: tests/lock/test_conda_forge_records.py). Here the whole locker must agree with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from envspec.cli.main import main
from envspec.lock import explicit

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "conda-forge"
CASES: dict[str, Any] = json.loads((DATA / "targets.json").read_text(encoding="utf-8"))


def _load_torch_only() -> ModuleType:
    """tests/data/conda-forge/torch_only.py, by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("envspec_torch_only", DATA / "torch_only.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_only = _load_torch_only()


def envspec(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


def make_project(root: Path, targets: dict[str, dict[str, Any]]) -> Path:
    root.mkdir(parents=True)
    (root / "envspec.yml").write_text(torch_only.spec_text(targets), encoding="utf-8")
    code, _, err = envspec(root, "render")
    assert code == 0, err
    return root


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendored channel (its subdirs' repodata.json only), as a mirror of conda-forge would serve it."""
    dest = tmp_path_factory.mktemp("cf") / "conda-forge"
    shutil.copytree(DATA, dest, ignore=shutil.ignore_patterns("*.py", "*.md", "targets.json"))
    return dest


@pytest.fixture(scope="module")
def locked(channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = make_project(tmp_path_factory.mktemp("real") / "proj", CASES["targets"])
    code, _, err = envspec(project, "lock", "--mirror", f"conda-forge={channel.as_uri()}")
    assert code == 0, err[-3000:]
    return project


def picks(project: Path, target: str) -> dict[str, explicit.ExplicitEntry]:
    text = (project / "lockfiles" / f"{target}.lock").read_text(encoding="utf-8")
    return {e.name: e for e in explicit.entries(text)}


@pytest.mark.parametrize("target", sorted(CASES["targets"]))
def test_the_locker_picks_what_the_solver_picks_on_real_records(locked: Path, target: str) -> None:
    got = picks(locked, target)
    for name, version_build in CASES["targets"][target]["expect"].items():
        version, build = version_build.split(" ")
        assert name in got, f"{target}: {name} missing"
        assert f"/{name}-{version}-{build}." in got[name].url, (target, got[name].url)


@pytest.mark.parametrize("target", ["linux-cuda", "win-cuda"])
def test_a_cuda_target_never_gets_a_cpu_build(locked: Path, target: str) -> None:
    got = picks(locked, target)
    torch_builds = {name: e.url.rsplit("/", 1)[-1] for name, e in got.items() if name in ("pytorch", "libtorch")}
    assert torch_builds and all("cuda12" in f for f in torch_builds.values()), torch_builds
    assert not any(e.url.rsplit("/", 1)[-1].startswith(("pytorch-cpu-",)) for e in got.values())


def test_osx_64_gets_the_mkl_cpu_build_and_every_closure_is_complete(locked: Path) -> None:
    assert "_cpu_mkl_py312_" in "_" + picks(locked, "osx-64")["pytorch"].url.rsplit("-", 1)[-1].replace(".conda", "")
    data = yaml.safe_load((locked / "lockfiles" / "linux-cuda.conda-lock.yml").read_text(encoding="utf-8"))
    names = {p["name"] for p in data["package"]}
    for pkg in data["package"]:  # every dependency of every locked package is locked too (or virtual)
        for dep in pkg.get("dependencies", {}):
            assert dep in names or dep.startswith("__"), (pkg["name"], dep)


def test_real_unsatisfiable_pin_names_the_chain(channel: Path, tmp_path: Path) -> None:
    case = CASES["unsatisfiable"]["win-cuda-cuda-version-12.8"]  # py-rattler alone names cuda-cudart first
    target = dict(CASES["targets"]["win-cuda"], specs=case["specs"])
    project = make_project(tmp_path / "proj", {"win-cuda": target})
    code, _, err = envspec(project, "lock", "--mirror", f"conda-forge={channel.as_uri()}")
    assert code == 4, err[-3000:]
    one_line = err.strip().splitlines()[-1]
    assert one_line.startswith("error: ") and "win-cuda" in one_line and "__cuda 12.8" in one_line
    # the chain of the issue: pytorch 2.8.0 -> libmagma 2.9.0 -> cuda-version >=12.9, against cuda-version 12.8
    chain = ["pytorch 2.8.0 would require libmagma", "libmagma 2.9.0 would require cuda-version >=12.9", "12.8"]
    for link in chain:
        assert link in one_line, (link, one_line)
    assert not (project / "lockfiles" / "win-cuda.lock").exists()
