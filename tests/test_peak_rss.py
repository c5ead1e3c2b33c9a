"""The suite's memory limit (tests/peak_rss.py) fails a run that passes it, and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="getrusage: Unix only"),
]


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    argv = [sys.executable, "-m", "pytest", "-p", "peak_rss", "-p", "no:cacheprovider", "-q", "test_ok.py", *args]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_a_run_within_the_limit_passes_and_prints_its_peak(tmp_path: Path) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "peak RSS: pytest " in run.stdout and "limit 3000 MB: ok" in run.stdout


def test_a_run_over_the_limit_fails_though_its_tests_pass(tmp_path: Path) -> None:
    run = _pytest(tmp_path, "--peak-rss-limit-mb", "1")  # any Python process holds more than 1 MB
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "1 passed" in run.stdout and "OVER the 1 MB limit" in run.stdout


def test_xdist_workers_report_their_own_peaks(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    run = _pytest(tmp_path, "-n", "2", "--peak-rss-limit-mb", "1")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "gw0 " in run.stdout and "gw1 " in run.stdout and "OVER the 1 MB limit" in run.stdout
