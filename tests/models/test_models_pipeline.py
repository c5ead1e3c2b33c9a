"""The tiny SD-v1 pipeline, served by the fake Hub with fp16 variant weights, pulled and smoke-tested.

Proves the pulled folder is what diffusers loads without ``variant=``: the smoke test fails on any
weight that does not load ("newly initialized"), on NaN, on a blank image.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.models import pulled_model_path, smoke_model_path
from envspec.project import Project as EnvspecProject
from envspec.spec.load import load_spec

from .conftest import REPO_ID, Project, entry_yaml
from .fakehub import copy_folder

pytestmark = pytest.mark.integration


def test_the_pulled_tiny_pipeline_passes_the_smoke_test(project: Project, tiny_pipeline: Path, tmp_path: Path) -> None:
    files = copy_folder(tiny_pipeline)
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in files
    project.hub.commit(REPO_ID, files)
    project.write_spec(entry_yaml(variant="fp16"), smoke_model="tiny")
    assert project.run("lock").code == 0
    pulled = project.run("pull")
    assert pulled.code == 0, pulled.text
    folder = project.root / "models" / "tiny"
    for component in ("unet", "vae"):
        fp16 = tiny_pipeline / component / "diffusion_pytorch_model.fp16.safetensors"
        assert (folder / component / "diffusion_pytorch_model.safetensors").read_bytes() == fp16.read_bytes()
    assert not list(folder.rglob("*.fp16.safetensors"))
    envspec_project = EnvspecProject(project.root)
    spec = load_spec(project.spec)
    assert smoke_model_path(envspec_project, spec) == folder == pulled_model_path(envspec_project, "tiny")
    out = tmp_path / "smoke"
    command = [sys.executable, "-m", "envspec.smoke", "--device", "cpu", "--model", str(folder)]
    smoke = subprocess.run(
        [*command, "--resolution", "128", "--steps", "4", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=project.env(HF_HUB_OFFLINE="1"),
    )
    report = json.loads((out / "smoke.json").read_text())
    assert smoke.returncode == 0, (smoke.stdout, smoke.stderr[-2000:])
    assert report["verdict"] == "pass" and report["mode"] == "model"
    assert all(check["passed"] for check in report["checks"]), report["checks"]
    assert smoke.stdout.startswith("smoke PASS")
