"""The conda part's fixed cost (issue #18): conda-lock's rarely used modules imported on first use,
one solver process per run (envspec.lock.solver_service.serve) that conda-lock's calls of the shim are
routed to (envspec.lock.conda_lock_runner.ShimRouter), and a crash of it that fails one solve, not
the run. Unit tests first (no process), then the real service and a real run whose service is killed.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from envspec.errors import ExitCode
from envspec.lock import conda_shim, solver_service
from envspec.lock.conda_lock_runner import (
    DEFERRED,
    DEFERRED_VALUES,
    MAMBA_PROBE,
    FastYaml,
    ShimRouter,
    defer_imports,
    real_module,
)

from .conftest import SilentChannel
from .test_lock_integration import HANG_GUARD_S, envspec, snapshot

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- deferred imports


def _imported_from(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The absolute name of the module an ``import from`` names (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = path.relative_to(root.parent).with_suffix("").parts[: -node.level]
    return ".".join([*package, *([node.module] if node.module else [])])


def test_deferred_names_are_all_conda_lock_takes_from_those_modules() -> None:
    """A conda-lock release that imports another name from a deferred module fails here, not for users."""
    import conda_lock

    root = Path(conda_lock.__file__).parent
    taken: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if "_vendor" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and _imported_from(node, path, root) in DEFERRED:
                taken.setdefault(_imported_from(node, path, root), set()).update(a.name for a in node.names)
    assert set(taken) == set(DEFERRED)
    for module, names in taken.items():
        constants = DEFERRED_VALUES.get(module, {})
        assert names <= set(DEFERRED[module]) | set(constants), module
        real = real_module(module)
        assert all(callable(getattr(real, name)) for name in DEFERRED[module]), module
        assert all(getattr(real, name) == value for name, value in constants.items()), module


def test_the_mamba_probe_is_the_one_conda_lock_makes_at_import() -> None:
    """conda-lock computes ``HAVE_MAMBA`` (only the default of ``--mamba``, which every envspec job
    overrides) with exactly the call the runner answers without importing ensureconda's installer."""
    import conda_lock

    tree = ast.parse((Path(conda_lock.__file__).parent / "conda_lock.py").read_text(encoding="utf-8"))
    probes = [
        {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ensureconda"
    ]
    assert probes == [MAMBA_PROBE]
    with_probe = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["HAVE_MAMBA"]
    ]
    assert len(with_probe) == 1  # module level: at import


def test_a_deferred_module_is_imported_at_its_first_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "envspec_deferred_demo.py").write_text("LOADED = True\ndef double(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "envspec_deferred_demo", raising=False)
    assert defer_imports({"envspec_deferred_demo": ("double",)}) == ["envspec_deferred_demo"]
    from envspec_deferred_demo import double  # what conda-lock's own import does: nothing runs

    assert not hasattr(sys.modules["envspec_deferred_demo"], "LOADED")
    assert double(21) == 42  # the first call imports the real module
    assert sys.modules["envspec_deferred_demo"].LOADED is True
    assert defer_imports({"envspec_deferred_demo": ("double",)}) == []  # never replaces a real module
    monkeypatch.delitem(sys.modules, "envspec_deferred_demo")


# ------------------------------------------------------------------------------- the router


def test_the_router_answers_what_needs_no_solver_in_place(tmp_path: Path) -> None:
    shim = str(tmp_path / "envspec-conda")
    router = ShimRouter(shim, None)
    assert router.check_output([shim, "--version"], encoding="utf-8") == f"conda {conda_shim.CONDA_VERSION}\n"
    info = router.run([shim, "info", "--json"], env={"CONDA_SUBDIR": "win-64"}, stdout=subprocess.PIPE, text=True)
    assert info.returncode == 0 and json.loads(info.stdout)["platform"] == "win-64"
    with pytest.raises(subprocess.CalledProcessError) as err:  # an unknown command: the shim's own refusal
        router.check_output([shim, "remove", "-p", "/p", "x"], env={"CONDA_SUBDIR": "linux-64"})
    assert b"does not implement" in err.value.output
    assert router.PIPE is subprocess.PIPE  # the rest of subprocess is subprocess's
    with pytest.raises(AssertionError, match="spawn a process"):  # another program: really spawned
        router.run(["some-other-tool", "--version"], capture_output=True)


@contextlib.contextmanager
def dying_service(path: Path) -> Iterator[list[bytes]]:
    """A Unix socket that reads one request and closes without answering (a crashed service)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    seen: list[bytes] = []

    def once() -> None:
        conn, _ = server.accept()
        with conn:
            seen.append(conn.makefile("rb").readline())

    thread = threading.Thread(target=once, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        thread.join(5)
        server.close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_a_service_that_dies_mid_solve_is_an_error_answer_and_a_report(tmp_path: Path) -> None:
    path, report = tmp_path / "s", tmp_path / "report.json"
    env = {"CONDA_SUBDIR": "linux-64", conda_shim.REPORT_ENV: str(report)}
    with dying_service(path) as seen:
        code, out = solver_service.ask(str(path), ["create", "--dry-run", "--json", "tqdm"], env)
    assert json.loads(seen[0])["argv"][0] == "create"
    assert code == 1 and json.loads(out)["envspec_kind"] == "internal"
    assert "crashed" in json.loads(report.read_text())["message"]
    with pytest.raises(OSError):  # nothing listening: the router then runs the shim itself
        solver_service.ask(str(tmp_path / "absent"), ["create"], env)


# ------------------------------------------------------------------------------- the real service


def _start(path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "envspec.lock.solver_service", solver_service.SERVE_FLAG, str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


@pytest.mark.integration
def test_the_service_answers_as_the_shim_executable_does(local_channel: Path, tmp_path: Path) -> None:
    path = tmp_path / "s"
    proc = _start(path)
    shim = conda_shim.shim_executable(tmp_path / "cache")
    try:
        for subdir in ("linux-64", "osx-arm64", "linux-64"):  # noarch and linux-64 opened once, reused
            argv = ["create", "--prefix", "/p", "--dry-run", "--json", "--override-channels",
                    "--channel", local_channel.as_uri(), "python", "tqdm"]  # fmt: skip
            override = (
                {"CONDA_OVERRIDE_GLIBC": "2.28"} if subdir.startswith("linux") else {"CONDA_OVERRIDE_OSX": "14.0"}
            )
            env = {**os.environ, "CONDA_SUBDIR": subdir, **override}
            code, out = solver_service.ask(str(path), argv, env)
            alone = subprocess.run([str(shim), *argv], env=env, capture_output=True, text=True, check=False)
            assert (code, json.loads(out)) == (alone.returncode, json.loads(alone.stdout)), subdir
            assert code == 0 and {a["name"] for a in json.loads(out)["actions"]["FETCH"]} >= {"python", "tqdm"}
        assert proc.poll() is None
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # the runner ended: the service leaves
    assert proc.wait(timeout=HANG_GUARD_S) == 0


@pytest.mark.integration
def test_one_process_opens_each_subdirs_repodata_once(local_channel: Path) -> None:
    code = (
        "import os, sys\n"
        "from envspec.lock import rattler_solve as s\n"
        "a = s.sparse_sources([sys.argv[1]], 'linux-64'); b = s.sparse_sources([sys.argv[1]], 'osx-64')\n"
        "c = s.sparse_sources([sys.argv[1]], 'linux-64')\n"
        "print(a[1] is b[1], a[0] is c[0], a[0] is not b[0], len(s._SPARSE)); sys.stdout.flush(); os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, local_channel.as_uri()], env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["True", "True", "True", "3"]  # noarch once; linux-64 once; osx-64 once


def _services(tag: str) -> dict[int, str]:
    """The solver processes of the run started with ``TEST_RUN_TAG=tag`` in its environment: ``{pid:
    socket path}``; another run on the machine (another test, another developer) is neither seen nor killed.
    A solver process is the one listening on an ``envspec-solve-*/s`` socket (forked from envspec or
    started as ``python -m envspec.lock.solver_service``: found the same way)."""
    listening = {}  # socket inode -> path (/proc/net/unix: flags 00010000 = accepting connections)
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[3] == "00010000" and Path(fields[7]).parent.name.startswith("envspec-solve-"):
            listening[f"socket:[{fields[6]}]"] = fields[7]
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if f"TEST_RUN_TAG={tag}".encode() not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = str(fd.readlink())
                    if target in listening:
                        found[int(proc.name)] = listening[target]
    return found


def _asked(socket_path: str) -> bool:
    """Is a client connected to the solver process's socket (a conda-lock solve in flight)?
    /proc/net/unix lists the accepted end of a connection under the listening socket's path."""
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == socket_path and fields[5] == "03":  # SS_CONNECTED
            return True
    return False


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/net/unix").exists(), reason="finds the service and its clients in /proc")
def test_a_crashed_solver_process_fails_the_run_in_one_line_and_changes_nothing(
    tmp_path: Path, silent_channel: SilentChannel
) -> None:
    """The service is SIGKILLed while conda-lock's solve waits on it (its presolve of the same
    target waits on a channel that never answers), as a py-rattler crash would end it: the solve in
    flight fails naming it, the run ends with exit 6 and one line, no traceback, no lockfile
    changed, and nothing of the run is left running."""
    project = _fresh_project(tmp_path)  # rendered, never locked: every target is solved
    before = snapshot(project)
    tag = uuid.uuid4().hex
    url = silent_channel.url
    # the presolve waits on the channel (no time-out a loaded machine could reach): conda-lock's own
    # solve of the target comes meanwhile, and only the kill ends it
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_CHANNEL_TIMEOUT": str(HANG_GUARD_S), "TEST_RUN_TAG": tag}
    argv = [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "lock", "--target",
            "linux-cuda", "--mirror", f"conda-forge={url}"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        service: dict[int, str] = {}
        while not silent_channel.held or not service or not any(_asked(path) for path in service.values()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no solve reached the channel, or conda-lock never asked"
            time.sleep(0.05)
            service = _services(tag)
        for pid in service:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.TOOL_FAILED, err
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: py-rattler failed solving target linux-cuda "), err
    assert "crashed" in message and "no lockfile was changed" in message and "Traceback" not in err
    assert snapshot(project) == before
    assert not _services(tag)


# ------------------------------------------------------------------------------- the lockfile writer

PLAIN = st.text(alphabet=string.printable, max_size=300)
NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=30)
ENTRY = st.dictionaries(
    NAME, st.one_of(PLAIN, st.integers(), st.none(), st.booleans(), st.lists(PLAIN, max_size=3),
                    st.dictionaries(NAME, PLAIN, max_size=4)), max_size=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, max_size=4))
def test_libyaml_writes_plain_lockfile_data_byte_for_byte_as_pyyaml(entries: list[dict[str, object]]) -> None:
    data = {"version": 1, "metadata": {"platforms": ["linux-64"]}, "package": entries}
    assert FastYaml().dump(data, sort_keys=False) == yaml.dump(data, sort_keys=False)


def test_data_libyaml_would_fold_differently_goes_to_pyyaml() -> None:
    data = {"package": [{"name": "\x16Mº" + "é" * 90}]}  # libyaml folds long escaped lines elsewhere
    assert yaml.dump(data, Dumper=yaml.CDumper) != yaml.dump(data)
    assert FastYaml().dump(data) == yaml.dump(data)
    out = io.StringIO()
    FastYaml().dump({"a": [1, "b"]}, out, sort_keys=False)
    assert out.getvalue() == "a:\n- 1\n- b\n"


@pytest.mark.integration
def test_a_service_that_cannot_listen_says_so_in_one_line_and_is_not_ready(tmp_path: Path) -> None:
    from envspec.lock.solver_service import service_ready

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    path = tmp_path / ("x" * 200) / "s"  # longer than a Unix socket path may be
    cmd = [sys.executable, "-m", "envspec.lock.solver_service", solver_service.SERVE_FLAG, str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert not service_ready(proc, timeout=HANG_GUARD_S)  # the runner then runs the shim executable per solve
    assert proc.wait(timeout=HANG_GUARD_S) == 1
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    assert "no solver process" in err and "Traceback" not in err


def _fresh_project(root: Path) -> Path:
    project = root / "proj"
    project.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project / "envspec.yml")
    assert envspec(project, "render")[0] == 0
    return project


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_without_a_solver_process_the_run_solves_with_the_shim_executable(local_channel: Path, tmp_path: Path) -> None:
    """A TMPDIR too long for a Unix socket: no service, the same lockfiles all the same."""
    project = _fresh_project(tmp_path)
    long_tmp = tmp_path / ("t" * 120)
    long_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(long_tmp)}
    argv = [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "lock", "--target",
            "linux-cuda", "--mirror", f"conda-forge={local_channel.as_uri()}"]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "no solver process" in proc.stderr
    assert "pytorch" in (project / "lockfiles" / "linux-cuda.lock").read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_every_solve_conda_lock_asks_for_was_done_before_it_asked(local_channel: Path, tmp_path: Path) -> None:
    """The solver process solves each target while conda-lock imports (envspec predicts the specs,
    channels and virtual packages conda-lock will ask with): each target is solved once, and each
    of conda-lock's solves is answered from that, with the lockfiles of a run without presolves.
    How many presolves were done before conda-lock asked is a race with its import (all 5 on an idle
    machine, fewer on a busy one): printed, not judged (benchmarks measure speed)."""
    project = _fresh_project(tmp_path)
    code, _, err = envspec(project, "lock", "-v", "--mirror", f"conda-forge={local_channel.as_uri()}")
    assert code == 0, err
    found = re.search(r"solver process: 5 solve\(s\), ([0-5]) of conda-lock's answered from a solve done before", err)
    assert found, err  # 5 solves: one per target, whichever asked first; never one again
    print(f"{found[1]} of 5 conda-lock solves answered from a presolve")
    presolved = snapshot(project)
    shutil.rmtree(project / "lockfiles")  # the same lockfiles when each solve is conda-lock's own
    (project / "lockfiles").mkdir()
    assert envspec(project, "render")[0] == 0
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path / ("t" * 120))}  # no service at all
    Path(env["TMPDIR"]).mkdir()
    argv = [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "lock", "--mirror",
            f"conda-forge={local_channel.as_uri()}"]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "no solver process" in proc.stderr, proc.stderr
    assert snapshot(project) == presolved


def test_the_presolves_read_from_the_rendered_files_are_those_of_the_prepared_jobs(tmp_path: Path) -> None:
    """A first lock hands the solver process each target's solve before envspec.yml is loaded
    (read from the rendered files): the very request the prepared job sends later, so the service
    solves each target once. A target that has lockfiles already waits for the plan."""
    from envspec.lock.conda_lock_job import cold_presolve_requests, prepare, presolve_request
    from envspec.lock.conda_lock_process import EarlyRunner, prestart, spec_target_order, unlocked_targets
    from envspec.lock.jobs import make_jobs, read_stored
    from envspec.lock.plan import plan
    from envspec.project import Project
    from envspec.spec.load import load_spec

    project_dir = tmp_path / "proj"
    project_dir.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project_dir / "envspec.yml")
    assert envspec(project_dir, "render")[0] == 0
    project = Project(project_dir)
    mirrors = {"conda-forge": "https://user:secret@mirror.example/cf"}
    jobs = make_jobs(project, load_spec(project_dir / "envspec.yml").resolve_all(), mirrors)
    items = plan([j.input for j in jobs], {j.target: read_stored(j) for j in jobs})
    work = tmp_path / "work"
    work.mkdir()
    preps = [prepare(job, item, tmp_path / "conda", work) for job, item in zip(jobs, items, strict=True)]
    try:
        late = [presolve_request(p) for p in preps]
    finally:
        for prep in preps:
            prep.cleanup()
    early = cold_presolve_requests(project, unlocked_targets(project), mirrors)
    assert len(late) == 5 and sorted(map(json.dumps, early)) == sorted(map(json.dumps, late))
    assert all(r is not None and r["env"][conda_shim.MIRRORS_ENV] for r in late)  # the mirror's route, for the shim
    assert unlocked_targets(project, ["linux-cuda"]) == ["linux-cuda"]  # --target linux-cuda
    (cuda,) = cold_presolve_requests(project, ["linux-cuda"], mirrors)
    assert cuda == late[[j.target for j in jobs].index("linux-cuda")]
    # the presolves go in the order conda-lock's jobs run: the spec's (read without loading it)
    assert spec_target_order(project_dir / "envspec.yml") == [j.target for j in jobs]
    (tmp_path / "broken.yml").write_text("targets: [\n")
    assert spec_target_order(tmp_path / "broken.yml") == [] == spec_target_order(tmp_path / "absent.yml")
    # the runner starts before the spec is loaded only when a solve is certain (nothing is started here)
    assert isinstance(prestart(project, None, mirrors=mirrors), EarlyRunner)
    for name in unlocked_targets(project):
        if name != "osx-64":
            (project_dir / "lockfiles" / f"{name}.conda-lock.yml").write_text("locked before\n")
    assert unlocked_targets(project) == ["osx-64"]
    assert isinstance(prestart(project, None, targets=["osx-64"]), EarlyRunner)
    with prestart(project, None, targets=["linux-cuda"]) as early_runner:  # locked: the plan decides, later
        assert early_runner is None
    assert isinstance(prestart(project, None, targets=["linux-cuda"], update=True), EarlyRunner)


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets")
def test_presolves_never_block_envspec_and_the_end_of_the_run_ends_the_service(tmp_path: Path) -> None:
    """Presolves stuck on a channel that never answers: envspec still hands over hundreds of them
    at once (more than a pipe holds), and closing the service's stdin ends it at once, the stuck
    presolve not waited for. The channel time-out outlasts the waits here: only a service that ends
    without waiting for it passes, however slow the machine."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # accepts, never answers
    url = f"http://127.0.0.1:{server.getsockname()[1]}/cf"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    service = solver_service.start_service(env)
    assert service is not None
    try:
        assert service.is_ready(timeout=HANG_GUARD_S)
        request = {"subdir": "linux-64", "channels": [url], "specs": ["python", "x" * 2000], "virtual_packages":
                   {"__unix": "0"}, "env": {"ENVSPEC_CHANNEL_TIMEOUT": str(2 * HANG_GUARD_S)}}  # fmt: skip
        handed = threading.Thread(target=lambda: [service.presolve(request) for _ in range(300)], daemon=True)
        handed.start()
        handed.join(HANG_GUARD_S)
        assert not handed.is_alive(), "envspec blocked writing presolves"
        assert service.proc.stdin is not None
        service.proc.stdin.close()
        assert service.proc.wait(timeout=HANG_GUARD_S) == 0  # a stuck presolve would hold it twice as long
    finally:
        service.stop()
        server.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, max_size=4))
def test_libyaml_reads_what_conda_lock_reads_as_pyyaml_does(entries: list[dict[str, object]]) -> None:
    """conda-lock's readers of environment files, --metadata-yaml and lockfiles get libyaml's parser
    in the runner: the same data as PyYAML's own, for what PyYAML writes and for the files envspec renders."""
    text = yaml.dump({"name": "x", "channels": ["conda-forge"], "dependencies": entries}, sort_keys=False)
    assert FastYaml().safe_load(text) == yaml.safe_load(text)
    assert FastYaml().safe_load(io.StringIO(text)) == yaml.safe_load(text)


def test_libyaml_reads_the_rendered_files_as_pyyaml_does() -> None:
    files = [*REPO.glob("environment-*.yml"), *(REPO / "lockfiles").glob("*.yml")]
    assert len(files) >= 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert FastYaml().safe_load(text) == yaml.safe_load(text), path
