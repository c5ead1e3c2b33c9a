"""Issue #11 with servers and processes: downloads that never end, SIGTERM, hostile packages, --with.

Every server here runs on 127.0.0.1 (port 0) in a daemon thread; each handler loop is bounded in
time and bytes and stops by itself when the test's ``stop`` event is set. No verdict depends on how
fast the machine is: a test waits for what the client does (it gives up, it exits, it hangs up),
and the time bounds only end a test that hangs.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envspec import download
from envspec.cli.main import main
from envspec.errors import ChannelUnreachable, ExitCode, IntegrityError
from envspec.install.fetch import fetch_all
from envspec.install.plan import ExplicitLock, LockEntry
from envspec.settings import FetchLimits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_install_safety import FILE, channel_factory, hostile_conda

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_SPEC = REPO / "tests" / "data" / "synthetic" / "envspec.yml"  # fits the synthetic channel
HANDLER_LIMIT_S = 600.0  # a hang guard: no handler runs longer than this, whatever the client does
ENDLESS_LIMIT = 256 << 20  # nor sends more than this


class Hostile(http.server.BaseHTTPRequestHandler):
    stop: threading.Event
    sent: dict[str, int]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        deadline = time.monotonic() + HANDLER_LIMIT_S
        if "busy" in self.path:  # a mirror that is overloaded: every try is a 503, counted
            self.sent["busy"] += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        if "trickle" in self.path:
            self.send_header("Content-Length", "100000")
            self.end_headers()
            while not self.stop.is_set() and time.monotonic() < deadline:
                if not self._send(b"x"):
                    return
                self.stop.wait(1.0)  # one byte a second: never silent long enough for a read timeout
        else:  # endless, no Content-Length: only the client can end it
            self.end_headers()
            block = b"z" * 65536
            while not self.stop.is_set() and time.monotonic() < deadline and self.sent["bytes"] < ENDLESS_LIMIT:
                if not self._send(block):
                    return

    def _send(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            return False
        self.sent["bytes"] += len(data)
        return True


@pytest.fixture
def hostile_server() -> Iterator[tuple[str, dict[str, int]]]:
    stop, sent = threading.Event(), {"bytes": 0, "busy": 0}
    handler = type("Handler", (Hostile,), {"stop": stop, "sent": sent})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sent
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def one_package(url: str, size: int | None = None) -> tuple[ExplicitLock, tuple[str, ...]]:
    entry = LockEntry(url=url, md5="0" * 32, size=size)
    return ExplicitLock("linux-64", (entry,)), (url,)


# --------------------------------------------------------------------------------------------
# 3. downloads that never end
# --------------------------------------------------------------------------------------------


def test_a_trickling_download_stalls_within_seconds(hostile_server: tuple[str, dict[str, int]], tmp_path: Path) -> None:
    base, _ = hostile_server
    lock, urls = one_package(f"{base}/trickle/linux-64/slow-1.0-h_0.conda")
    t0 = time.monotonic()
    with pytest.raises(ChannelUnreachable, match="stalled") as info:
        fetch_all(lock, urls, tmp_path / "cache", lambda _: None, limits=FetchLimits(stall_s=1))
    elapsed = time.monotonic() - t0
    # the 1 s stall limit (ENVSPEC_STALL_TIMEOUT=1) ended it, not the default (60 s): a margin no load bridges
    assert elapsed < download.STALL_TIMEOUT_S / 2, elapsed
    assert info.value.exit_code == ExitCode.CHANNEL_UNREACHABLE == 5
    assert "ENVSPEC_STALL_TIMEOUT" in (info.value.tip or "")
    assert list((tmp_path / "cache" / ".envspec" / "downloads").iterdir()) == []
    print(f"stall detected after {elapsed:.2f} s")


def _count_writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    written = {"bytes": 0}
    real = download._Transfer.add

    def counting(self: download._Transfer, chunk: bytes) -> None:
        real(self, chunk)
        written["bytes"] += len(chunk)

    monkeypatch.setattr(download._Transfer, "add", counting)
    return written


@pytest.mark.parametrize("known_size", [True, False])
def test_an_endless_download_never_writes_past_its_cap(
    hostile_server: tuple[str, dict[str, int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, known_size: bool
) -> None:
    base, sent = hostile_server
    cap = 300_000
    limits = FetchLimits(max_package_bytes=cap if not known_size else 8 << 30)  # ENVSPEC_MAX_PACKAGE_BYTES
    written = _count_writes(monkeypatch)
    lock, urls = one_package(f"{base}/endless/linux-64/big-1.0-h_0.conda", size=cap if known_size else None)
    with pytest.raises(IntegrityError, match="larger than") as info:
        fetch_all(lock, urls, tmp_path / "cache", lambda _: None, limits=limits)
    assert ("lockfile records" if known_size else "ENVSPEC_MAX_PACKAGE_BYTES") in info.value.message
    assert written["bytes"] <= cap
    assert list((tmp_path / "cache" / ".envspec" / "downloads").iterdir()) == []
    print(f"cap {cap}: written {written['bytes']}, server sent {sent['bytes']}: {info.value.message}")


def _install_one(
    channel: str, project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[int, str]:
    """``envspec install`` (in this process) of a lockfile naming one package of ``channel``, with
    ``env`` set: its exit code and what it wrote to stderr."""
    lockfile = tmp_path / "x.lock"
    lockfile.write_text(f"# platform: linux-64\n@EXPLICIT\n{channel}/linux-64/slow-1.0-h_0.conda#{'0' * 32}\n")
    for name, value in {**env, "ENVSPEC_HOST_SUBDIR": "linux-64"}.items():
        monkeypatch.setenv(name, value)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["--spec", str(project_copy / "envspec.yml"), "install", "linux-cuda", "--lockfile", str(lockfile),
                 "--prefix", str(tmp_path / "env"), "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    monkeypatch.undo()
    return code, err.getvalue()


def test_a_stalled_install_is_exit_5_in_one_line(
    hostile_server: tuple[str, dict[str, int]], project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = hostile_server
    code, err = _install_one(f"{base}/trickle", project_copy, tmp_path, monkeypatch, {"ENVSPEC_STALL_TIMEOUT": "1"})
    last = err.strip().splitlines()[-1]
    assert code == ExitCode.CHANNEL_UNREACHABLE, err
    assert last.startswith("error: download of slow-1.0-h_0.conda") and "stalled" in last
    assert not (tmp_path / "env").exists()


def test_ENVSPEC_DOWNLOAD_RETRIES_bounds_the_tries_of_a_busy_mirror(
    hostile_server: tuple[str, dict[str, int]], project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 is retried with back-off (0.5, 1, 2, 4 s: 7.5 s with the default 4 retries): the
    variable sets how many times, the server counts the tries."""
    base, sent = hostile_server
    code, err = _install_one(f"{base}/busy", project_copy, tmp_path, monkeypatch, {"ENVSPEC_DOWNLOAD_RETRIES": "1"})
    assert code == ExitCode.CHANNEL_UNREACHABLE, err
    assert "503" in err.strip().splitlines()[-1]
    assert sent["busy"] == 2  # the first try and 1 retry
    assert not (tmp_path / "env").exists()


def test_sigterm_during_a_trickle_exits_promptly_and_leaves_nothing(
    hostile_server: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    base, sent = hostile_server
    lockfile = tmp_path / "x.lock"
    lockfile.write_text(f"# platform: linux-64\n@EXPLICIT\n{base}/trickle/linux-64/slow-1.0-h_0.conda#{'0' * 32}\n")
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_HOST_SUBDIR": "linux-64", "ENVSPEC_STALL_TIMEOUT": "600"}
    args = [sys.executable, "-m", "envspec", "--spec", str(SYNTHETIC_SPEC), "install", "linux-cuda",
            "--lockfile", str(lockfile), "--prefix", str(tmp_path / "env"), "--cache-dir", str(cache)]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANDLER_LIMIT_S
        downloads = cache / ".envspec" / "downloads"
        while not (sent["bytes"] >= 2 and list(downloads.glob("*.part"))):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # The trickle never ends by itself (no stall for 600 s, the server sends until the test ends):
        # only the signal can end the run; if it did not, this waits out the hang guard and fails.
        _, err = proc.communicate(timeout=HANDLER_LIMIT_S)
        elapsed = time.monotonic() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert not downloads.exists() or list(downloads.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "x.lock"]  # no prefix, no staging
    print(f"SIGTERM -> exit in {elapsed:.2f} s")


# --------------------------------------------------------------------------------------------
# 5. hostile packages with matching hashes, through the real installer
# --------------------------------------------------------------------------------------------


def install(lockfile: Path, prefix: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_HOST_SUBDIR": "linux-64"}
    env.pop("ENVSPEC_MIRRORS", None)
    args = [sys.executable, "-m", "envspec", "--spec", str(SYNTHETIC_SPEC), "install", "linux-cuda",
            "--lockfile", str(lockfile), "--prefix", str(prefix), "--cache-dir", str(cache), *extra]  # fmt: skip
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def lock_for(archives: list[Path], dest: Path) -> Path:
    lines = ["# platform: linux-64", "@EXPLICIT"]
    lines += [f"{a.as_uri()}#{hashlib.md5(a.read_bytes()).hexdigest()}" for a in archives]
    dest.write_text("\n".join(lines) + "\n")
    return dest


@pytest.mark.parametrize("kind", ["absolute", "truncated"])
def test_a_hostile_package_with_a_matching_hash_is_refused_and_cleaned_up(tmp_path: Path, kind: str) -> None:
    chan = tmp_path / "chan" / "linux-64"
    chan.mkdir(parents=True)
    factory = channel_factory()
    good = chan / "good-1.0-h_0.conda"
    good.write_bytes(factory.conda_archive(factory.Pkg("good", "1.0", "h_0", 0, "linux-64")))
    if kind == "absolute":
        bad = hostile_conda(chan / "evil-1.0-h_0.conda", [(str(tmp_path / "pwned.txt"), b"x", None, FILE)])
    else:
        data = factory.conda_archive(factory.Pkg("evil", "1.0", "h_0", 0, "linux-64"))
        bad = chan / "evil-1.0-h_0.conda"
        bad.write_bytes(data[: len(data) - 200])
    lockfile = lock_for([good, bad], tmp_path / "x.lock")
    cache, prefix = tmp_path / "cache", tmp_path / "env"
    proc = install(lockfile, prefix, cache)
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: evil-1.0-h_0.conda from") and "not a valid package" in last
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
    assert not (tmp_path / "pwned.txt").exists()
    assert not prefix.exists() and not list(tmp_path.glob(".env.envspec-*"))
    assert not (cache / "evil-1.0-h_0").exists() and not (cache / "evil-1.0-h_0.lock").exists()
    assert not (cache / ".envspec" / "downloads").exists()


# --------------------------------------------------------------------------------------------
# 1 + 11c. --with conda: the same prefix rules, the same repair of a killed swap
# --------------------------------------------------------------------------------------------

FAKE_CONDA = """#!{python}
# Stands in for conda, which cannot be installed here: makes the prefix it is asked for.
import pathlib, sys
prefix = pathlib.Path(sys.argv[sys.argv.index("--prefix") + 1])
(prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
(prefix / "conda-meta" / "fake-1.0-h_0.json").write_text("{{}}")
"""


@pytest.mark.skipif(os.name != "posix", reason="the stand-in tool is a script with a shebang")
def test_with_conda_repairs_what_a_killed_swap_left(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "conda").write_text(FAKE_CONDA.format(python=sys.executable))
    (bindir / "conda").chmod(0o755)
    lockfile = tmp_path / "x.lock"
    lockfile.write_text(f"# platform: linux-64\n@EXPLICIT\nfile:///nowhere/linux-64/a-1.0-h_0.conda#{'0' * 32}\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is a run that is gone
    old = tmp_path / f".env.envspec-old-{dead.pid}-100"
    staging = tmp_path / f".env~{dead.pid}"
    for folder in (old, staging):
        (folder / "conda-meta").mkdir(parents=True)
    (old / "conda-meta" / "envspec.marker").write_text('{"created_by": "envspec"}')
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_HOST_SUBDIR": "linux-64"}
    env["PATH"] = f"{bindir}:{env['PATH']}"
    args = [sys.executable, "-m", "envspec", "--spec", str(SYNTHETIC_SPEC), "install", "linux-cuda",
            "--lockfile", str(lockfile), "--prefix", str(tmp_path / "env"), "--with", "conda"]  # fmt: skip
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "env", "x.lock"], proc.stderr
    assert (tmp_path / "env" / "conda-meta" / "fake-1.0-h_0.json").is_file()
    assert (tmp_path / "env" / "conda-meta" / "envspec.marker").is_file()
    # and a conda base is refused before conda runs
    base = tmp_path / "miniconda3"
    for rel in ("conda-meta", "condabin", "envs/sd/conda-meta"):
        (base / rel).mkdir(parents=True)
    refused = subprocess.run([*args[:-4], "--prefix", str(base), "--with", "conda", "--replace"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert refused.returncode == ExitCode.USAGE and "refusing to replace" in refused.stderr
    assert not (base / "conda-meta" / "fake-1.0-h_0.json").exists()
