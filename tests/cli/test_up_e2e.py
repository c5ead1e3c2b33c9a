"""`envspec up` end to end, for real: conda-lock, the hash-checked installer, torch, the report.

The project is the repository's spec, rendered into a temp folder. Its channel is the lock tests'
conda-forge-shaped channel of real ``.conda`` packages, except that the linux-64 ``python`` package
ships ``bin/python``: a shell script exec'ing the interpreter running these tests (which has CPU
torch, diffusers and transformers). So ``envspec up linux-cuda --lock --allow-cpu`` really solves
the lockfile, installs the 22 packages (hashes checked), runs the smoke test with the prefix's
``bin/python`` (a real tiny pipeline) and writes report.html. Each run is a child process, as
users run it (py-rattler may crash at interpreter exit; the CLI leaves with ``os._exit``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / "tests" / "channel_factory.py"
TARGET = "linux-cuda"  # the shipped spec's linux-64 target with a GPU promise (cuda)

_missing = [m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None]
if _missing:
    pytest.skip(
        f"{', '.join(_missing)} not importable in {sys.executable}: the smoke step needs them "
        "(pip install -e '.[test,smoke]')",
        allow_module_level=True,
    )
if sys.platform == "win32":
    pytest.skip("the channel's python launcher is a POSIX shell script", allow_module_level=True)


def envspec_child(project: Path, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """`envspec --spec PROJECT/envspec.yml ARGS` in a child process."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ENVSPEC_MIRRORS", "ENVSPEC_HOST_SUBDIR")}
    environ.update({"PYTHONPATH": str(REPO), "ENVSPEC_PKGS_DIR": str(cache)})
    return subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("up-channel") / "conda-forge-local"
    subprocess.run(
        [sys.executable, str(FACTORY), str(root), "--python-launcher", sys.executable],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's spec and templates, rendered; no lockfile yet."""
    root = tmp_path_factory.mktemp("up") / "proj"
    root.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", root / "envspec.yml")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--spec", str(root / "envspec.yml"), "render"]) == 0
    return root


@pytest.fixture(scope="module")
def upped(project: Path, channel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """One full `envspec up --allow-cpu` with no lockfile yet (it is solved first): (project, prefix, out)."""
    work = tmp_path_factory.mktemp("up-run")
    prefix, out = work / "env", work / "out"
    proc = envspec_child(
        project,
        "up",
        TARGET,
        "--mirror",
        f"conda-forge={channel.as_uri()}",
        "--allow-cpu",
        "--no-models",  # the shipped sd-v1-5 needs the real Hub: tests/models/test_models_up.py pulls one
        "--prefix",
        str(prefix),
        "--out",
        str(out),
        cache=work / "pkgs",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # one final line on stdout; everything else went to stderr
    assert lines[0].startswith(f"up {TARGET}: PASS on cpu"), lines[0]
    assert f"prefix {prefix}" in lines[0] and str(out / "report" / "report.html") in lines[0]
    for n, step in enumerate(("doctor", "lock", "install", "models", "smoke", "report"), 1):
        assert f"[{n}/6] {step}: " in proc.stderr
    assert "lockfiles/linux-cuda.lock does not exist; solving linux-cuda first" in proc.stderr
    assert "locked lockfiles/linux-cuda.lock: " in proc.stderr
    assert "[4/6] models: skipped (--no-models)" in proc.stderr
    return project, prefix, out


def test_up_locks_installs_smokes_and_reports(upped: tuple[Path, Path, Path], channel: Path) -> None:
    project, prefix, out = upped
    # lock: really solved against the mirror, recorded with conda-forge's own URLs (a mirror is transport)
    explicit = (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    assert "https://conda.anaconda.org/conda-forge/linux-64/pytorch-2.13.0-cuda129_" in explicit
    assert channel.as_uri() not in explicit
    # install: conda-meta records of what the lockfile names, and the launcher is executable
    records = {json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")}
    assert {"python", "pytorch", "diffusers", "cuda-version"} <= records
    assert os.access(prefix / "bin" / "python", os.X_OK)
    assert list((prefix.parent / "pkgs" / ".envspec").glob("*.json"))  # its package cache: $ENVSPEC_PKGS_DIR
    # smoke: ran in the prefix, on the CPU, against the cuda promise
    smoke = json.loads((out / TARGET / "smoke.json").read_text(encoding="utf-8"))
    assert smoke["verdict"] == "pass"
    assert smoke["device"] == "cpu" and smoke["promised_device"] == "cuda"
    assert smoke["target"] == TARGET and smoke["allow_cpu"] is True
    assert (out / TARGET / "smoke.png").read_bytes().startswith(b"\x89PNG")
    # report: the target's row, its fresh lockfile and the image embedded
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    assert TARGET in html and "data:image/png;base64," in html
    assert "tiny offline model" in html  # --no-models: the report says the image is the stand-in's
    md = (out / "report" / "report.md").read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if TARGET in line and line.startswith("|"))
    # fresh, and marked as solved against the tests' synthetic channel (never a lockfile to commit)
    assert "pass" in row and "| fresh<br>solved against the tests' synthetic channel: never commit it |" in row, row


def test_up_without_allow_cpu_stops_on_a_machine_without_the_gpu(
    upped: tuple[Path, Path, Path], channel: Path, tmp_path: Path
) -> None:
    project, _, _ = upped
    prefix = tmp_path / "env"
    proc = envspec_child(
        project,
        "up",
        TARGET,
        "--mirror",
        f"conda-forge={channel.as_uri()}",
        "--prefix",
        str(prefix),
        "--out",
        str(tmp_path / "out"),
        cache=tmp_path / "pkgs",
    )
    assert proc.returncode == 1, proc.stderr[-4000:]
    # Without an NVIDIA GPU the doctor stops it before anything is installed; on a machine with
    # one the doctor passes and the smoke test fails: this CPU torch cannot keep the cuda promise.
    if "[1/6] doctor: FAILED" in proc.stderr:
        assert "nvidia-gpu" in proc.stderr and "--allow-cpu" in proc.stderr
        assert "FAILED at doctor" in proc.stdout
        assert not prefix.exists()
    else:
        assert "FAILED at smoke" in proc.stdout and "error: smoke:" in proc.stderr
    assert "report none" in proc.stdout


def test_up_locked_with_a_stale_lockfile_stops_before_installing(
    upped: tuple[Path, Path, Path], channel: Path, tmp_path: Path
) -> None:
    source, _, _ = upped
    project = tmp_path / "proj"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns(".envspec-cache"))
    env_file = project / f"environment-{TARGET}.yml"
    env_file.write_text(env_file.read_text(encoding="utf-8") + "# edited after locking\n", encoding="utf-8")
    lockfile = project / "lockfiles" / f"{TARGET}.lock"
    before = lockfile.read_bytes()
    prefix = tmp_path / "env"
    proc = envspec_child(
        project,
        "up",
        TARGET,
        "--mirror",
        f"conda-forge={channel.as_uri()}",
        "--allow-cpu",
        "--locked",
        "--prefix",
        str(prefix),
        "--out",
        str(tmp_path / "out"),
        cache=tmp_path / "pkgs",
    )
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert "[2/6] lock: FAILED" in proc.stderr and "[3/6]" not in proc.stderr
    assert f"lockfiles/{TARGET}.lock does not match" in proc.stderr and "--locked" in proc.stderr
    assert "FAILED at lock" in proc.stdout
    assert not prefix.exists()
    assert lockfile.read_bytes() == before
