"""The conda shim reads regular files only (#21 family 7): a channel's repodata.json, conda-lock's
virtual-package channel and the fake prefix's conda-meta records are read by path, and a FIFO
(no writer: the read would wait forever) or /dev/zero (never ends) given there is refused in one
line, at once, instead of hanging the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,  # the shim runs as conda-lock runs it: a process of its own
    pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="FIFOs, /dev/zero"),
]


def shim(*argv: str, subdir: str = "linux-64") -> tuple[int, dict[str, object]]:
    """The shim executable's answer, in a child with a deadline (a hang fails the test, not the run)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONDA_SUBDIR": subdir, "ENVSPEC_CHANNEL_TIMEOUT": "5"}
    proc = subprocess.run(
        [sys.executable, "-m", "envspec.lock.conda_shim", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,  # (each answer comes at once: a hang, or an endless read, is the failure)
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


def channel(root: Path, **repodata: str) -> Path:
    """A local channel: ``{subdir: "fifo" | "zero" | "empty"}`` for each subdir's repodata.json."""
    for subdir, kind in repodata.items():
        path = root / subdir / "repodata.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            path.symlink_to("/dev/zero")
        else:
            path.write_text(json.dumps({"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}}))
    return root


def create(root: Path) -> tuple[int, dict[str, object]]:
    return shim("create", "--prefix", "/p", "--dry-run", "--json", "--channel", root.as_uri(), "python")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
@pytest.mark.parametrize("subdir", ["noarch", "linux-64"])
def test_a_repodata_that_is_no_regular_file_is_refused_not_read(tmp_path: Path, kind: str, subdir: str) -> None:
    other = "linux-64" if subdir == "noarch" else "noarch"
    root = channel(tmp_path / "cf", **{subdir: kind, other: "empty"})
    code, answer = create(root)
    assert code == 1 and answer["envspec_kind"] == "channel_unreachable", answer
    message = str(answer["message"])
    assert f"{subdir}/repodata.json is not a regular file" in message and "\n" not in message


def test_a_conda_meta_record_that_is_no_regular_file_is_refused_not_read(tmp_path: Path) -> None:
    """``list -p PREFIX`` (conda-lock's --update path) reads the fake prefix's records."""
    meta = tmp_path / "prefix" / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "python-3.12.0-h0_0.json").write_text(json.dumps({"name": "python", "version": "3.12.0"}))
    os.mkfifo(meta / "tqdm-4.67.1-pyhd_0.json")
    code, answer = shim("list", "-p", str(tmp_path / "prefix"), "--json")
    assert code == 1 and answer["envspec_kind"] == "usage", answer
    assert "tqdm-4.67.1-pyhd_0.json is not a regular file" in str(answer["message"])


def test_envspec_lock_refuses_a_mirror_whose_noarch_repodata_is_a_fifo_before_conda_lock_starts(
    tmp_path: Path,
) -> None:
    """envspec's own check of a local channel (before any solve) says the same, exit 5, at once."""
    from .test_lock_integration import envspec, snapshot

    project = tmp_path / "proj"
    project.mkdir()
    (project / "envspec.yml").write_bytes((REPO / "tests" / "data" / "synthetic" / "envspec.yml").read_bytes())
    assert envspec(project, "render")[0] == 0
    root = channel(tmp_path / "cf", noarch="fifo", **{"linux-64": "empty"})
    before = snapshot(project)
    code, _, err = envspec(project, "lock", "--target", "linux-cuda", "--mirror", f"conda-forge={root.as_uri()}")
    assert code == 5, err  # ExitCode.CHANNEL_UNREACHABLE
    assert "noarch/repodata.json is not a regular file" in err and "Traceback" not in err
    assert snapshot(project) == before
