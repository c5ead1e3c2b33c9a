"""Fixtures of the lock tests: a real local conda channel, built once per session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FACTORY = Path(__file__).resolve().parent.parent / "channel_factory.py"


@pytest.fixture(scope="session")
def local_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conda-forge-shaped channel of real ``.conda`` packages, indexed by py-rattler.

    Built in a child process: py-rattler may crash at interpreter exit, and a child keeps
    that (and its exit code) away from the test process.
    """
    root = tmp_path_factory.mktemp("channel") / "conda-forge-local"
    subprocess.run([sys.executable, str(FACTORY), str(root)], check=True, capture_output=True)
    return root
