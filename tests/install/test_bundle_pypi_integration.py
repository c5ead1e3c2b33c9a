"""`envspec pack` / `install --from` with PyPI packages: the wheels travel in the bundle.

The lock tests' conda channel with ``pip`` and a ``python`` whose prefix has its own site-packages
(tests/pypi_index.py), a local PEP 503 index for the wheels; the target is locked against both,
packed, and the index is stopped before ``install --from`` runs with no network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import envspec, envspec_inproc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import pypi_index  # noqa: E402

OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}

if sys.platform == "win32":
    pytest.skip("the channel's python launcher is a POSIX shell script", allow_module_level=True)


def test_wheels_travel_in_the_bundle(tmp_path: Path) -> None:
    channel = tmp_path / "conda-forge-local"
    subprocess.run([sys.executable, str(REPO / "tests" / "pypi_index.py"), str(channel), sys.executable],
                   check=True, capture_output=True)  # fmt: skip
    project = tmp_path / "proj"
    project.mkdir()
    spec = yaml.safe_load((REPO / "tests" / "data" / "synthetic" / "envspec.yml").read_text(encoding="utf-8"))
    spec["targets"]["linux-cuda"]["pip"] = ["envspec-demo>=1.0"]
    (project / "envspec.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")

    assert envspec_inproc(project, "render")[0] == 0
    bundle = tmp_path / "b.tar"
    projects = [pypi_index.Project("envspec-demo", "1.0", requires=("envspec-helper>=0.1",)),
                pypi_index.Project("envspec-helper", "0.2")]  # fmt: skip
    with pypi_index.serve(tmp_path / "index", projects) as index:
        mirrors = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
        locked = envspec(project, "lock", "--target", "linux-cuda", *mirrors)
        assert locked.returncode == 0, locked.stderr
        packed = envspec(project, "pack", "linux-cuda", "-o", str(bundle), *mirrors)
        assert packed.returncode == 0, packed.stderr
        assert ", 2 wheels" in packed.stdout
    prefix = tmp_path / "env"
    proc = envspec(project, "install", "linux-cuda", "--from", str(bundle), "-p", str(prefix),
                   "--cache-dir", str(tmp_path / "cache"), env=OFFLINE)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "+ 2 from PyPI" in proc.stdout
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", "import envspec_demo, envspec_helper; print('ok')"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.stdout.strip() == "ok", out.stderr
