"""Run several conda-lock CLI invocations while paying conda-lock's import cost once.

``python -m envspec.lock.conda_lock_runner`` reads a JSON job list on stdin. Importing conda-lock takes
about a second of CPU; on POSIX this process imports its public entry point (``conda_lock.main``,
the click CLI) once and forks one child per job, each running exactly the command line
``conda-lock ARGS...`` would, with its own environment additions and its stdout/stderr in files.
Without ``os.fork`` (Windows) each job is a ``python -m conda_lock ARGS...`` child instead.

envspec keeps this process's stdin open while it waits: if envspec dies (even by SIGKILL), this
process kills its own process group, so no conda-lock outlives the run that started it.

Each finished job is reported as one JSON line ``{"id": ..., "returncode": N}`` on stdout, as soon
as it finishes. At most ``max_workers`` jobs run at once.

Input: ``{"max_workers": 2, "jobs": [{"id": "t", "argv": [...], "env": {...}, "stdout": PATH,
"stderr": PATH}]}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _child(job: Mapping[str, Any], conda_lock_main: Any) -> int:
    os.environ.update({str(k): str(v) for k, v in job.get("env", {}).items()})
    tempfile.tempdir = None  # re-read TMPDIR: conda-lock's temp dirs go where the job says
    out_fd = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err_fd = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    argv = [str(a) for a in job["argv"]]
    sys.argv = ["conda-lock", *argv]
    try:
        conda_lock_main.main(args=argv, prog_name="conda-lock", standalone_mode=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _report(job_id: str, returncode: int) -> None:
    sys.stdout.write(json.dumps({"id": job_id, "returncode": returncode}) + "\n")
    sys.stdout.flush()


def run_forked(jobs: Sequence[Mapping[str, Any]], max_workers: int) -> None:
    if sys.platform != "win32":  # no fork() there: main() runs run_spawned (a check mypy understands)
        from conda_lock import main as conda_lock_main  # the public CLI entry point, imported once

        running: dict[int, str] = {}
        queue = list(jobs)
        while queue or running:
            while queue and len(running) < max_workers:
                job = queue.pop(0)
                sys.stdout.flush()
                pid = os.fork()
                if pid == 0:  # child
                    code = 1
                    try:
                        code = _child(job, conda_lock_main)
                    finally:
                        os._exit(code)
                running[pid] = str(job["id"])
            pid, status = os.wait()
            if pid in running:
                _report(running.pop(pid), os.waitstatus_to_exitcode(status))


def run_spawned(jobs: Sequence[Mapping[str, Any]], max_workers: int) -> None:
    running: list[tuple[subprocess.Popen[bytes], str, Any, Any]] = []
    queue = list(jobs)
    while queue or running:
        while queue and len(running) < max_workers:
            job = queue.pop(0)
            out = Path(job["stdout"]).open("wb")  # noqa: SIM115 - closed when the child ends
            err = Path(job["stderr"]).open("wb")  # noqa: SIM115
            env = {**os.environ, **{str(k): str(v) for k, v in job.get("env", {}).items()}}
            proc = subprocess.Popen([sys.executable, "-m", "conda_lock", *job["argv"]], stdout=out, stderr=err, env=env)
            running.append((proc, str(job["id"]), out, err))
        for entry in list(running):
            proc, job_id, out, err = entry
            if proc.poll() is not None:
                out.close()
                err.close()
                running.remove(entry)
                _report(job_id, proc.returncode)
        if running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0][0].wait(timeout=0.05)


def _die_with_parent() -> None:
    """Kill this process group (runner, forked conda-locks, their solvers) when envspec dies.

    envspec keeps our stdin open while it waits; EOF on it means envspec is gone (finished, or
    killed with SIGKILL, which it cannot intercept). Reads the raw fd: no buffer lock is held
    across fork().
    """
    while True:
        try:
            chunk = os.read(0, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
    if sys.platform != "win32":
        with contextlib.suppress(OSError):
            os.killpg(os.getpgid(0), signal.SIGKILL)
    os._exit(1)


def _read_request() -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    request: dict[str, Any] = json.loads(data.decode("utf-8"))
    return request


def main() -> None:
    request = _read_request()
    if request.get("watch_parent") and hasattr(os, "killpg"):
        threading.Thread(target=_die_with_parent, daemon=True).start()
    jobs = request["jobs"]
    workers = max(1, int(request.get("max_workers") or 1))
    if hasattr(os, "fork") and not request.get("no_fork"):
        run_forked(jobs, workers)
    else:
        run_spawned(jobs, workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
