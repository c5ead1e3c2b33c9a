"""One solver process for a whole ``envspec lock`` run.

``python -m envspec.lock.solver_service --envspec-serve SOCKET`` (:func:`serve`) answers the conda
shim's commands (:func:`envspec.lock.conda_shim.run`) sent to a Unix socket (:func:`ask`), one solve
at a time, and keeps what it opened (each subdir's repodata, rattler's gateway) and what it solved.
envspec starts it (:func:`start_service`) beside the conda-lock runner and, while conda-lock
imports, hands it each target's solve on its stdin (:func:`presolve`): conda-lock's own request for
exactly that solve is then answered at once. A crash of py-rattler ends only this process: the
request in flight fails (the client says so), later ones run the shim executable instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from envspec.lock import rattler_solve
from envspec.lock.conda_shim import (
    MIRRORS_ENV,
    REPORT_ENV,
    read_mirrors,
    route,
    run,
    scrub,
    split_channels,
    target_virtual_packages,
)
from envspec.lock.rattler_solve import (
    EXCLUDE_NEWER_ENV,
    RATTLER_CACHE_ENV,
    TIMEOUT_ENV,
    CreateSolve,
    ShimError,
    solve_once,
)

if TYPE_CHECKING:
    from envspec.lock.forked import ForkedProcess

#: The solver process: forked from envspec where it can be (:mod:`envspec.lock.forked`), else started.
Process: TypeAlias = "subprocess.Popen[bytes] | ForkedProcess"

#: ``python -m envspec.lock.solver_service --envspec-serve SOCKET``: see :func:`serve`.
SERVE_FLAG = "--envspec-serve"
#: The commands that need py-rattler (and so go to the service); the others are answered in place.
SOLVES = frozenset({"create", "install", "update"})
#: What :func:`presolve` reads of its request's ``env``: the variables a solve depends on.
PRESOLVE_ENV = (MIRRORS_ENV, EXCLUDE_NEWER_ENV, TIMEOUT_ENV, RATTLER_CACHE_ENV)


def presolve(request: Mapping[str, Any]) -> None:
    """Solve a target before conda-lock asks, and keep the answer (:func:`rattler_solve.keep_solves`).

    ``request``: ``{"subdir", "channels"`` (conda-lock's, canonical), ``"specs"`` (the environment
    file's), ``"virtual_packages"`` (``{name: "version[ build]"}``, the target's), ``"env"``
    (:data:`PRESOLVE_ENV`)``}``. Each spec is written as conda-lock writes it (``python=3.12`` ->
    ``python 3.12.*``) and the inputs are keyed as for conda-lock's own request (:meth:`rattler_solve.CreateSolve.key`):
    its answer is used only where conda-lock asks for exactly the same solve; a prediction that
    differs (another spec order, say) only costs a second solve. Raises what the solve raises."""
    from rattler import MatchSpec

    environ = {str(k): str(v) for k, v in request.get("env", {}).items() if k in PRESOLVE_ENV}
    subdir = str(request["subdir"])
    environ["CONDA_SUBDIR"] = subdir
    routed = route([str(c) for c in request["channels"]], read_mirrors(environ))
    channels, virtual_records = split_channels(routed.channels, subdir)
    for name, value in dict(request.get("virtual_packages", {})).items():
        version, _, build = str(value).partition(" ")
        virtual_records.append({"name": str(name), "version": version, "build_string": build or "0"})
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    specs = [str(MatchSpec(str(s))) for s in request["specs"]]  # a spec that does not parse: no presolve
    solve_once(CreateSolve(channels, subdir, specs, vpkgs, environ, routed.auth), ahead=True)


def _read_all(conn: Any) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def serve(path: str) -> None:
    """Answer shim commands sent to the Unix socket ``path`` until stdin closes (the ``envspec lock``
    run that started this process has ended), then leave with ``os._exit``. Each line written to
    stdin meanwhile is a ``{"presolve": ...}`` request (:func:`presolve`): targets solved while
    conda-lock imports, whose answers are ready when conda-lock asks.

    One such process per ``envspec lock`` run replaces one interpreter per solve, and keeps what it
    opened (each subdir's repodata, rattler's gateway) for the next target's solve. A request is one
    JSON line ``{"argv": [...], "env": {...}}``; the answer ``{"code": N, "stdout": TEXT}``, exactly
    what :func:`run` returns (``{"stats": true}``: :func:`rattler_solve.solve_stats`). Solves run one at a time, a
    request's before any presolve still to do. A py-rattler exception or panic answers as an
    error; a crash of this whole process ends the in-flight request (the client says so) and no more.
    """
    import socket
    import threading

    lock = threading.Lock()  # one solve at a time
    asked = threading.Condition()  # requests waiting or running: presolves wait for none
    pending = 0
    try:
        server = socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_STREAM)  # noqa: B009 - absent on Windows
        server.bind(path)
        server.listen(16)
    except OSError as exc:  # e.g. a path too long for a Unix socket: the runner runs the shim instead
        sys.stderr.write(f"envspec: no solver process ({exc}); solving with one shim process per solve\n")
        sys.stderr.flush()
        os._exit(1)

    def answer(conn: Any) -> None:
        nonlocal pending
        environ: dict[str, str] = {}
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline())
                if request.get("stats"):
                    code, text = 0, json.dumps(rattler_solve.solve_stats())
                else:
                    environ = {str(k): str(v) for k, v in request["env"].items()}
                    with asked:
                        pending += 1
                    try:
                        with lock:
                            code, text = run([str(a) for a in request["argv"]], environ)
                    finally:
                        with asked:
                            pending -= 1
                            asked.notify_all()
            except BaseException as exc:  # pyo3's PanicException is a BaseException: answered, not fatal
                error = ShimError("internal", "CondaError", repr(exc)).to_json()
                code, text = 1, json.dumps(scrub(error, environ)) + "\n"
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"code": code, "stdout": text}).encode("utf-8") + b"\n")

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    import queue

    presolves: queue.Queue[bytes] = queue.Queue()

    def read() -> None:  # stdin read at once (envspec never waits on a full pipe), its end noticed at once
        for line in _lines(0):
            presolves.put(line)
        os._exit(0)  # the run is over: a presolve still running is not waited for

    rattler_solve.keep_solves()
    threading.Thread(target=accept, daemon=True).start()
    threading.Thread(target=read, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with contextlib.suppress(ImportError):
        import rattler  # noqa: F401 - now, not in the first solve
    while True:
        line = presolves.get()
        with asked:
            asked.wait_for(lambda: pending == 0)
        with lock, contextlib.suppress(BaseException):  # a failed presolve is solved again when asked
            presolve(json.loads(line)["presolve"])


def _lines(fd: int) -> Iterator[bytes]:
    """The lines written to ``fd`` until it ends (or fails)."""
    pending = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            yield from (line for line in lines if line.strip())


@dataclass
class Service:
    """A solver process (:func:`serve`) started by :func:`start_service`."""

    proc: Process
    socket: str
    folder: str
    ready: bool | None = None  # unknown until :meth:`is_ready` has looked

    def presolve(self, request: Mapping[str, Any]) -> None:
        """Hand it a target to solve now (see :func:`presolve`); a service that is gone is left alone."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write(json.dumps({"presolve": request}).encode("utf-8") + b"\n")
            self.proc.stdin.flush()

    def is_ready(self, timeout: float = 60.0) -> bool:
        """Did it start (its ``ready`` line)? False if it ended or stayed silent ``timeout`` s."""
        if self.ready is None:
            self.ready = service_ready(self.proc, timeout)
        return self.ready

    def stop(self) -> None:
        """End it (the run is over: no request is in flight, and a presolve still running or an
        import not done yet is not waited for), reap it, remove its folder."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
            self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_service(env: Mapping[str, str] | None = None) -> Service | None:
    """A solver process (:func:`serve`) on a socket in a private folder; None where Unix sockets
    do not exist. It leaves when its stdin closes (:meth:`Service.stop`, or this process ending)."""
    import socket

    if not hasattr(socket, "AF_UNIX"):
        return None
    try:
        folder = tempfile.mkdtemp(prefix="envspec-solve-")  # 0700: only this user reaches the socket
    except OSError:
        return None
    path = str(Path(folder) / "s")
    from envspec.lock.forked import fork_process

    def run() -> int:
        serve(path)
        return 0  # (serve ends the process itself)

    proc: Process = fork_process(run, env=env) or subprocess.Popen(
        [sys.executable, "-m", "envspec.lock.solver_service", SERVE_FLAG, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=None if env is None else dict(env),
    )
    return Service(proc, path, folder)


def service_ready(proc: Process, timeout: float = 60.0) -> bool:
    """Did the service start (its ``ready`` line)? False if it ended or stayed silent."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready) and proc.stdout.readline().strip() == b"ready"


def service_stats(path: str) -> dict[str, int]:
    """How many solves the service at ``path`` ran, and how many answers it reused (a presolve's)."""
    import socket

    with socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_STREAM) as conn:  # noqa: B009 - absent on Windows
        conn.connect(path)
        conn.sendall(b'{"stats": true}\n')
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(_read_all(conn))
    stats: dict[str, int] = json.loads(reply["stdout"])
    return stats


def ask(path: str, argv: Sequence[str], environ: Mapping[str, str]) -> tuple[int, str]:
    """One command answered by the service at ``path``: ``(exit code, stdout text)`` as :func:`run`.

    Raises OSError when the service cannot be reached (the caller runs the shim itself instead);
    a service that ends before answering (py-rattler crashed it) is an error answer, reported like
    the shim's own errors (``ENVSPEC_SHIM_REPORT``)."""
    import socket

    family = getattr(socket, "AF_UNIX", None)  # absent on Windows, where no service is started
    if family is None:
        raise OSError("no Unix sockets here")
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall(json.dumps({"argv": list(argv), "env": dict(environ)}).encode("utf-8") + b"\n")
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        data = _read_all(conn)
    if data.endswith(b"\n"):
        reply = json.loads(data)
        return int(reply["code"]), str(reply["stdout"])
    err = ShimError(
        "internal",
        "CondaError",
        "py-rattler's solver process ended during this solve (it crashed); the other targets are unaffected",
    )
    report = scrub(err.to_json(), environ)
    if environ.get(REPORT_ENV):
        with contextlib.suppress(OSError):
            Path(environ[REPORT_ENV]).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1, json.dumps(report, indent=2) + "\n"


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE_FLAG] and len(sys.argv) == 3:
        serve(sys.argv[2])
    sys.exit(f"usage: python -m envspec.lock.solver_service {SERVE_FLAG} SOCKET")
