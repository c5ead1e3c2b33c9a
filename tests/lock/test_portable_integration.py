"""Portable lockfiles end to end: real conda-lock + the rattler shim through file:// and HTTP
mirrors (one requiring basic auth), installs through them, and a lock commit killed mid-way."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envspec import channels
from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.lock import commit, explicit

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CF = "https://conda.anaconda.org/conda-forge"
SECRET = "s3cret-Tok3n"
TARGETS = ("osx-arm64", "osx-64", "linux-cuda", "linux-cpu", "win-cuda")


def envspec(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


def lockfiles(project: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted((project / "lockfiles").iterdir())
        if p.name.endswith((".lock", ".conda-lock.yml"))
    }


def files_containing(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and data in p.read_bytes()]


@pytest.fixture(autouse=True)
def _fresh_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv("ENVSPEC_MIRRORS", raising=False)
    monkeypatch.setenv("ENVSPEC_RATTLER_CACHE", str(tmp_path / "rattler-cache"))  # scanned for secrets
    channels.forget_all()
    yield
    channels.forget_all()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("portable") / "proj"
    project.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project / "envspec.yml")
    assert envspec(project, "render")[0] == 0
    return project


def fresh(rendered: Path, dest: Path) -> Path:
    shutil.copytree(rendered, dest)
    return dest


class AuthServer:
    """A local HTTP mirror of a channel folder that wants basic auth ``user:SECRET``."""

    def __init__(self, root: Path, user: str = "user", password: str = SECRET) -> None:
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen: list[str | None] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            timeout = 10  # a client that stalls cannot hold a handler thread forever

            def do_GET(self) -> None:
                outer.seen.append(self.headers.get("Authorization"))
                if self.headers.get("Authorization") != outer.expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def do_HEAD(self) -> None:
                self.do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> AuthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()  # serve_forever returns within poll_interval
        self.server.server_close()
        self.thread.join(timeout=10)


def test_two_mirrors_give_byte_identical_canonical_lockfiles_and_the_secret_goes_nowhere(
    rendered: Path,
    local_channel: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    copy = tmp_path / "copy-of-conda-forge"
    shutil.copytree(local_channel, copy)
    a, b, c = (fresh(rendered, tmp_path / n) for n in ("a", "b", "c"))
    code, _, err = envspec(a, "lock", "--mirror", f"conda-forge={local_channel.as_uri()}")
    assert code == 0, err
    code, _, err = envspec(b, "lock", "--mirror", f"conda-forge={copy.as_uri()}")
    assert code == 0, err
    with AuthServer(local_channel) as server:
        url = f"http://user:{SECRET}@127.0.0.1:{server.port}/"
        monkeypatch.setenv("ENVSPEC_MIRRORS", f"conda-forge={url}")  # the secret out of argv
        code, out, err = envspec(c, "lock")
    assert code == 0, err
    assert server.seen and all(h == server.expected for h in server.seen)  # every request authenticated
    # byte-identical, whichever mirror (file://, another file://, HTTP with auth) served the data
    assert lockfiles(a) == lockfiles(b) == lockfiles(c)
    assert len(lockfiles(a)) == 2 * len(TARGETS)
    text = (a / "lockfiles" / "linux-cuda.lock").read_text()
    assert all(e.url.startswith(CF + "/") for e in explicit.entries(text))
    assert f"channels: {CF}\n" in text
    conda_lock = (a / "lockfiles" / "linux-cuda.conda-lock.yml").read_text()
    assert "file://" not in conda_lock and "127.0.0.1" not in conda_lock and f"url: {CF}" in conda_lock
    # the secret: nowhere in the project (lockfiles, cache, temps), rattler's cache, or the output
    captured = capfd.readouterr()
    assert SECRET not in out + err + captured.out + captured.err
    assert files_containing(c, SECRET) == []
    assert files_containing(tmp_path / "rattler-cache", SECRET) == []
    for name, data in lockfiles(a).items():  # the evidence, for `pytest -s`
        digests = {hashlib.sha256(lockfiles(p)[name]).hexdigest() for p in (a, b, c)}
        print(f"{name}: sha256 {' = '.join(sorted(digests))} through file://, another file:// and HTTP+auth")
        assert digests == {hashlib.sha256(data).hexdigest()}
    # with or without a mirror, the lockfiles are current: the input hash has no mirror in it
    for args in ((), ("--mirror", f"conda-forge={copy.as_uri()}")):
        code, _, err = envspec(c, "lock", "--check", *args)
        assert code == 0, err


def test_a_wrong_password_is_one_redacted_line_exit_5(
    rendered: Path, local_channel: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    project = fresh(rendered, tmp_path / "p")
    with AuthServer(local_channel) as server:
        url = f"http://user:wrong-{SECRET}@127.0.0.1:{server.port}/cf"
        server_root = f"127.0.0.1:{server.port}"
        code, out, err = envspec(project, "lock", "--target", "osx-64", "--mirror", f"conda-forge={url}")
    assert code == ExitCode.CHANNEL_UNREACHABLE, err
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: channel http://user:***@") and server_root in message, message
    assert "osx-64" in message
    captured = capfd.readouterr()
    assert SECRET not in out + err + captured.out + captured.err
    assert files_containing(project, SECRET) == []
    assert not (project / "lockfiles" / "osx-64.lock").exists()


def _install(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "ENVSPEC_MIRRORS"}
    environ.update({"PYTHONPATH": str(REPO), **env})
    return subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "install", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=180,
        check=False,
    )


def test_a_canonical_lockfile_installs_through_file_and_authenticated_http_mirrors(
    rendered: Path, local_channel: Path, tmp_path: Path
) -> None:
    project = fresh(rendered, tmp_path / "p")
    code, _, err = envspec(
        project, "lock", "--target", "linux-cuda", "--mirror", f"conda-forge={local_channel.as_uri()}"
    )
    assert code == 0, err
    # file:// mirror (the lockfile names anaconda.org, which this machine cannot reach)
    prefix = tmp_path / "env-file"
    proc = _install(
        project, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(tmp_path / "c1"),
        "--mirror", f"conda-forge={local_channel.as_uri()}", env={},
    )  # fmt: skip
    if proc.returncode == ExitCode.PLATFORM_MISMATCH:
        pytest.skip("this host cannot install a linux-64 lockfile")
    assert proc.returncode == 0, proc.stderr
    assert (prefix / "conda-meta").is_dir()
    # HTTP mirror with basic auth, credentials from the environment only
    with AuthServer(local_channel) as server:
        mirror = f"conda-forge=http://user:{SECRET}@127.0.0.1:{server.port}"
        prefix2 = tmp_path / "env-http"
        cache2 = tmp_path / "c2"
        proc = _install(
            project, "linux-cuda", "--prefix", str(prefix2), "--cache-dir", str(cache2), env={"ENVSPEC_MIRRORS": mirror}
        )
    assert proc.returncode == 0, proc.stderr
    assert server.seen and all(h == server.expected for h in server.seen)
    assert SECRET not in proc.stdout + proc.stderr
    assert files_containing(prefix2, SECRET) == [] and files_containing(cache2, SECRET) == []


def test_a_lock_killed_between_the_renames_is_refused_then_completed(
    rendered: Path, local_channel: Path, tmp_path: Path
) -> None:
    project = fresh(rendered, tmp_path / "p")
    mirror = f"conda-forge={local_channel.as_uri()}"
    assert envspec(project, "lock", "--target", "linux-cuda", "--mirror", mirror)[0] == 0
    old = lockfiles(project)
    spec = project / "envspec.yml"
    spec.write_text(spec.read_text().replace('__glibc: "2.28"', '__glibc: "2.34"', 1))
    assert envspec(project, "render")[0] == 0
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-m", "envspec", "--spec", str(spec), "lock", "--target", "linux-cuda", "--mirror", mirror],
        env={**os.environ, "PYTHONPATH": str(REPO), commit.PAUSE_ENV: f"rename-1:{marker}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text().strip()):
            assert proc.poll() is None, "envspec lock ended before its commit"
            assert time.monotonic() < deadline, "the commit never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # between the first and the second rename
        proc.wait(timeout=600)  # a hang guard
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    lock_dir = project / "lockfiles"
    torn = lockfiles(project)
    assert commit.pending(lock_dir)
    assert torn["linux-cuda.conda-lock.yml"] != old["linux-cuda.conda-lock.yml"]
    assert torn["linux-cuda.lock"] == old["linux-cuda.lock"]  # the pair is torn on disk now
    # install --frozen (the lockfiles as they are) refuses the torn pair, before touching anything;
    # --locked refuses it as stale
    code, _, err = envspec(project, "install", "linux-cuda", "--frozen", "--prefix", str(tmp_path / "env"))
    assert code == ExitCode.SPEC_INVALID and "not from the same `envspec lock` run" in err, err
    code, _, err = envspec(project, "install", "linux-cuda", "--locked", "--prefix", str(tmp_path / "env"))
    assert code == ExitCode.CHECK_FAILED and "--locked was given" in err, err
    assert not (tmp_path / "env").exists()
    assert lockfiles(project) == torn
    # lock --check completes the committed run: consistent, current, journal and temps gone
    code, _, err = envspec(project, "lock", "--check", "--target", "linux-cuda")
    assert code == 0, err
    assert "completed the lockfile commit" in err
    assert not commit.pending(lock_dir) and commit.staged_temps(lock_dir) == []
    commit.check_pair_files(lock_dir / "linux-cuda.lock", lock_dir / "linux-cuda.conda-lock.yml")
    new = lockfiles(project)
    assert new["linux-cuda.lock"] != old["linux-cuda.lock"]
    code, out, err = envspec(project, "lock", "--target", "linux-cuda")
    assert code == 0 and "up to date" in out, err
    assert lockfiles(project) == new
