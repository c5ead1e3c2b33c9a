"""Fixtures of the smoke-test tests: one tiny model shared by the session, and an in-process runner."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # test support modules of this folder (ldm_format)

from envspec.smoke.cli import OFFLINE_ENV


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline saved once per session (tests copy it before changing anything)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from envspec.smoke.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def tiny_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    return target


SmokeResult = tuple[int, dict[str, Any], Path]


@pytest.fixture
def smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., SmokeResult]:
    """Run ``python -m envspec.smoke ARGS`` in this process; return (exit code, smoke.json, out dir)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from envspec.smoke import cli

    for key in OFFLINE_ENV:  # main() sets them; restore after the test
        monkeypatch.setenv(key, "1")
    for key in ("ENVSPEC_DEVICE", "ENVSPEC_TARGET"):
        monkeypatch.delenv(key, raising=False)
    counter = iter(range(1000))

    def run(*args: str) -> SmokeResult:
        out = tmp_path / f"out{next(counter)}"
        code = cli.main([*args, "--out", str(out)])
        printed = capsys.readouterr().out.strip().splitlines()
        assert len(printed) == 1, printed  # the one-line verdict
        data = json.loads((out / "smoke.json").read_text())
        assert printed[0].startswith(f"smoke {data['verdict'].upper()}: ")
        return code, data, out

    return run
