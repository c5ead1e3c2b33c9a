"""``ENVSPEC_LOCK_TIMEOUT`` bounds a real ``envspec lock`` (#20): the command's Settings read it, and
``LockOptions.limits`` carry it to the conda-lock runner's timer; the lock stage never reads it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envspec.errors import ExitCode

from .test_lock_integration import HANG_GUARD_S, snapshot
from .test_runner import _fresh_project

REPO = Path(__file__).resolve().parents[2]
#: A run the 3 s limit did not end waits on the channel for HANG_GUARD_S: far beyond this.
ENDED_WITHIN_S = 120


@pytest.mark.integration
def test_the_lock_timeout_of_the_environment_ends_a_lock_that_hangs(tmp_path: Path) -> None:
    """A channel that accepts and never answers, a channel timeout far away: only the 3 s of
    ENVSPEC_LOCK_TIMEOUT can end the run, in one line naming the variable, no lockfile changed."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    project = _fresh_project(tmp_path)  # rendered, never locked: the target is solved
    before = snapshot(project)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/cf"
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_CHANNEL_TIMEOUT": str(HANG_GUARD_S),
           "ENVSPEC_LOCK_TIMEOUT": "3"}  # fmt: skip
    argv = [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "lock", "--target",
            "linux-cuda", "--mirror", f"conda-forge={url}"]  # fmt: skip
    t0 = time.monotonic()
    try:
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=ENDED_WITHIN_S, check=False)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
    elapsed = time.monotonic() - t0
    assert run.returncode == ExitCode.TOOL_FAILED, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("error: conda-lock took longer than 3 s (linux-cuda)"), run.stderr
    assert "raise ENVSPEC_LOCK_TIMEOUT" in line and "Traceback" not in run.stderr
    assert held, "the solve never reached the channel: the limit ended something else"
    assert snapshot(project) == before
    print(f"ended after {elapsed:.1f} s")
