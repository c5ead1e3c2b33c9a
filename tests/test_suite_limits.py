"""The suite's own limits: a run over the memory limit (tests/peak_rss.py) fails and says so; no
verdict depends on how fast the machine is (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent
UNIX = pytest.mark.skipif(sys.platform == "win32", reason="getrusage: Unix only")


@given(st.integers())
def test_hypothesis_judges_examples_not_the_machines_speed(n: int) -> None:
    assert settings().deadline is None  # an example slowed by a busy machine is not a failure
    assert HealthCheck.too_slow in settings().suppress_health_check


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    argv = [sys.executable, "-m", "pytest", "-p", "peak_rss", "-p", "no:cacheprovider", "-q", "test_ok.py", *args]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.integration
@UNIX
def test_a_run_within_the_limit_passes_and_prints_its_peak(tmp_path: Path) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "peak RSS: pytest " in run.stdout and "largest child" in run.stdout and "limit 3000 MB: ok" in run.stdout


@pytest.mark.integration
@UNIX
def test_a_run_over_the_limit_fails_though_its_tests_pass(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "--peak-rss-limit-mb", "1")  # any Python process holds more than 1 MB
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "limit 1 MB: OVER the limit" in run.stdout
