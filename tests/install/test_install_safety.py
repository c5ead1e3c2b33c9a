"""Issue #11, unit level: a hostile world loses nothing, leaks nothing, hangs nowhere.

No process and no server here (see test_install_safety_integration.py for those): prefixes that
must never be replaced, staging permissions, lockfile lines (examples + hypothesis), archives
that unpack outside the prefix, a full disk, lockfiles without sha256.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec import download
from envspec.cli.main import main
from envspec.errors import EnvspecError, ExitCode, SpecError, ToolFailed
from envspec.install import execute
from envspec.install.archive import ArchiveInvalid, validate_archive
from envspec.install.execute import PrefixNotEnvironment, check_prefix
from envspec.install.fetch import fetch_all
from envspec.install.link import MARKER_FILE, write_marker
from envspec.install.plan import Destination, ExplicitLock, LockEntry, LockInput, parse_lock, plan_install
from envspec.lock import explicit


@dataclass(frozen=True)
class Target:
    """What the install plan reads of a target (a ResolvedTarget has more)."""

    name: str
    subdir: str
    variables: dict[str, str]


REPO = Path(__file__).resolve().parents[2]
CF = "https://conda.anaconda.org/conda-forge"
MD5 = "0" * 31 + "1"


def channel_factory() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envspec_test_channel_factory", REPO / "tests" / "channel_factory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, bytes | str]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else "<dir>") for p in sorted(root.rglob("*"))
    }


# --------------------------------------------------------------------------------------------
# 1. data loss: what may be replaced
# --------------------------------------------------------------------------------------------


def conda_base(root: Path) -> Path:
    """A miniconda-shaped base installation with two environments, a cache and a user file."""
    for rel in (
        "conda-meta",
        "condabin",
        "pkgs/numpy-2.3.4-py312_0",
        "bin",
        "envs/sd/conda-meta",
        "envs/ml/conda-meta",
    ):
        (root / rel).mkdir(parents=True)
    (root / "conda-meta" / "conda-25.1.0-py312_0.json").write_text("{}")
    (root / "bin" / "conda").write_text("#!/bin/sh\n")
    (root / ".condarc").write_text("channels: [conda-forge]\n")
    (root / "envs" / "sd" / "conda-meta" / "python-3.12.11-h_0.json").write_text("{}")
    (root / "notes.txt").write_text("mine")
    return root


def test_a_conda_base_install_is_never_replaced(tmp_path: Path) -> None:
    base = conda_base(tmp_path / "miniconda3")
    for replace in (False, True):  # not even with --replace
        with pytest.raises(PrefixNotEnvironment, match="holds other environments") as info:
            check_prefix(base, replace=replace)
        assert info.value.exit_code == ExitCode.USAGE
    # without envs/, the installation's own signs are enough
    bare = tmp_path / "bare"
    (bare / "conda-meta").mkdir(parents=True)
    (bare / "condabin").mkdir()
    with pytest.raises(PrefixNotEnvironment, match="conda installation"):
        check_prefix(bare, replace=True)


def test_only_environments_envspec_made_are_replaced_without_replace(tmp_path: Path) -> None:
    env = tmp_path / "env"
    (env / "conda-meta").mkdir(parents=True)
    for name in ("a-1-0", "b-1-0"):
        (env / "conda-meta" / f"{name}.json").write_text("{}")
    with pytest.raises(PrefixNotEnvironment, match="envspec did not create") as info:
        check_prefix(env)
    assert "--replace" in (info.value.tip or "")
    assert check_prefix(env, replace=True) == 2
    write_marker(env, "linux-cuda", "lockfiles/linux-cuda.lock")
    assert check_prefix(env) == 2  # the marker is not a package record (not *.json)
    assert json.loads((env / MARKER_FILE).read_text())["created_by"] == "envspec"


LOCK = f"# platform: linux-64\n@EXPLICIT\n{CF}/linux-64/python-3.12.11-h9b197bdb_0_cpython.conda#{MD5}\n"


def run_install(project: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    lockfile = tmp_path / "x.lock"
    if not lockfile.exists():
        lockfile.write_text(LOCK)
    argv = ["--spec", str(project / "envspec.yml"), "install", "linux-cuda", "--lockfile", str(lockfile)]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENVSPEC_HOST_SUBDIR", "linux-64")
        mp.setattr(sys, "stderr", err)
        mp.setattr(sys, "stdout", out)
        code = main([*argv, *args, "--cache-dir", str(tmp_path / "cache")])
    return code, err.getvalue()


def test_install_into_a_conda_base_is_refused_and_changes_nothing(project_copy: Path, tmp_path: Path) -> None:
    base = conda_base(tmp_path / "miniconda3")
    before = tree(base)
    code, err = run_install(project_copy, tmp_path, "--prefix", str(base), "--replace")
    assert code == ExitCode.USAGE, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: refusing to replace") and "envs/ml" in last and "Traceback" not in err
    assert tree(base) == before


# --------------------------------------------------------------------------------------------
# 6. permissions: a new prefix follows the umask
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o755), (0o077, 0o700), (0o002, 0o775)])
def test_the_staging_folder_follows_the_umask(tmp_path: Path, mask: int, mode: int) -> None:
    previous = os.umask(mask)
    try:
        with execute._staging_dir(tmp_path / "env") as staging:
            assert staging.stat().st_mode & 0o777 == mode
    finally:
        os.umask(previous)


# --------------------------------------------------------------------------------------------
# 11b. md5-only packages are named; --require-sha256 refuses them
# --------------------------------------------------------------------------------------------


def test_packages_without_sha256_are_named_and_can_be_refused(project_copy: Path, tmp_path: Path) -> None:
    code, err = run_install(project_copy, tmp_path, "--prefix", str(tmp_path / "env"), "--require-sha256")
    assert code == ExitCode.INTEGRITY, err
    assert "1 of 1 packages" in err and "python-3.12.11-h9b197bdb_0_cpython.conda" in err and "md5 only" in err
    assert len(err.strip().splitlines()) >= 1 and "Traceback" not in err
    assert not (tmp_path / "env").exists() and not (tmp_path / "cache").exists()
    # without the flag: a warning naming them, then the install goes on (and fails fetching from a
    # channel folder that does not exist: never the real conda-forge, nor its retries)
    nowhere = f"conda-forge={(tmp_path / 'no-channel').as_uri()}"
    code, err = run_install(project_copy, tmp_path, "--prefix", str(tmp_path / "env"), "--mirror", nowhere)
    assert "warning: 1 of 1 packages" in err and "python-3.12.11-h9b197bdb_0_cpython.conda" in err
    assert code == ExitCode.CHANNEL_UNREACHABLE and "fetch: 0 of 1 packages verified in the cache" in err


# --------------------------------------------------------------------------------------------
# a full disk is a full disk, not an unreachable channel
# --------------------------------------------------------------------------------------------


def test_a_full_disk_while_fetching_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chan = tmp_path / "chan" / "linux-64"
    chan.mkdir(parents=True)
    data = b"x" * 300_000
    (chan / "alpha-1.0-h_0.conda").write_bytes(data)
    lock = ExplicitLock(
        "linux-64", (LockEntry(url=f"{CF}/linux-64/alpha-1.0-h_0.conda", md5=hashlib.md5(data).hexdigest()),)
    )
    written = {"n": 0}

    real = download._Transfer.add

    def full(self: download._Transfer, chunk: bytes) -> None:
        if written["n"] + len(chunk) > 100_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written["n"] += len(chunk)
        real(self, chunk)

    monkeypatch.setattr(download._Transfer, "add", full)
    monkeypatch.setattr(download, "CHUNK", 65536)
    cache = tmp_path / "cache"
    with pytest.raises(ToolFailed) as info:
        fetch_all(lock, ((chan / "alpha-1.0-h_0.conda").as_uri(),), cache, lambda _: None)
    assert info.value.exit_code == ExitCode.TOOL_FAILED == 6
    assert info.value.message.startswith("disk full: cannot write alpha-1.0-h_0.conda")
    assert "network" not in info.value.one_line() and "--cache-dir" in info.value.one_line()
    assert list((cache / ".envspec" / "downloads").iterdir()) == []  # the partial file is gone


# --------------------------------------------------------------------------------------------
# 4. explicit lockfile lines: normalised once, checked in that form
# --------------------------------------------------------------------------------------------

PKG = f"{CF}/linux-64/numpy-2.3.4-py312h_0.conda"


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (f"{CF}/linux-64/num%70y-2.2.6-py312h_0.conda#{MD5}", "listed twice"),  # %70 is p
        (f"{CF}/linux-64/NumPy-2.2.6-py312h_0.conda#{MD5}", "listed twice"),
        (f"{CF}/linux-64/numpy-2.2.6-py312h_0.conda?x=1#{MD5}", "query string"),
        (f"{CF}/linux-64/numpy-2.2.6-py312h_0.conda?#{MD5}", "query string"),
        (f"{CF}/linux-64/numpy-2.2.6-py312h_0.conda#frag#{MD5}", "URL#hash"),
        (f"{CF}/linux-64/sc\x00ipy-1.0-h_0.conda#{MD5}", "control"),
        (f"{CF}/linux-64/sc%00ipy-1.0-h_0.conda#{MD5}", "control"),
        (f"{CF}/linux-64/sc%0aipy-1.0-h_0.conda#{MD5}", "control"),
        (f"{CF}/linux-64/..%2F..%2Fetc-1.0-h_0.conda#{MD5}", "segment"),
        (f"{CF}/linux-64/a%2Fb-1.0-h_0.conda#{MD5}", "not a conda package file name"),
        (f"{CF}/linux-64/%ff-1.0-h_0.conda#{MD5}", "UTF-8"),
        (f"{CF}/linux-64/scipy-1.0-h_0.whl#{MD5}", "not a conda package file name"),
        (f"{CF}/linux-64/scipy-1.0.conda#{MD5}", "not a conda package file name"),
        (f"ftp://example.org/linux-64/scipy-1.0-h_0.conda#{MD5}", "scheme"),
        (f"javascript:alert(1)/scipy-1.0-h_0.conda#{MD5}", "scheme"),
        (f"https:///linux-64/scipy-1.0-h_0.conda#{MD5}", "no host"),
        (f"https://[::1/linux-64/scipy-1.0-h_0.conda#{MD5}", "not a URL"),
    ],
)
def test_hostile_lines_are_one_line_spec_errors(line: str, needle: str) -> None:
    text = f"# platform: linux-64\n@EXPLICIT\n{PKG}#{MD5}\n{line}\n"
    with pytest.raises(SpecError) as info:
        parse_lock(text, "x.lock")
    assert needle in info.value.message
    assert "\n" not in info.value.one_line() and info.value.exit_code == ExitCode.SPEC_INVALID


def test_text_without_explicit_marker_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="@EXPLICIT"):
        parse_lock("# platform: linux-64\n", "x.lock")
    with pytest.raises(SpecError, match="before @EXPLICIT"):
        parse_lock(f"# platform: linux-64\n{PKG}#{MD5}\n", "x.lock")


def test_a_decoded_name_is_what_the_installer_sees() -> None:
    (entry,) = explicit.entries(f"@EXPLICIT\n{CF}/linux-64/num%70y-2.3.4-py312h_0.conda#{MD5}\n")
    assert (entry.name, entry.filename) == ("numpy", "numpy-2.3.4-py312h_0.conda")
    lock = parse_lock(f"# platform: linux-64\n@EXPLICIT\n{CF}/linux-64/num%70y-2.3.4-py312h_0.conda#{MD5}\n", "x")
    assert lock.entries[0].filename == entry.filename and lock.entries[0].name == "numpy"


_PIECES = st.sampled_from(
    [
        "numpy", "num%70y", "NumPy", "n%75mpy", "-2.3.4", "-2.2.6", "-py312h_0", ".conda", ".tar.bz2", ".whl",
        "%00", "%0a", "\x00", "\x7f", "\u2028", "\ufeff", " ", "\t", "?", "?x=1", "#", "#frag", "%2F", "/", "..",
        "%2e%2e", "%ff", "%", "%zz", "\\", "@", ":", "[", "]", "é", "%C3%A9",
    ]
)  # fmt: skip
_PREFIXES = st.sampled_from(
    [
        f"{CF}/linux-64/", "file:///chan/linux-64/", "http://127.0.0.1:1/c/linux-64/", "ftp://h/c/linux-64/",
        "HTTPS://H/c/linux-64/", "data:,", "file:", "https://[::1/", "https://u:p@h/c/linux-64/", "//h/c/", "",
    ]
)  # fmt: skip
_HASHES = st.sampled_from(["#" + MD5, "#sha256:" + "a" * 64, "#" + "b" * 64, "#" + "0" * 40, "", "#", "#sha256:"])
_LINES = st.builds(lambda p, parts, h: p + "".join(parts) + h, _PREFIXES, st.lists(_PIECES, max_size=8), _HASHES)
_ANY_LINES = st.one_of(_LINES, st.text(max_size=60), st.just("@EXPLICIT"), st.just("# platform: linux-64"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_ANY_LINES, max_size=6), header=st.booleans())
def test_generated_lockfiles_never_escape_as_a_traceback(lines: list[str], header: bool) -> None:
    text = ("# platform: linux-64\n@EXPLICIT\n" if header else "") + "\n".join(lines) + "\n"
    try:
        parsed = explicit.entries(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        for entry in parsed:  # what is accepted is clean, decoded and a conda file name
            assert explicit.normalise_url(entry.url)[1] == entry.filename
            assert not any(ch in entry.url + entry.filename for ch in "\x00\n\r\t ?")
    try:
        lock = parse_lock(text, "x.lock")
        plan = plan_install(
            Target("linux-cuda", "linux-64", {}),
            LockInput(text, "x.lock"),
            host="linux-64", destination=Destination(Path("/tmp/envspec-never")), mirrors={},
            tool="micromamba",
        )  # fmt: skip
    except SpecError as exc:
        assert exc.exit_code == ExitCode.SPEC_INVALID and "\n" not in exc.one_line()
    except EnvspecError as exc:  # a generated "# platform:" line may name another platform
        assert exc.exit_code == ExitCode.PLATFORM_MISMATCH
    else:
        names = [e.name.lower() for e in lock.entries]
        assert len(names) == len(set(names))
        assert all("/" not in e.filename and "%" not in e.stem and e.stem for e in lock.entries)
        assert plan.tool_lock_text is not None and len(plan.urls) == len(lock.entries)


# --------------------------------------------------------------------------------------------
# 5. archives: validated before anything is unpacked
# --------------------------------------------------------------------------------------------


def _tar(members: list[tuple[str, bytes | None, str | None, bytes]]) -> bytes:
    """(name, data, link target, type) -> tar bytes; data None for a link."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, target, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if target is not None:
                info.linkname = target
            info.size = len(data or b"")
            tar.addfile(info, io.BytesIO(data) if data else None)
    return raw.getvalue()


def hostile_conda(path: Path, members: list[tuple[str, bytes | None, str | None, bytes]]) -> Path:
    """A .conda whose pkg tar holds ``members`` (info tar as a real package's)."""
    import zstandard

    factory = channel_factory()
    stem = path.name.removesuffix(".conda")
    name, version, build = stem.rsplit("-", 2)
    pkg = factory.Pkg(name, version, build, 0, "linux-64")
    info = [
        ("info/index.json", json.dumps(factory._index_json(pkg)).encode()),
        ("info/paths.json", json.dumps({"paths": [], "paths_version": 1}).encode()),
    ]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        zf.writestr(f"pkg-{stem}.tar.zst", zstandard.ZstdCompressor().compress(_tar(members)))
        zf.writestr(f"info-{stem}.tar.zst", factory._tar_zst(info))
    return path


FILE, SYM, HARD, FIFO = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ([("/tmp/evil.txt", b"x", None, FILE)], "absolute path"),
        ([("lib/../../evil.txt", b"x", None, FILE)], "'..'"),
        ([("lib/link", None, "../../etc/passwd", SYM)], "outside the package"),
        ([("lib/link", None, "/etc/passwd", SYM)], "absolute path"),
        ([("lib/hard", None, "../outside", HARD)], "outside the package"),
        ([("lib/fifo", None, None, FIFO)], "FIFO"),
    ],
)
def test_archives_that_unpack_outside_the_prefix_are_refused(
    tmp_path: Path, members: list[tuple[str, bytes | None, str | None, bytes]], needle: str
) -> None:
    archive = hostile_conda(tmp_path / "evil-1.0-h_0.conda", members)
    with pytest.raises(ArchiveInvalid, match=needle):
        validate_archive(archive, archive.name)


def test_a_fine_archive_passes_and_inner_links_are_allowed(tmp_path: Path) -> None:
    ok = hostile_conda(
        tmp_path / "ok-1.0-h_0.conda",
        [("lib/libz.so.1", b"elf", None, FILE), ("lib/libz.so", None, "libz.so.1", SYM), ("./bin/x", b"", None, FILE)],
    )
    validate_archive(ok, ok.name)
    factory = channel_factory()
    real = tmp_path / "real-1.0-h_0.conda"
    real.write_bytes(factory.conda_archive(factory.Pkg("real", "1.0", "h_0", 0, "linux-64")))
    validate_archive(real, real.name)


def test_truncated_and_tar_bz2_archives(tmp_path: Path) -> None:
    factory = channel_factory()
    data = factory.conda_archive(factory.Pkg("trunc", "1.0", "h_0", 0, "linux-64"))
    cut = tmp_path / "trunc-1.0-h_0.conda"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ArchiveInvalid, match="truncated or corrupt"):
        validate_archive(cut, cut.name)
    bz2 = io.BytesIO()
    with tarfile.open(fileobj=bz2, mode="w:bz2") as tar:
        info = tarfile.TarInfo("/abs/evil")
        tar.addfile(info, io.BytesIO(b""))
    evil = tmp_path / "evil-1.0-h_0.tar.bz2"
    evil.write_bytes(bz2.getvalue())
    with pytest.raises(ArchiveInvalid, match="absolute path"):
        validate_archive(evil, evil.name)
    evil.write_bytes(bz2.getvalue()[:40])
    with pytest.raises(ArchiveInvalid, match="truncated or corrupt"):
        validate_archive(evil, evil.name)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # as `envspec install` handles SIGTERM while it runs


def test_an_interrupt_swallowed_where_py_rattler_runs_our_code_still_ends_the_install() -> None:
    """A SIGTERM whose KeyboardInterrupt py-rattler swallows (it fired while a callback of ours ran
    inside py-rattler: the install then linked on and exited 0) ends the install once py-rattler
    returns; a block where nothing fired raises nothing, and the handlers are as they were."""
    import signal
    import time

    from envspec.install.link import interrupts_kept

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_kept():
            try:  # what py-rattler does with an exception raised in our callback
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler runs here, long before this ends
            except KeyboardInterrupt:
                pass
        assert signal.getsignal(signal.SIGTERM) is _interrupt
        with interrupts_kept():
            pass
        assert signal.getsignal(signal.SIGTERM) is _interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
