"""Shared test setup.

Unit tests may not spawn processes: an autouse fixture makes subprocess fail unless the test is
marked ``integration`` (those run the real tools: conda-lock, the installer, torch).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


class SpawnForbidden(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _forbid_subprocess(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("integration"):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise SpawnForbidden(f"unit test {request.node.nodeid} tried to spawn a process: mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A scratch copy of the project's inputs (spec + templates) to render into."""
    dest = tmp_path / "proj"
    dest.mkdir()
    shutil.copy2(REPO / "envspec.yml", dest / "envspec.yml")
    shutil.copytree(REPO / "templates", dest / "templates")
    return dest
