"""`envspec install` end to end: the real lock of the local channel, real downloads, real py-rattler.

The project is the repository's spec, rendered and locked (real conda-lock + envspec's rattler
shim) against the lock tests' conda-forge-shaped channel of real ``.conda`` packages. Each install
runs the CLI in a child process, as users do (py-rattler may crash at interpreter exit; the CLI
leaves with ``os._exit`` so its exit code is the truthful one).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.install.plan import parse_lock

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / "tests" / "channel_factory.py"
CF = "https://conda.anaconda.org/conda-forge"


def channel_factory() -> ModuleType:
    """The lock tests' channel factory, loaded by path (``tests/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("envspec_test_channel_factory", FACTORY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def local_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lock tests' conda-forge-shaped channel of real .conda packages, built the same way
    (in a child process: py-rattler indexes it and may crash at interpreter exit)."""
    root = tmp_path_factory.mktemp("channel") / "conda-forge-local"
    subprocess.run([sys.executable, str(FACTORY), str(root)], check=True, capture_output=True)
    return root


def envspec_inproc(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


def install(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`envspec install ...` in a child process, as a user runs it."""
    environ = {k: v for k, v in os.environ.items() if k != "ENVSPEC_MIRRORS"}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), "install", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )


def tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every path under ``root`` with its mode and content (or link target): a byte-exact snapshot."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if path.is_symlink():
            out[rel] = (st.st_mode, str(path.readlink()))
        elif path.is_file():
            out[rel] = (st.st_mode, path.read_bytes())
        else:
            out[rel] = (st.st_mode, "<dir>")
    return out


def canonical_lock(lockfile: Path, channel: Path, dest: Path, *, with_conda_lock: bool = False) -> Path:
    """The lockfile as it looks when solved against real conda-forge: anaconda.org URLs.

    ``with_conda_lock`` writes conda-lock's unified file beside it too (sha256 for every package);
    without it only the explicit file's md5 pins the packages.
    """
    text = lockfile.read_text(encoding="utf-8").replace(channel.as_uri(), CF)
    dest.write_text(text, encoding="utf-8")
    if with_conda_lock:
        unified = lockfile.with_name(lockfile.name.removesuffix(".lock") + ".conda-lock.yml")
        sibling = dest.with_name(dest.name.removesuffix(".lock") + ".conda-lock.yml")
        sibling.write_text(unified.read_text(encoding="utf-8").replace(channel.as_uri(), CF), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def locked(local_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's spec rendered, and linux-cuda + osx-arm64 locked against the local channel."""
    project = tmp_path_factory.mktemp("install") / "proj"
    project.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project / "envspec.yml")
    assert envspec_inproc(project, "render")[0] == 0
    code, _, err = envspec_inproc(
        project,
        "lock",
        "--target",
        "linux-cuda",
        "--target",
        "osx-arm64",
        "--mirror",
        f"conda-forge={local_channel.as_uri()}",
    )
    assert code == 0, err
    # Lockfiles name canonical URLs (a mirror is transport); these tests install straight from the
    # local channel, so point both files of each pair at it (canonical_lock() turns them back).
    for path in (project / "lockfiles").glob("*.*"):
        if path.name.endswith((".lock", ".conda-lock.yml")):
            path.write_text(path.read_text(encoding="utf-8").replace(CF, local_channel.as_uri()), encoding="utf-8")
    return project


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "pkgs"


@pytest.fixture
def tampered_channel(local_channel: Path, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A copy of the channel (a 'mirror') whose pytorch CUDA archive has one byte changed."""
    mirror = tmp_path / "mirror"
    shutil.copytree(local_channel, mirror)
    victim = next((mirror / "linux-64").glob("pytorch-2.13.0-cuda129_*py312*.conda"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    yield mirror, victim.name


def test_install_creates_the_locked_environment(locked: Path, tmp_path: Path, cache: Path) -> None:
    prefix = tmp_path / "env"
    proc = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    lock = parse_lock((locked / "lockfiles" / "linux-cuda.lock").read_text(), "x")
    # conda-meta: one record per lockfile line, with the lockfile's URL and hash
    records = {p.stem: json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")}
    assert set(records) == {e.stem for e in lock.entries}
    for entry in lock.entries:
        record = records[entry.stem]
        assert record["url"] == entry.url
        assert entry.hashes and all(record[kind] == value for kind, value in entry.hashes.items())
        for rel in record["files"]:
            assert (prefix / rel).is_file(), rel
    # the conda-lock file beside the explicit one pins every package by sha256 as well
    assert f"hashes: {len(lock.entries)}/{len(lock.entries)} packages pinned by sha256" in proc.stderr
    unified = (locked / "lockfiles" / "linux-cuda.conda-lock.yml").read_text()
    assert all(record["sha256"] in unified for record in records.values())
    torch = next(r for r in records.values() if r["name"] == "pytorch")
    assert torch["build"].startswith("cuda129_")
    assert (prefix / "share" / "envspec-test" / "pytorch.txt").read_text().startswith("# pytorch 2.13.0 cuda129")
    assert (prefix / "lib" / "python3.12" / "site-packages" / "diffusers" / "__init__.py").is_file()
    assert not (prefix / "CACHEDIR.TAG").exists()  # backup tools skip folders holding one
    if os.name == "posix":  # metadata modes follow the umask, as conda's do (not rattler's owner-only)
        mask = os.umask(0)
        os.umask(mask)
        assert {p.stat().st_mode & 0o777 for p in (prefix / "conda-meta").iterdir()} == {0o666 & ~mask}
    state = json.loads((prefix / "conda-meta" / "state").read_text())
    assert state["env_vars"]["ENVSPEC_TARGET"] == "linux-cuda"
    assert state["env_vars"]["ENVSPEC_DEVICE"] == "cuda"
    # progress on stderr, result on stdout
    assert f"fetch: {len(lock.entries)}/{len(lock.entries)} downloaded" in proc.stderr
    assert f"link: {len(lock.entries)}/{len(lock.entries)} packages" in proc.stderr
    assert proc.stdout.startswith(f"created {prefix}: {len(lock.entries)} packages of linux-cuda")
    assert [p.name for p in tmp_path.iterdir() if "envspec" in p.name] == []  # no staging left

    # again, into the same prefix: everything from the verified cache, the prefix replaced
    (prefix / "stray.txt").write_text("not from the lockfile")
    # (named: without TARGET a linux-64 host gets linux-cuda or linux-cpu by its GPU, tests/doctor/test_linux_cpu.py)
    again = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache))
    assert again.returncode == 0, again.stderr
    assert f"0 downloaded (0 B), {len(lock.entries)} from the verified cache" in again.stdout
    assert again.stdout.startswith(f"replaced {prefix}")
    assert not (prefix / "stray.txt").exists()
    assert {p.stem for p in (prefix / "conda-meta").glob("*.json")} == {e.stem for e in lock.entries}

    # through a symlink to it: the environment it points to is replaced, the link stays a link
    link = tmp_path / "env-link"
    link.symlink_to(prefix, target_is_directory=True)
    third = install(locked, "linux-cuda", "--prefix", str(link), "--cache-dir", str(cache))
    assert third.returncode == 0, third.stderr
    assert link.is_symlink() and (link / "conda-meta" / "state").is_file()
    assert [p.name for p in tmp_path.iterdir() if "envspec" in p.name] == []


def test_tampered_mirror_is_refused_and_a_new_prefix_never_appears(
    locked: Path,
    tmp_path: Path,
    cache: Path,
    tampered_channel: tuple[Path, str],
    local_channel: Path,
) -> None:
    mirror, victim = tampered_channel
    lockfile = canonical_lock(locked / "lockfiles" / "linux-cuda.lock", local_channel, tmp_path / "cf.lock")
    prefix = tmp_path / "deep" / "new-env"
    proc = install(
        locked, "linux-cuda", "--lockfile", str(lockfile), "--prefix", str(prefix), "--cache-dir", str(cache),
        "--mirror", f"conda-forge={mirror.as_uri()}",
    )  # fmt: skip
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    assert victim in proc.stderr and "nothing was installed" in proc.stderr
    assert ": md5 " in proc.stderr  # only the explicit file: its md5 caught it
    assert "Traceback" not in proc.stderr
    assert not prefix.exists()
    assert not (tmp_path / "deep").exists()  # folders made for it are gone too
    # nothing of the tampered archive stays in the cache
    assert not list(cache.glob(f"{victim.removesuffix('.conda')}*"))
    assert not (cache / ".envspec" / "downloads").exists()  # no download outlives its run


def test_tampered_mirror_leaves_an_existing_environment_byte_identical(
    locked: Path,
    tmp_path: Path,
    tampered_channel: tuple[Path, str],
    local_channel: Path,
) -> None:
    prefix = tmp_path / "env"
    good = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(tmp_path / "c1"))
    assert good.returncode == 0, good.stderr
    before = tree(prefix)
    mirror, victim = tampered_channel
    lockfile = canonical_lock(
        locked / "lockfiles" / "linux-cuda.lock", local_channel, tmp_path / "cf.lock", with_conda_lock=True
    )
    proc = install(
        locked, "linux-cuda", "--lockfile", str(lockfile), "--prefix", str(prefix),
        "--cache-dir", str(tmp_path / "c2"), "--mirror", f"conda-forge={mirror.as_uri()}",
    )  # fmt: skip
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    assert victim in proc.stderr and ": sha256 " in proc.stderr  # the strongest hash is the one reported
    assert tree(prefix) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1", "c2", "cf.conda-lock.yml", "cf.lock", "env", "mirror"]


def test_corrupt_cache_entry_is_not_trusted(locked: Path, tmp_path: Path, cache: Path) -> None:
    """A cached package whose verification record no longer matches is downloaded and checked again."""
    prefix = tmp_path / "env"
    assert install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache)).returncode == 0
    sidecar = next((cache / ".envspec").glob("pytorch-*.json"))
    data = json.loads(sidecar.read_text())
    data["md5"] = "0" * 32  # the cache claims an archive other than the lockfile's
    sidecar.write_text(json.dumps(data))
    proc = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    assert "1 downloaded" in proc.stdout
    assert json.loads(sidecar.read_text())["md5"] != "0" * 32


def test_verify_cache_repairs_a_file_edited_through_an_environment(locked: Path, tmp_path: Path, cache: Path) -> None:
    """Cached files are hardlinked into environments: an edit in one edits the cache."""
    prefix = tmp_path / "env"
    assert install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache)).returncode == 0
    victim = prefix / "share" / "envspec-test" / "pytorch.txt"
    original = victim.read_text()
    with victim.open("r+") as handle:  # in place, as an editor saving over the file would
        handle.write("tampered")
    cached = next(cache.glob("pytorch-*/share/envspec-test/pytorch.txt"))
    assert cached.read_text().startswith("tampered")  # the cache was hit through the hardlink
    proc = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache), "--verify-cache")
    assert proc.returncode == 0, proc.stderr
    assert "was modified (share/envspec-test/pytorch.txt)" in proc.stderr
    assert "1 downloaded" in proc.stdout
    assert victim.read_text() == original
    again = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache), "--verify-cache")
    assert "0 downloaded" in again.stdout and "was modified" not in again.stderr


def test_foreign_platform_lockfile_is_refused(locked: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    proc = install(locked, "osx-arm64", "--prefix", str(prefix), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == ExitCode.PLATFORM_MISMATCH == 9, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and "osx-arm64" in err and "linux-64" in err
    assert not prefix.exists() and not (tmp_path / "c").exists()
    # a lockfile that does not match its target's platform is refused too
    wrong = tmp_path / "wrong.lock"
    shutil.copy2(locked / "lockfiles" / "osx-arm64.lock", wrong)
    proc = install(locked, "linux-cuda", "--lockfile", str(wrong), "--prefix", str(prefix))
    assert proc.returncode == 9 and "osx-arm64" in proc.stderr and "linux-64" in proc.stderr


PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"


def placeholder_package(channel: Path) -> Path:
    """A real .conda whose text file carries conda's prefix placeholder (as scripts and configs do)."""
    import zipfile

    factory = channel_factory()
    pkg = factory.Pkg("hello-tool", "1.0", "h1234567_0", 0, "linux-64")
    data = f"#!{PLACEHOLDER}/bin/python\nPREFIX={PLACEHOLDER}\n".encode()
    paths = {
        "paths": [
            {
                "_path": "bin/hello-tool",
                "path_type": "hardlink",
                "file_mode": "text",
                "prefix_placeholder": PLACEHOLDER,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
        ],
        "paths_version": 1,
    }
    info = [
        ("info/index.json", json.dumps(factory._index_json(pkg)).encode()),
        ("info/paths.json", json.dumps(paths).encode()),
        ("info/has_prefix", f"{PLACEHOLDER} text bin/hello-tool\n".encode()),
    ]
    archive = channel / "linux-64" / pkg.filename
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for name, member in (
            ("metadata.json", b'{"conda_pkg_format_version": 2}'),
            (f"pkg-{pkg.stem}.tar.zst", factory._tar_zst([("bin/hello-tool", data)])),
            (f"info-{pkg.stem}.tar.zst", factory._tar_zst(info)),
        ):
            zf.writestr(zipfile.ZipInfo(name, date_time=factory._ZIP_DATE), member)
    return archive


def test_files_name_the_final_prefix_not_the_staging_folder(locked: Path, tmp_path: Path) -> None:
    archive = placeholder_package(tmp_path / "chan")
    lockfile = tmp_path / "hello.lock"
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    lockfile.write_text(f"# platform: linux-64\n@EXPLICIT\n{archive.as_uri()}#{md5}\n")
    prefix = tmp_path / "env"
    proc = install(locked, "linux-cuda", "--lockfile", str(lockfile), "--prefix", str(prefix), "--cache-dir",
                   str(tmp_path / "c"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (prefix / "bin" / "hello-tool").read_text()
    assert text == f"#!{prefix}/bin/python\nPREFIX={prefix}\n"
    for path in prefix.rglob("*"):
        if path.is_file():
            assert str(tmp_path / ".env~").encode() not in path.read_bytes(), path  # the staging folder


def test_a_killed_install_leaves_no_prefix_and_the_next_run_cleans_up(locked: Path, tmp_path: Path) -> None:
    import signal

    factory = channel_factory()
    chan = tmp_path / "chan" / "linux-64"
    chan.mkdir(parents=True)
    lines = ["# platform: linux-64", "@EXPLICIT"]
    for i in range(4):  # enough files that extracting and linking take a while
        files = tuple((f"lib/big{i}/f{j:05d}.txt", f"{i} {j}\n") for j in range(1500))
        pkg = factory.Pkg(f"big{i}", "1.0", "h0_0", 0, "linux-64", files=files)
        data = factory.conda_archive(pkg)
        (chan / pkg.filename).write_bytes(data)
        lines.append(f"{(chan / pkg.filename).as_uri()}#{hashlib.md5(data).hexdigest()}")
    lockfile = tmp_path / "big.lock"
    lockfile.write_text("\n".join(lines) + "\n")
    prefix = tmp_path / "env"
    args = [sys.executable, "-m", "envspec", "--spec", str(locked / "envspec.yml"), "install", "linux-cuda",
            "--lockfile", str(lockfile), "--prefix", str(prefix), "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".env~*")):
        time.sleep(0.005)
    assert list(tmp_path.glob(".env~*")), "the install never started staging"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert not prefix.exists()
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert (prefix / "lib" / "big3" / "f01499.txt").read_text() == "3 1499\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.lock", "c", "chan", "env"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_mirror(local_channel: Path) -> Iterator[str]:
    """The local channel served over HTTP by a real web server (python -m http.server)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(local_channel)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600  # a hang guard: a loaded machine starts the server late, not never
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
                break
            assert server.poll() is None, "the HTTP server ended"
            assert time.monotonic() < deadline, "the HTTP server never listened"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_mirror_maps_conda_forge_to_an_http_mirror(
    locked: Path,
    tmp_path: Path,
    cache: Path,
    http_mirror: str,
    local_channel: Path,
) -> None:
    lockfile = canonical_lock(locked / "lockfiles" / "linux-cuda.lock", local_channel, tmp_path / "cf.lock")
    prefix = tmp_path / "env"
    proc = install(
        locked, "linux-cuda", "--lockfile", str(lockfile), "--prefix", str(prefix), "--cache-dir", str(cache),
        env={"ENVSPEC_MIRRORS": f"conda-forge={http_mirror}"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")]
    assert records and all(r["url"].startswith(http_mirror + "/") for r in records)
    assert all(r["channel"] == http_mirror for r in records)
    for r in records:  # the archives really came over HTTP and match the lockfile
        original = local_channel / r["subdir"] / r["fn"]
        assert r["md5"] == hashlib.md5(original.read_bytes()).hexdigest()


def test_unreachable_mirror_names_the_url(locked: Path, tmp_path: Path, local_channel: Path) -> None:
    lockfile = canonical_lock(locked / "lockfiles" / "linux-cuda.lock", local_channel, tmp_path / "cf.lock")
    dead = f"http://127.0.0.1:{_free_port()}/cf"
    proc = install(
        locked, "linux-cuda", "--lockfile", str(lockfile), "--prefix", str(tmp_path / "env"),
        "--cache-dir", str(tmp_path / "c"), "--mirror", f"conda-forge={dead}",
        env={"ENVSPEC_DOWNLOAD_RETRIES": "0"},  # its back-off (7.5 s) would change nothing here
    )  # fmt: skip
    assert proc.returncode == ExitCode.CHANNEL_UNREACHABLE, proc.stderr
    assert dead in proc.stderr and "--mirror" in proc.stderr
    assert not (tmp_path / "env").exists()


def test_with_a_missing_tool_fails_cleanly(locked: Path, tmp_path: Path) -> None:
    proc = install(
        locked, "linux-cuda", "--prefix", str(tmp_path / "env"), "--with", "micromamba",
        env={"PATH": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == ExitCode.TOOL_FAILED, proc.stderr
    assert "micromamba is not on PATH" in proc.stderr


FAKE_TOOL = """#!/bin/sh
# Stands in for micromamba, which cannot be installed here: records what envspec asked of it.
prefix=""; file=""
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix="$2"; shift;; -f) file="$2"; shift;; esac; shift
done
[ -n "$FAKE_FAIL" ] && mkdir -p "$prefix/conda-meta" && touch "$prefix/conda-meta/half-linked.json" && exit 3
mkdir -p "$prefix/conda-meta" && cp "$file" "$prefix/received.lock" && echo "$0 $*" > "$prefix/argv"
"""


@pytest.mark.skipif(os.name != "posix", reason="the stand-in tool is a shell script")
def test_with_tool_gets_the_mirrored_explicit_file(locked: Path, tmp_path: Path, local_channel: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "micromamba"
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    lockfile = canonical_lock(locked / "lockfiles" / "linux-cuda.lock", local_channel, tmp_path / "cf.lock")
    prefix = tmp_path / "env"
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    args = ["linux-cuda", "--with", "micromamba", "--lockfile", str(lockfile), "--prefix", str(prefix),
            "--mirror", "conda-forge=https://mirror.example/cf"]  # fmt: skip
    proc = install(locked, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    received = (prefix / "received.lock").read_text()
    assert "https://mirror.example/cf/linux-64/pytorch-2.13.0-cuda129" in received
    assert not [line for line in received.splitlines() if line.startswith(CF)]
    assert parse_lock(received, "x").entries == tuple(
        type(e)(url=e.url.replace(CF, "https://mirror.example/cf"), md5=e.md5, sha256=e.sha256)
        for e in parse_lock(lockfile.read_text(), "x").entries
    )
    assert json.loads((prefix / "conda-meta" / "state").read_text())["env_vars"]["ENVSPEC_TARGET"] == "linux-cuda"
    failed = install(locked, *args[:-2], "--prefix", str(tmp_path / "env2"), env={**env, "FAKE_FAIL": "1"})
    assert failed.returncode == ExitCode.TOOL_FAILED and "micromamba failed with exit code 3" in failed.stderr
    assert not (tmp_path / "env2").exists()  # the half-made new prefix the tool left is removed


def test_named_environment_goes_to_conda_envs_path(locked: Path, tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    proc = install(
        locked, "linux-cuda", "--name", "sd", "--cache-dir", str(tmp_path / "c"),
        env={"CONDA_ENVS_PATH": str(envs)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (envs / "sd" / "conda-meta" / "state").is_file()


def test_a_folder_that_is_not_an_environment_is_not_replaced(locked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("keep me")
    proc = install(locked, "linux-cuda", "--prefix", str(home), "--cache-dir", str(tmp_path / "c"))
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "not a conda environment" in proc.stderr
    assert [p.name for p in home.iterdir()] == ["notes.txt"]


def test_a_first_install_without_lockfile_solves_it_first_and_locked_refuses(
    local_channel: Path, tmp_path: Path, cache: Path
) -> None:
    """As `pixi install` / `uv sync`: a fresh clone with no lockfile gets one, then the environment."""
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project / "envspec.yml")
    assert envspec_inproc(project, "render")[0] == 0
    mirror = ["--mirror", f"conda-forge={local_channel.as_uri()}"]
    env = {"ENVSPEC_HOST_SUBDIR": "linux-64", "ENVSPEC_PKGS_DIR": str(cache)}
    refused = install(project, "linux-cuda", "--prefix", str(tmp_path / "no"), "--locked", *mirror, env=env)
    assert refused.returncode == 1, refused.stderr
    assert "lockfiles/linux-cuda.lock does not exist and --locked was given" in refused.stderr
    assert not (tmp_path / "no").exists() and not (project / "lockfiles" / "linux-cuda.lock").exists()
    done = install(project, "linux-cuda", "--prefix", str(tmp_path / "env"), *mirror, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "does not exist; solving linux-cuda first" in done.stderr
    assert (project / "lockfiles" / "linux-cuda.lock").is_file()
    assert (tmp_path / "env" / "conda-meta").is_dir()
    again = install(project, "linux-cuda", "--prefix", str(tmp_path / "env2"), "--locked", *mirror, env=env)
    assert again.returncode == 0, again.stderr[-3000:]  # now fresh: --locked installs it


def test_a_channel_token_never_reaches_the_environment_or_the_cache(
    locked: Path, local_channel: Path, tmp_path: Path, cache: Path
) -> None:
    """An anaconda.org-style private channel (``.../t/TOKEN/channel``): the token is a secret in
    conda-meta and in the package cache's records, for downloads and for cache hits alike (#21)."""
    token = "tk-SECRET-4242"
    tokened = tmp_path / "t" / token / "conda-forge-local"
    shutil.copytree(local_channel, tokened)
    lockdir = tmp_path / "lockfiles"
    lockdir.mkdir()
    for name in ("linux-cuda.lock", "linux-cuda.conda-lock.yml"):
        text = (locked / "lockfiles" / name).read_text(encoding="utf-8")
        (lockdir / name).write_text(text.replace(local_channel.as_uri(), tokened.as_uri()), encoding="utf-8")
    for run in ("download", "cache hit"):
        prefix = tmp_path / f"env-{run.replace(' ', '-')}"
        args = [
            "linux-cuda",
            "--prefix",
            str(prefix),
            "--cache-dir",
            str(cache),
            "--lockfile",
            str(lockdir / "linux-cuda.lock"),
        ]
        proc = install(locked, *args)
        assert proc.returncode == 0, proc.stderr
        leaked = [p for p in prefix.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
        assert leaked == [], (run, leaked[:3])
        assert token not in proc.stdout + proc.stderr
    records = [p for p in (cache / ".envspec").glob("*.json") if token.encode() in p.read_bytes()]
    assert records == []
