"""The processes of an ``envspec lock`` run: the conda-lock runner and the solver process.

:func:`start_runner` starts :mod:`envspec.lock.conda_lock_runner` (conda-lock imported once,
forked per target) and, with envspec's own solver, :func:`envspec.lock.solver_service.start_service`
starts the one py-rattler process of the run. :class:`EarlyRunner` starts both as early as a lock is
known to be needed (:func:`prestart`: before envspec.yml is even loaded) so that conda-lock's import
overlaps everything envspec does meanwhile, and hands the service the targets to solve ahead
(:meth:`EarlyRunner.presolve`); :func:`run_conda_lock` sends the runner its jobs and waits, under
one timeout for all of them. Its imports are light (no pydantic, py-rattler or conda-lock): the
command layer imports it before anything else of the lock stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.errors import EnvspecError, ToolFailed
from envspec.lock.conda_shim import shim_executable
from envspec.lock.solver_service import Service, service_stats, start_service
from envspec.settings import LOCK_TIMEOUT_ENV as TIMEOUT_ENV
from envspec.settings import LockLimits

if TYPE_CHECKING:
    from envspec.lock.conda_lock_job import Prepared
    from envspec.lock.jobs import ProjectLike


@dataclass(frozen=True)
class Solver:
    executable: Path
    label: str
    builtin: bool = False  # envspec's py-rattler shim: the runner serves its solves from one process


def resolve_solver(choice: str | None, cache_dir: Path) -> Solver:
    """``None``/``rattler``: envspec's shim; ``conda``/``mamba``/``micromamba``: from PATH; else a path."""
    if choice in {None, "", "rattler", "envspec"}:
        return Solver(shim_executable(cache_dir), "rattler (envspec shim)", builtin=True)
    assert choice is not None
    if choice in {"conda", "mamba", "micromamba"}:
        found = shutil.which(choice)
        if not found:
            raise ToolFailed(
                f"--solver {choice}: `{choice}` is not on PATH",
                tip="install it, pass its path (--solver /path/to/conda), or leave --solver out to use the built-in "
                "py-rattler solver",
            )
        return Solver(Path(found), choice)
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ToolFailed(f"--solver {choice}: no such file", tip="pass conda|mamba|micromamba or an existing path")
    return Solver(path.resolve(), str(path))


def start_runner(cwd: Path, *, shim: Path | None) -> subprocess.Popen[str]:
    """Start :mod:`envspec.lock.conda_lock_runner` now: it imports conda-lock while envspec prepares
    the jobs it then sends (:func:`run_conda_lock`; with ``shim``, envspec's conda shim, conda-lock's
    calls of it go to the solver process); :func:`stop_runner` if they never come."""
    flags = ["--shim", str(shim)] if shim is not None else []
    popen_extra: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {}
    return subprocess.Popen(
        [sys.executable, "-m", "envspec.lock.conda_lock_runner", *flags],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        **popen_extra,
    )


def stop_runner(proc: subprocess.Popen[str]) -> None:
    """Kill a runner and all it started (its process group), and reap it."""
    with contextlib.suppress(OSError):  # already gone
        if sys.platform != "win32":  # (a check mypy --platform understands)
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    proc.wait()


class EarlyRunner:
    """The runner (:func:`start_runner`) and, with envspec's shim, the solver service
    (:func:`envspec.lock.solver_service.start_service`), started on entry: conda-lock imports while
    envspec loads the spec, takes the run lock and prepares the jobs, and the service solves the
    prepared targets meanwhile (:meth:`presolve`). :meth:`take` hands the runner over; on exit a
    runner not taken is stopped, and the service is."""

    def __init__(
        self, cwd: Path, *, shim: Path | None, first: Callable[[], Iterable[Mapping[str, Any]]] | None = None
    ) -> None:
        self.cwd = cwd
        self.shim = shim
        self.first = first  # presolves to hand the service as soon as it runs (see prestart)
        self.proc: subprocess.Popen[str] | None = None
        self.service: Service | None = None
        self.sent: set[str] = set()

    def __enter__(self) -> EarlyRunner:
        self.proc = start_runner(self.cwd, shim=self.shim)
        if self.shim is not None:
            try:
                self.service = start_service(child_env())
                if self.first is not None and self.service is not None:
                    self.presolve(self.first())
            except BaseException:
                self.__exit__()
                raise
        return self

    def presolve(self, requests: Iterable[Mapping[str, Any]]) -> None:
        """Have the service solve these targets now (see
        :func:`envspec.lock.conda_lock_job.presolve_request`), as conda-lock will ask it to."""
        if self.service is None:
            return
        for request in requests:
            key = json.dumps(request, sort_keys=True)
            if key not in self.sent:  # (a target presolved from the rendered files is not sent again)
                self.sent.add(key)
                self.service.presolve(request)

    def socket(self) -> str | None:
        """The service's socket, if it runs (the runner routes conda-lock's solves there)."""
        return self.service.socket if self.service is not None and self.service.is_ready() else None

    def take(self) -> subprocess.Popen[str] | None:
        proc, self.proc = self.proc, None
        return proc

    def __exit__(self, *exc: object) -> None:
        proc = self.take()
        if proc is not None:
            stop_runner(proc)
        service, self.service = self.service, None
        if service is not None:
            service.stop()


def prestart(
    project: ProjectLike,
    solver: str | None,
    *,
    targets: Sequence[str] = (),
    mirrors: Mapping[str, str] | None = None,
    update: bool = False,
    spec_path: Path | None = None,
) -> contextlib.AbstractContextManager[EarlyRunner | None]:
    """The runner (and the service) for ``envspec lock --solver SOLVER``, started now, before the
    spec is loaded, when a solve is certain: ``--update``, or one of the ``targets`` (all rendered
    ones when empty) has no lockfile yet (a first lock). Pass what the context gives to
    :func:`envspec.lock.run.lock` (``early=``); with None (lockfiles there: only the plan knows
    whether any is stale, and a run that solves nothing must not pay for conda-lock's import) the
    lock starts them itself once it has work. With ``mirrors`` (a plain solve: no ``--update``, no
    ``--exclude-newer``), the service is handed at once the targets without lockfiles, read from
    the rendered files (:func:`envspec.lock.conda_lock_job.cold_presolve_requests`), in the order
    of ``spec_path``'s targets (conda-lock's jobs run in that order). None too when the solver is
    not usable: the lock then says why."""
    unlocked = unlocked_targets(project, targets)
    if not update and not unlocked:
        return contextlib.nullcontext()
    try:
        resolved = resolve_solver(solver, project.cache_dir)
    except (EnvspecError, OSError):
        return contextlib.nullcontext()

    def first() -> list[dict[str, Any]]:
        from envspec.lock.conda_lock_job import cold_presolve_requests

        order = {name: n for n, name in enumerate(spec_target_order(spec_path))} if spec_path else {}
        first_solved = sorted(unlocked, key=lambda t: order.get(t, len(order)))
        return cold_presolve_requests(project, first_solved, mirrors or {})

    shim = resolved.executable if resolved.builtin else None
    return EarlyRunner(project.root, shim=shim, first=first if mirrors is not None else None)


def unlocked_targets(project: ProjectLike, targets: Sequence[str] = ()) -> list[str]:
    """The ``targets`` (every rendered one when empty) whose environment file is rendered but whose
    conda-lock file does not exist: a lock certainly solves them. Reads no file."""
    files = [project.env_file(t) for t in targets] or sorted(project.root.glob("environment-*.yml"))
    names = [f.name.removeprefix("environment-").removesuffix(".yml") for f in files]
    return [t for t, f in zip(names, files, strict=True) if f.is_file() and not project.conda_lock_file(t).exists()]


def spec_target_order(spec_path: Path) -> list[str]:
    """The target names of an envspec.yml in their order, read without loading (checking) the
    spec; [] when it cannot be read so."""
    from envspec.fsutil import read_regular_text

    try:
        import yaml

        data = yaml.load(read_regular_text(spec_path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        targets = data["targets"]
        return [str(name) for name in targets] if isinstance(targets, dict) else []
    except Exception:  # anything: the order is a hint, the real load says what is wrong
        return []


def run_conda_lock(
    preps: Sequence[Prepared],
    *,
    cwd: Path,
    max_workers: int,
    on_done: Callable[[Prepared, int, float], None],
    runner: subprocess.Popen[str] | None = None,
    service: str | None = None,
    timeout: float = LockLimits.timeout_s,
) -> None:
    """Run all prepared conda-lock invocations through :mod:`envspec.lock.conda_lock_runner` (one
    conda-lock import, forked per target on POSIX; with envspec's conda shim, one solver process for
    all of them: the one at ``service``), in ``runner`` (:func:`start_runner`, or
    :class:`EarlyRunner`; None: a runner without the shim is started), all within ``timeout``
    seconds (``LockLimits.timeout_s``). Interrupts kill the whole process group."""
    request = {
        "watch_parent": os.name == "posix",
        "max_workers": max_workers,
        "service": service,
        "jobs": [
            {"id": p.job.target, "argv": p.argv, "env": p.env, "stdout": str(p.stdout), "stderr": str(p.stderr)}
            for p in preps
        ],
    }
    by_id = {p.job.target: p for p in preps}
    start = time.monotonic()
    proc = runner if runner is not None else start_runner(cwd, shim=None)

    def kill() -> None:
        with contextlib.suppress(OSError):  # already gone
            if sys.platform != "win32":  # (a check mypy --platform understands)
                os.killpg(proc.pid, signal.SIGKILL)  # the runner and its forked conda-locks
            else:
                proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    done: set[str] = set()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()  # stdin stays open: the runner kills its group when it sees EOF early
        for line in proc.stdout:
            if not line.strip().startswith("{"):
                continue
            message = json.loads(line)
            done.add(message["id"])
            on_done(by_id[message["id"]], int(message["returncode"]), time.monotonic() - start)
        proc.wait()
    except BaseException:
        kill()
        proc.wait()
        raise
    finally:
        timer.cancel()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    missing = [p for p in preps if p.job.target not in done]
    if missing:
        if time.monotonic() - start >= timeout:
            raise ToolFailed(
                f"conda-lock took longer than {timeout:g} s ({', '.join(p.job.target for p in missing)})",
                tip=f"a slow or unreachable channel? try --mirror, or raise {TIMEOUT_ENV}",
            )
        raise ToolFailed(f"the conda-lock runner ended early (exit {proc.returncode}) before finishing all targets")


def child_env() -> dict[str, str]:
    """The runner's and the service's environment. ENVSPEC_MIRRORS may hold credentials: each job
    gets its own routes (and secrets) in its env, exactly as with --mirror; conda-lock and its tools
    never see the variable itself."""
    return {**{k: v for k, v in os.environ.items() if k != MIRRORS_ENV}, "PYTHONPATH": _pythonpath()}


def _pythonpath() -> str:
    """The runner and shim must import THIS envspec, even from a source checkout."""
    here = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + old if old else "")


def report_solves(runner: EarlyRunner, progress: Callable[[str], None]) -> None:
    """``-v``: how many solves the solver process ran, and how many of conda-lock's it had ready."""
    path = runner.socket()
    with contextlib.suppress(OSError, ValueError, KeyError):
        if path is not None:
            stats = service_stats(path)
            progress(
                f"solver process: {stats['solved']} solve(s), {stats['reused']} of conda-lock's answered "
                "from a solve done before it asked"
            )
