"""``ENVSPEC_LOCK_TIMEOUT`` bounds a real ``envspec lock`` (#20): the command's Settings read it, and
``LockOptions.limits`` carry it to the conda-lock runner's timer; the lock stage never reads it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envspec.errors import ExitCode

from .conftest import SilentChannel
from .test_lock_integration import HANG_GUARD_S, snapshot
from .test_runner import _fresh_project

REPO = Path(__file__).resolve().parents[2]
#: A run the 3 s limit did not end waits on the channel for HANG_GUARD_S: far beyond this.
ENDED_WITHIN_S = 120


@pytest.mark.integration
def test_the_lock_timeout_of_the_environment_ends_a_lock_that_hangs(
    tmp_path: Path, silent_channel: SilentChannel
) -> None:
    """A channel that accepts and never answers, a channel timeout far away: only the 3 s of
    ENVSPEC_LOCK_TIMEOUT can end the run, in one line naming the variable, no lockfile changed."""
    project = _fresh_project(tmp_path)  # rendered, never locked: the target is solved
    before = snapshot(project)
    url = silent_channel.url
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_CHANNEL_TIMEOUT": str(HANG_GUARD_S),
           "ENVSPEC_LOCK_TIMEOUT": "3"}  # fmt: skip
    argv = [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "lock", "--target",
            "linux-cuda", "--mirror", f"conda-forge={url}"]  # fmt: skip
    t0 = time.monotonic()
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=ENDED_WITHIN_S, check=False)
    elapsed = time.monotonic() - t0
    assert run.returncode == ExitCode.TOOL_FAILED, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("error: conda-lock took longer than 3 s (linux-cuda)"), run.stderr
    assert "raise ENVSPEC_LOCK_TIMEOUT" in line and "Traceback" not in run.stderr
    assert silent_channel.held, "the solve never reached the channel: the limit ended something else"
    assert snapshot(project) == before
    print(f"ended after {elapsed:.1f} s")
