"""envspec outside its own repository (#22): `envspec init`, the templates shipped in the package, a
project's own templates/ overriding them file by file, and init -> render -> lock -> install in a
folder that is not this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.project import Project
from envspec.render import files as render
from envspec.render.context import PACKAGE_TEMPLATES, overridden_templates
from envspec.render.init import project_name, starting_spec
from envspec.spec.load import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / "tests" / "channel_factory.py"


def test_the_templates_are_package_data() -> None:
    assert PACKAGE_TEMPLATES == REPO / "envspec" / "templates"
    assert (PACKAGE_TEMPLATES / "environment.yml.j2").is_file() and (
        PACKAGE_TEMPLATES / "ci" / "verify.yml.j2"
    ).is_file()
    assert not (REPO / "templates").exists()  # one copy: the package's


def test_the_starting_spec_is_the_shipped_spec_under_another_name(tmp_path: Path) -> None:
    """`envspec init` writes this repository's own spec (commented for a new project): they cannot drift."""
    mine = parse_spec(starting_spec("my-sd"), tmp_path / "envspec.yml")
    shipped = load_spec(REPO / "envspec.yml")
    assert mine.name == "my-sd"
    assert mine.document.model_dump(exclude={"name"}) == shipped.document.model_dump(exclude={"name"})
    assert starting_spec("x").startswith("# envspec.yml — the one source")


@pytest.mark.parametrize(
    ("folder", "name"), [("My SD Project", "my-sd-project"), ("__", "stable-diffusion"), ("sd.v2", "sd.v2")]
)
def test_the_project_name_comes_from_the_folder(folder: str, name: str) -> None:
    assert project_name(Path("/x") / folder) == name


def test_init_writes_a_valid_spec_once_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "proj" / "envspec.yml"
    spec.parent.mkdir()
    assert main(["--spec", str(spec), "init"]) == 0
    assert load_spec(spec).name == "proj"
    spec.write_text(spec.read_text() + "# mine\n")
    before = spec.read_bytes()
    capsys.readouterr()
    assert main(["--spec", str(spec), "init"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {spec} already exists")
    assert spec.read_bytes() == before
    assert [p.name for p in spec.parent.iterdir()] == ["envspec.yml"]  # no temp file left behind


def test_init_refuses_a_name_the_spec_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "envspec.yml"
    assert main(["--spec", str(spec), "init", "--name", "Not Valid"]) == ExitCode.SPEC_INVALID
    assert not spec.exists() and "name" in capsys.readouterr().err


def test_a_project_template_replaces_envspecs_file_by_file(
    project_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = project_copy / "templates" / "ci"
    own.mkdir(parents=True)
    shipped = (PACKAGE_TEMPLATES / "ci" / "verify.yml.j2").read_text()
    (own / "verify.yml.j2").write_text(shipped.replace("name: verify", "name: verify (ours)", 1))
    project = Project(project_copy)
    plan = render.plan_render(load_spec(project.spec_path), project)
    verify = yaml.safe_load(plan[project.ci_dir / "verify.yml"])
    relock = yaml.safe_load(plan[project.ci_dir / "relock.yml"])
    assert verify["name"] == "verify (ours)" and relock["name"] == "relock"  # the rest stays envspec's
    assert overridden_templates(project.templates_dir) == ["ci/verify.yml.j2"]
    assert main(["--spec", str(project.spec_path), "render", "--check"]) == 1  # not rendered yet
    assert "template templates/ci/verify.yml.j2 replaces envspec's ci/verify.yml.j2" in capsys.readouterr().err
    # the drift check sees the override too: rendered files match, then an edit of the template is drift
    render.apply(project, plan)
    assert render.drift(project, render.plan_render(load_spec(project.spec_path), project)) == ""
    (own / "verify.yml.j2").write_text(shipped)
    assert "verify (ours)" in render.drift(project, render.plan_render(load_spec(project.spec_path), project))


@pytest.mark.integration
def test_init_render_lock_install_in_a_folder_outside_the_repository(tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    subprocess.run([sys.executable, str(FACTORY), str(channel)], check=True, capture_output=True)
    folder = tmp_path / "new project"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"ENVSPEC_MIRRORS", "ENVSPEC_SPEC", "PYTHONPATH"}}
    env["ENVSPEC_PKGS_DIR"] = str(tmp_path / "pkgs")
    mirror = ["--mirror", f"conda-forge={channel.as_uri()}"]

    def envspec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envspec", *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert envspec("init").returncode == 0
    # the synthetic channel has no PyPI part: lock the starting spec's conda part (the PyPI part is
    # tested against a local index in tests/lock/test_pypi_resolve.py)
    started = yaml.safe_load((folder / "envspec.yml").read_text(encoding="utf-8"))
    assert started.pop("pip")  # the starting spec has the Hugging Face stack under pip:
    (folder / "envspec.yml").write_text(yaml.safe_dump(started, sort_keys=False), encoding="utf-8")
    for argv in (
        ["render"],
        ["render", "--check"],
        ["lock", "--target", "linux-cpu", *mirror],
        ["install", "linux-cpu", "--prefix", "env", *mirror],
    ):
        proc = envspec(*argv)
        assert proc.returncode == 0, (argv, proc.stderr[-3000:])
    assert not (folder / "templates").exists()  # everything came from the package
    assert (folder / ".github" / "workflows" / "verify.yml").is_file()
    lock = (folder / "lockfiles" / "linux-cpu.lock").read_text()
    (torch_line,) = [line for line in lock.splitlines() if "/linux-64/pytorch-" in line]
    assert torch_line.startswith("https://conda.anaconda.org/conda-forge/") and "-cpu_" in torch_line
    torch = next((folder / "env" / "conda-meta").glob("pytorch-*.json"))
    assert "-cpu_" in torch.name
