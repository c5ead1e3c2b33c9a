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

``python -m envspec.lock.conda_lock_runner [--shim PATH]`` imports conda-lock first, then
reads its request (envspec starts it early and prepares the jobs meanwhile; EOF instead of a
request: nothing to run): ``{"max_workers": 2, "service": SOCKET, "jobs": [{"id": "t", "argv":
[...], "env": {...}, "stdout": PATH, "stderr": PATH}]}``. Modules conda-lock imports but a run may
not need (:data:`DEFERRED`) are imported on first use.

**One solver process per run.** With ``--shim`` (the path of envspec's conda shim, given to
conda-lock as ``--conda``), fork and a ``service`` (the socket of the
:func:`envspec.lock.solver_service.serve` process envspec started beside this one), conda-lock's own
calls of that executable are pointed at the service: conda-lock calls
``subprocess.run``/``check_output`` from ``conda_lock.conda_solver`` and ``conda_lock.conda_lock``,
and those two modules see a ``subprocess`` whose calls of the shim's path are answered by the
service (solves) or in place (``--version``, ``info``, ``list``: no py-rattler needed); any other
command line runs as before. So a run starts no interpreter per solve, and the service opens each
subdir's repodata once (and has usually solved each target while this process imported
conda-lock). A crash of py-rattler ends only the service: the solve in flight fails with a clear
error, later ones run the shim executable as before, and envspec, the runner and conda-lock carry on.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import string
import subprocess
import sys
import tempfile
import threading
import traceback
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from envspec.lock import conda_shim, solver_service  # stdlib imports only: imported once, before the forks


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


class ShimRouter:
    """``subprocess`` as two conda-lock modules see it: the shim's command lines go to the service."""

    def __init__(self, shim: str, socket_path: str | None) -> None:
        self.shim = shim
        self.socket_path = socket_path

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def _ours(self, args: Any) -> bool:
        return isinstance(args, (list, tuple)) and bool(args) and str(args[0]) == self.shim

    def _call(self, args: Sequence[Any], env: Mapping[str, str] | None) -> tuple[int, str]:
        argv = [str(a) for a in args[1:]]
        environ = dict(os.environ if env is None else env)
        if conda_shim.parse_command(argv).action not in solver_service.SOLVES:
            return conda_shim.run(argv, environ)  # no py-rattler: answered here
        if self.socket_path is not None:
            try:
                return solver_service.ask(self.socket_path, argv, environ)
            except OSError:  # the service is gone (crashed earlier): run the shim itself
                self.socket_path = None
        proc = subprocess.run([self.shim, *argv], env=environ, capture_output=True, text=True, check=False)
        sys.stderr.write(proc.stderr)
        return proc.returncode, proc.stdout

    def run(self, args: Any, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        if not self._ours(args):
            return subprocess.run(args, **kwargs)  # noqa: PLW1510 - the caller's own check=
        code, out = self._call(args, kwargs.get("env"))
        text = bool(kwargs.get("text") or kwargs.get("encoding") or kwargs.get("universal_newlines"))
        result = subprocess.CompletedProcess(args, code, out if text else out.encode(), "" if text else b"")
        if kwargs.get("check"):
            result.check_returncode()
        return result

    def check_output(self, args: Any, **kwargs: Any) -> Any:
        if not self._ours(args):
            return subprocess.check_output(args, **kwargs)
        code, out = self._call(args, kwargs.get("env"))
        text = bool(kwargs.get("text") or kwargs.get("encoding") or kwargs.get("universal_newlines"))
        data = out if text else out.encode()
        if code != 0:
            raise subprocess.CalledProcessError(code, args, output=data)
        return data


def route_shim(conda_lock_modules: Sequence[Any], shim: str, socket_path: str | None) -> None:
    """Point the given conda-lock modules' ``subprocess`` at a :class:`ShimRouter`."""
    router = ShimRouter(shim, socket_path)
    for module in conda_lock_modules:
        module.subprocess = router


#: Modules conda-lock imports at start-up but calls into only in some runs, with the names it takes
#: from them (tests/lock/test_runner.py checks these against conda-lock's own imports): the
#: bootstrap of a conda executable (envspec always passes ``--conda``), the PyPI solver and what
#: only a PyPI part needs (conda-lock never sees one: envspec's uv step solves it, after), the
#: conda<->PyPI name mapping (and its download cache), the meta.yaml and pyproject.toml readers
#: (envspec gives environment files) and the ``render-lock-spec`` exporter.
#: About half of conda-lock's import, before the first target can start.
DEFERRED: Final[Mapping[str, tuple[str, ...]]] = {
    "ensureconda.api": ("ensureconda", "determine_micromamba_version"),
    "conda_lock.pypi_solver": ("solve_pypi", "PlatformEnv"),
    "conda_lock.src_parser.meta_yaml": ("parse_meta_yaml_file",),  # conda-build recipes (and jinja2)
    "conda_lock.lookup": ("conda_name_to_pypi_name", "pypi_name_to_conda_name"),  # (filelock, asyncio)
    "conda_lock.src_parser.pyproject_toml": (
        "parse_platforms_from_pyproject_toml",
        "parse_pyproject_toml",
        "parse_python_requirement",  # (tomlkit, packaging's requirement parser)
    ),
    "conda_lock.src_parser.markers": ("evaluate_marker",),  # PEP 508 markers of pip: entries
    "conda_lock.export_lock_spec": ("EditableDependency", "render_pixi_toml"),  # render-lock-spec
}
#: Constants conda-lock takes from a deferred module at import (a click option's default): the
#: stand-in carries the same value (tests/lock/test_runner.py compares it with the real module's).
DEFERRED_VALUES: Final[Mapping[str, Mapping[str, object]]] = {
    "conda_lock.lookup": {
        "DEFAULT_MAPPING_URL": "https://raw.githubusercontent.com/regro/cf-graph-countyfair/master/mappings/pypi/"
        "grayskull_pypi_mapping.json",
    },
}
_DEFERRED_MARK: Final = "__envspec_deferred__"
#: conda-lock's import-time probe for an installed mamba (``HAVE_MAMBA = ensureconda(**probe) is not
#: None``): it only sets the default of ``--mamba``, which every envspec job overrides (``--no-mamba
#: --no-micromamba --conda PATH``), so :func:`_probe_answered` answers it without importing
#: ensureconda's installer (conda-package-streaming, filelock, asyncio: ~30 ms).
MAMBA_PROBE: Final[Mapping[str, bool]] = {
    "mamba": True,
    "micromamba": False,
    "conda": False,
    "conda_exe": False,
    "no_install": True,
}


def _probe_answered(**kwargs: Any) -> Any:
    """``ensureconda.api.ensureconda`` in the runner: None for :data:`MAMBA_PROBE`, else the real call."""
    if kwargs == MAMBA_PROBE:
        return None
    return real_module("ensureconda.api").ensureconda(**kwargs)


def defer_imports(
    deferred: Mapping[str, Sequence[str]], values: Mapping[str, Mapping[str, object]] | None = None
) -> list[str]:
    """Put a stand-in for each module of ``deferred`` (not yet imported) in ``sys.modules``: each of
    its names is a function that imports the real module on first call and forwards to it (and
    each of its ``values`` that constant), so code that only imports them pays nothing. Returns the
    modules deferred."""
    done = []
    for name, attrs in deferred.items():
        if name in sys.modules:
            continue
        stand_in = types.ModuleType(name, "imported on first use (envspec.lock.conda_lock_runner.defer_imports)")
        setattr(stand_in, _DEFERRED_MARK, True)
        for attr in attrs:
            setattr(stand_in, attr, _forwarder(name, attr))
        for attr, value in (values or {}).get(name, {}).items():
            setattr(stand_in, attr, value)
        sys.modules[name] = stand_in
        done.append(name)
    return done


def _forwarder(module: str, attr: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(real_module(module), attr)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = attr
    return forward


def real_module(name: str) -> types.ModuleType:
    """The module ``name`` itself, imported now if a stand-in held its place."""
    found = sys.modules.get(name)
    if found is None or getattr(found, _DEFERRED_MARK, False):
        sys.modules.pop(name, None)
        found = importlib.import_module(name)
    return found


#: What PyYAML's pure-Python emitter and libyaml's write identically (tests/lock/test_runner.py): plain
#: printable ASCII. conda-lock's lockfile is that (names, versions, URLs, hashes, match specs).
_PLAIN = frozenset(string.printable)


def _plain(data: Any) -> bool:
    if isinstance(data, str):
        return _PLAIN.issuperset(data)
    if isinstance(data, dict):
        return all(_plain(k) and _plain(v) for k, v in data.items())
    if isinstance(data, (list, tuple)):
        return all(_plain(v) for v in data)
    return data is None or isinstance(data, (bool, int, float))


class FastYaml:
    """``yaml`` as conda-lock's lockfile writer and its readers of environment files, metadata and
    lockfiles see it: ``dump`` by libyaml when the data is plain (the same bytes, several times
    faster: it was about half of a target's time), else as before; ``safe_load`` by libyaml's parser
    (the same data: tests/lock/test_runner.py; PyYAML's pure-Python parser was a fifth of a target's
    time, four files per target)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(yaml, name)

    def dump(self, data: Any, stream: Any = None, **kwargs: Any) -> Any:
        if "Dumper" not in kwargs and hasattr(yaml, "CDumper") and _plain(data):
            kwargs["Dumper"] = yaml.CDumper
        return yaml.dump(data, stream, **kwargs)

    def safe_load(self, stream: Any) -> Any:
        return yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@dataclass
class Warm:
    """conda-lock imported: what a run forks jobs from."""

    conda_lock_main: Any


def warm_up() -> Warm:
    """Import conda-lock once (its rarely used modules deferred)."""
    if "ensureconda.api" in defer_imports(DEFERRED, DEFERRED_VALUES):
        setattr(sys.modules["ensureconda.api"], "ensureconda", _probe_answered)  # noqa: B010 - a stand-in
    from conda_lock import conda_lock, lockfile
    from conda_lock import main as conda_lock_main  # the public CLI entry point, imported once
    from conda_lock.src_parser import environment_yaml

    for module in (lockfile, conda_lock, environment_yaml):  # the lockfile, --metadata-yaml, environment files
        module.yaml = FastYaml()
    gc.freeze()  # what every job inherits: never traversed by a job's collector (nor copied by it)
    return Warm(conda_lock_main)


def route(shim: str, socket_path: str | None) -> None:
    """Route conda-lock's calls of ``shim`` to the service at ``socket_path`` (None: none runs)."""
    from conda_lock import conda_lock as conda_lock_module
    from conda_lock import conda_solver

    route_shim([conda_lock_module, conda_solver], shim, socket_path)


def run_forked(jobs: Sequence[Mapping[str, Any]], max_workers: int, warm: Warm) -> None:
    _fork_jobs(jobs, max_workers, warm.conda_lock_main)


def _fork_jobs(jobs: Sequence[Mapping[str, Any]], max_workers: int, conda_lock_main: Any) -> None:
    if sys.platform != "win32":  # no fork() there: main() runs run_spawned (a check mypy --platform understands)
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
    """The JSON request line on stdin; ``{}`` when stdin ends first (envspec had nothing to run)."""
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(0, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    if not data.strip():
        return {}
    request: dict[str, Any] = json.loads(data.decode("utf-8"))
    return request


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m envspec.lock.conda_lock_runner [--shim PATH] [--no-fork]`` (or ``argv``, in a
    process forked from envspec: :mod:`envspec.lock.forked`): conda-lock is imported before the
    request is read, so envspec can start this process first and prepare its jobs meanwhile. EOF
    instead of a request: nothing to run. Ends the process."""
    args = list(sys.argv[1:] if argv is None else argv)
    shim = args[args.index("--shim") + 1] if "--shim" in args[:-1] else None
    warm = warm_up() if hasattr(os, "fork") and "--no-fork" not in args else None
    request = _read_request()
    if not request:
        os._exit(0)
    if warm is not None and shim:
        service = request.get("service")
        route(shim, str(service) if service else None)
    if request.get("watch_parent") and hasattr(os, "killpg"):
        threading.Thread(target=_die_with_parent, daemon=True).start()
    jobs = request["jobs"]
    workers = max(1, int(request.get("max_workers") or 1))
    if warm is not None:
        run_forked(jobs, workers, warm)
    else:
        run_spawned(jobs, workers)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
