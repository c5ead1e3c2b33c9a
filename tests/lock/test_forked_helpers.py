"""The lock stage's helper processes forked from envspec (envspec.lock.forked): what a started process
would be (its own stdin/stdout, nothing else of envspec's open, its environment, folder and session),
a fall-back to a started interpreter where forking is not safe, and the real runner and solver process
forked by envspec lock."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envspec.lock.conda_lock_process import start_runner, stop_runner
from envspec.lock.forked import ForkedProcess, can_fork, fork_process

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="forks only where threads can be counted"),
]


_ALONE: dict[str, str] = {}  # test name -> its outcome in the one new pytest process of this module


def _ran_alone(request: pytest.FixtureRequest) -> bool:
    """Where this pytest process has other threads (an earlier test ran py-rattler in it: its runtime's
    threads stay), nothing is forked from it: this module's tests then run in one new pytest process
    (once), where each must have passed. True when so (the caller returns); False: run it here."""
    if can_fork() or os.environ.get("ENVSPEC_FORK_TEST_ALONE"):
        return False
    if not _ALONE:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(request.path), "-q", "-rA", "-p", "no:cacheprovider"],
            env={**os.environ, "ENVSPEC_FORK_TEST_ALONE": "1"},
            cwd=request.config.rootpath,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        outcomes = re.findall(r"^(PASSED|FAILED|ERROR|SKIPPED)\S* \S+::(\w+)", proc.stdout, re.M)
        _ALONE.update({name: outcome for outcome, name in outcomes})
        _ALONE.setdefault("(output)", proc.stdout[-4000:] + proc.stderr[-2000:])
    assert _ALONE.get(request.node.name) == "PASSED", _ALONE["(output)"]
    return True


def _echo_until_eof() -> int:
    data = sys.stdin.read()
    sys.stdout.write(f"read {len(data)} chars\n")
    return 3


def test_a_forked_child_talks_over_its_own_pipes_even_when_this_process_replaced_sys_stdout(
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pytest's capsys replaces sys.stdout here: the child must write to its pipe, not to a copy of
    that object (the runner's reports would be lost and envspec would wait for them)."""
    if _ran_alone(request):
        return
    proc = fork_process(_echo_until_eof, text=True)
    assert isinstance(proc, ForkedProcess)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("hello")
    proc.stdin.close()
    assert proc.stdout.read() == "read 5 chars\n"
    assert proc.wait() == 3
    assert proc.poll() == 3
    proc.stdout.close()
    assert capsys.readouterr().out == ""


def test_a_second_helper_holds_no_end_of_the_first_ones_stdin(request: pytest.FixtureRequest) -> None:
    """The runner leaves (and kills its conda-locks) when its stdin ends: the solver process, forked
    after it, must not keep that pipe open, or a killed envspec would leave both running."""
    if _ran_alone(request):
        return
    first = fork_process(_echo_until_eof, text=True)
    second = fork_process(_echo_until_eof, text=True)
    assert first is not None and second is not None
    assert first.stdin is not None and first.stdout is not None
    try:
        first.stdin.close()
        deadline = time.monotonic() + 30
        while first.poll() is None:
            assert time.monotonic() < deadline, "the first helper never saw the end of its stdin"
            time.sleep(0.01)
        assert first.stdout.read() == "read 0 chars\n"
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def test_the_child_gets_the_given_environment_folder_and_its_own_session(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if _ran_alone(request):
        return

    def report() -> int:
        print(f"{os.environ.get('ENVSPEC_FORK_PROBE')} {Path.cwd()} {os.getpgid(0) == os.getpid()}")
        listing = Path("/proc/self/fd")
        print(json.dumps(sorted(int(fd.name) for fd in listing.iterdir())) if listing.is_dir() else "")
        return 0

    read, write = os.pipe()  # descriptors of this process: the child must not have it
    try:
        proc = fork_process(report, cwd=tmp_path, env={"ENVSPEC_FORK_PROBE": "x"}, text=True, new_session=True)
        assert proc is not None and proc.stdout is not None and proc.stdin is not None
        first, fds = proc.stdout.read().splitlines()
        assert proc.wait() == 0
        proc.stdin.close()
        proc.stdout.close()
    finally:
        os.close(read)
        os.close(write)
    assert first == f"x {tmp_path} True"
    if fds:  # /proc/self/fd listed 0, 1, 2 and the descriptor of the listing itself
        assert [fd for fd in json.loads(fds) if fd > 2] in ([], [3])


def test_a_failing_child_exits_1_with_its_traceback_on_stderr(
    request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]
) -> None:
    if _ran_alone(request):
        return

    def boom() -> int:
        raise RuntimeError("envspec-forked-boom")

    proc = fork_process(boom)
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    assert proc.wait() == 1
    proc.stdin.close()
    proc.stdout.close()
    assert "RuntimeError: envspec-forked-boom" in capfd.readouterr().err


def test_with_another_thread_running_nothing_is_forked_and_the_runner_is_started_instead(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if _ran_alone(request):
        return
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not can_fork()
        assert fork_process(lambda: 0) is None
        runner = start_runner(tmp_path, shim=None)
        assert not isinstance(runner, ForkedProcess)  # a subprocess.Popen: a new interpreter
        stop_runner(runner)
    finally:
        stop.set()
        thread.join()
    assert can_fork()


def test_a_thread_python_does_not_know_of_also_means_no_fork(request: pytest.FixtureRequest) -> None:
    """py-rattler's runtime threads are not Python's (threading does not count them): a solve run in
    this process earlier (a program using envspec's lock stage, or this test suite) would leave a
    forked solver process waiting forever on threads it does not have."""
    if _ran_alone(request):
        return
    import _thread

    stop = threading.Lock()
    stop.acquire()
    started = threading.Event()

    def native() -> None:  # a thread started below threading: as a Rust runtime's are
        started.set()
        stop.acquire()

    _thread.start_new_thread(native, ())
    started.wait(10)
    try:
        assert threading.active_count() == 1
        assert not can_fork()
        assert fork_process(lambda: 0) is None
    finally:
        stop.release()
    deadline = time.monotonic() + 10
    while not can_fork():
        assert time.monotonic() < deadline, "the native thread did not end"
        time.sleep(0.01)


def test_the_runner_is_forked_and_stopping_it_ends_it(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if _ran_alone(request):
        return
    runner = start_runner(tmp_path, shim=None)
    assert isinstance(runner, ForkedProcess)
    stop_runner(runner)
    assert runner.returncode is not None
    with pytest.raises(ProcessLookupError):
        os.kill(runner.pid, 0)


def test_the_logging_of_a_program_that_runs_envspec_in_process_is_not_the_childs(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A program (pytest here) logs to a file: the child closed that descriptor, so the handler is
    not the child's; conda-lock's ``logging.basicConfig(force=True)`` in it must work."""
    if _ran_alone(request):
        return
    import logging

    handler = logging.FileHandler(tmp_path / "parent.log")
    logging.getLogger("envspec-forked-test").addHandler(handler)
    logging.root.addHandler(handler)
    try:

        def configure() -> int:
            logging.basicConfig(level=logging.INFO, force=True)
            logging.getLogger("envspec-forked-test").warning("child")
            return 0

        proc = fork_process(configure)
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        assert proc.wait() == 0
        proc.stdin.close()
        proc.stdout.close()
    finally:
        logging.root.removeHandler(handler)
        logging.getLogger("envspec-forked-test").removeHandler(handler)
        handler.close()
    assert (tmp_path / "parent.log").read_text() == ""


def test_waiting_with_a_time_out_ends_with_timeout_expired_as_popen_does(request: pytest.FixtureRequest) -> None:
    """Tests guard their waits with a time-out: a child that does not end must not hold them."""
    if _ran_alone(request):
        return
    proc = fork_process(_echo_until_eof, text=True)
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    assert time.monotonic() - started >= 0.2
    proc.stdin.close()
    assert proc.wait(timeout=60) == 3
    proc.stdout.close()
