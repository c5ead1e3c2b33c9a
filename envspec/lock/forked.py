"""A helper process forked from envspec itself instead of started as a new interpreter.

The conda-lock runner and the solver process are Python code envspec already has imported; starting
each as ``python -m ...`` costs an interpreter start, ``site`` and their imports again (about 60 ms
of CPU each, on the critical path of a cold ``envspec lock``: conda-lock's import in the runner
gates every target). :func:`fork_process` forks this process instead and runs a function in the
child, with pipes on its stdin and stdout, and returns a :class:`ForkedProcess`: the part of
:class:`subprocess.Popen`'s interface the lock stage uses. The callers fall back to ``Popen``
where it returns None: no ``fork`` (Windows), no way to count this process's threads (macOS), or
other threads running in this process, Python's or native ones (a child forked then could inherit
a lock, or a runtime, whose threads it lacks).

The child is what a new process would be: only stdin, stdout and stderr open (so it holds no end
of another helper's pipe: a runner must see EOF on its stdin when envspec dies), the given working
folder and environment, default handlers for the signals envspec handles, no logging handlers
(those of a program that called envspec in-process write to descriptors now closed), fresh ``sys.stdin`` /
``sys.stdout`` / ``sys.stderr`` on those descriptors (not whatever this process had put there),
its own session when asked. It never returns into envspec's code: it ends with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any


class ForkedProcess:
    """A forked child with pipes on its stdin and stdout (``subprocess.Popen``'s names)."""

    def __init__(self, pid: int, stdin: IO[Any], stdout: IO[Any]) -> None:
        self.pid = pid
        self.stdin: IO[Any] | None = stdin
        self.stdout: IO[Any] | None = stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and sys.platform != "win32":  # (a check mypy --platform understands)
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child; with ``timeout``, ``subprocess.TimeoutExpired`` after that many seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            if deadline is None:
                self._reap(0)
            elif self.poll() is None:
                if time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
                time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None and sys.platform != "win32":
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere: its status is lost
            self.returncode = -1
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


def can_fork() -> bool:
    """Can a helper be forked from this process now? Only where ``fork`` exists and the process has
    one thread, counted by the system (``/proc/self/task``): a thread that is not Python's, such as
    py-rattler's runtime after a solve in this process, would be missing in the child while its
    state says it runs (a solve there waits forever). Where the system does not count them (macOS),
    never: the helpers are started instead."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        return sum(1 for _ in Path("/proc/self/task").iterdir()) == 1
    except OSError:
        return False


def fork_process(
    run: Callable[[], int],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    text: bool = False,
    new_session: bool = False,
) -> ForkedProcess | None:
    """Fork a child that runs ``run()`` and exits with what it returns; None when :func:`can_fork`
    says no (the caller starts a new interpreter instead)."""
    if sys.platform != "win32" and can_fork():  # (a check mypy --platform understands)
        return _fork(run, cwd=cwd, env=env, text=text, new_session=new_session)
    return None


if sys.platform != "win32":  # no fork() on Windows

    def _fork(
        run: Callable[[], int], *, cwd: Path | None, env: Mapping[str, str] | None, text: bool, new_session: bool
    ) -> ForkedProcess:
        in_read, in_write = os.pipe()
        out_read, out_write = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                _become_child(in_read, out_write, cwd, env, new_session)
                code = run()
            except BaseException:  # the child reports and ends, whatever happened
                with contextlib.suppress(Exception):
                    traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(in_read)
        os.close(out_write)
        if text:
            return ForkedProcess(
                pid,
                os.fdopen(in_write, "w", encoding="utf-8"),  # closed by the caller, as Popen's
                os.fdopen(out_read, encoding="utf-8"),
            )
        return ForkedProcess(pid, os.fdopen(in_write, "wb"), os.fdopen(out_read, "rb"))

    def _become_child(
        stdin_fd: int, stdout_fd: int, cwd: Path | None, env: Mapping[str, str] | None, new_session: bool
    ) -> None:
        gc.freeze()  # envspec's objects: not traversed by the child's collector (nor copied by it)
        os.dup2(stdin_fd, 0)
        os.dup2(stdout_fd, 1)
        _close_other_fds()  # no end of another helper's pipe, no file of envspec's
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        if new_session:
            os.setsid()
        if cwd is not None:
            os.chdir(cwd)
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        _forget_logging()
        sys.stdin = os.fdopen(0, encoding="utf-8", closefd=False)  # the process's own streams
        sys.stdout = os.fdopen(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = os.fdopen(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)

    def _forget_logging() -> None:
        """No logging handler of this process's (a started interpreter has none): theirs write to
        descriptors the child closed, and a ``logging.basicConfig(force=True)`` (conda-lock's) would
        close them again."""
        logging = sys.modules.get("logging")
        if logging is None:
            return
        for logger in [logging.root, *logging.Logger.manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger):
                logger.handlers.clear()  # not closed: they are the parent's

    def _close_other_fds() -> None:
        """Close every descriptor but 0, 1 and 2 (those open are listed where the system lists them)."""
        for listing in ("/proc/self/fd", "/dev/fd"):
            try:
                fds = [int(entry.name) for entry in Path(listing).iterdir()]
            except (OSError, ValueError):
                continue
            for fd in fds:
                if fd > 2:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            return
        os.closerange(3, 65536)
