"""`envspec up` with a pinned model, end to end: lock the packages (local conda channel), install them,
lock and pull the model from a Hub (the local Hub-compatible server), and the smoke test makes its
image with the pulled weights, not the tiny offline model; the report says which model ran.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ID, Project, entry_yaml
from .fakehub import copy_folder

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / "tests" / "channel_factory.py"


def spec_with_model(text: str) -> str:
    """The repository's spec with its models: section replaced by the fake Hub's tiny pipeline, and
    linux-cuda's real-model smoke image made small (data of the spec, as a CI runner's would be)."""
    models = "models:\n" + entry_yaml(variant="fp16", smoke="true")
    text = re.sub(r"(?ms)^models:\n.*?(?=^targets:)", models + "\n", text)
    shipped = "    smoke_device: cuda\n    smoke_steps: 20\n    smoke_resolution: 512\n"
    assert shipped in text
    return text.replace(shipped, "    smoke_device: cuda\n    smoke_steps: 3\n    smoke_resolution: 64\n", 1)


@pytest.mark.skipif(sys.platform == "win32", reason="the channel's python launcher is a POSIX shell script")
def test_up_pulls_the_pinned_model_and_the_smoke_image_is_made_with_it(
    project: Project, tiny_pipeline: Path, tmp_path: Path
) -> None:
    project.hub.commit(REPO_ID, copy_folder(tiny_pipeline))
    channel = tmp_path / "channel"
    subprocess.run(
        [sys.executable, str(FACTORY), str(channel), "--python-launcher", sys.executable],
        check=True,
        capture_output=True,
    )
    project.spec.write_text(
        spec_with_model((REPO / "tests" / "data" / "synthetic" / "envspec.yml").read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    env = project.env(PYTHONPATH=str(REPO), ENVSPEC_PKGS_DIR=str(tmp_path / "pkgs"))
    env.pop("ENVSPEC_MIRRORS", None)
    env.pop("ENVSPEC_HOST_SUBDIR", None)
    base = [sys.executable, "-m", "envspec", "--spec", str(project.spec)]
    assert subprocess.run([*base, "render"], env=env, capture_output=True, check=False).returncode == 0
    out = tmp_path / "out"

    def where(prefix: Path) -> list[str]:
        return ["--prefix", str(prefix), "--out", str(out)]

    proc = subprocess.run(
        [
            *base,
            "up",
            "linux-cuda",
            "--mirror",
            f"conda-forge={channel.as_uri()}",
            "--allow-cpu",
            *where(tmp_path / "env"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "models: lockfiles/models.lock.yml: tiny (not locked); locking first" in proc.stderr
    assert re.search(r"\[4/6\] models: tiny @ [0-9a-f]{12} in place", proc.stderr), proc.stderr[-3000:]
    assert (project.root / "lockfiles" / "models.lock.yml").is_file()
    smoke = json.loads((out / "linux-cuda" / "smoke.json").read_text(encoding="utf-8"))
    assert smoke["verdict"] == "pass" and smoke["mode"] == "model", smoke
    assert smoke["resolution"] == [64, 64] and smoke["steps"] == 3
    assert str(project.root / "models" / "tiny") in str(smoke.get("model"))
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert "<strong>model tiny</strong>" in html  # the report says which model made the image
    assert f"model tiny: {project.root / 'models' / 'tiny'}" in html
    assert "tiny offline model" not in html
    # a second run: nothing to lock, nothing to download, the same model
    again = subprocess.run(
        [
            *base,
            "up",
            "linux-cuda",
            "--locked",
            "--allow-cpu",
            "--mirror",
            f"conda-forge={channel.as_uri()}",
            *where(tmp_path / "env2"),
        ],
        env={**env, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    assert "(0 B downloaded)" in again.stderr
