"""Portable lockfiles (a mirror is transport, never content), mirror credentials, and the
all-or-nothing lockfile commit. Unit tests here; the ones that run conda-lock, servers or kill
processes are in ``test_portable_integration.py``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from envspec import channels
from envspec.channels import (
    apply_mirrors,
    auth_headers,
    canonical_channels,
    parse_mirrors,
    redact,
    shim_mirrors,
    shown,
)
from envspec.errors import SpecError
from envspec.lock import commit
from envspec.lock.conda_shim import canonical_url, route
from envspec.lock.jobs import make_jobs

CF = "https://conda.anaconda.org/conda-forge"


@pytest.fixture(autouse=True)
def _no_credentials_left() -> Iterator[None]:
    channels.forget_all()
    yield
    channels.forget_all()


# ------------------------------------------------------------------------------- redact / credentials


def test_redact_masks_the_password_and_keeps_the_user() -> None:
    assert redact("https://alice:s3cret@mirror.example/cf/linux-64/x.conda") == (
        "https://alice:***@mirror.example/cf/linux-64/x.conda"
    )
    assert redact("http://u:p%40ss@h:8080/c") == "http://u:***@h:8080/c"
    assert redact("https://conda.anaconda.org/t/tk-123-456/private") == "https://conda.anaconda.org/t/***/private"
    text = "failed: https://a:x1@h/one and https://b:y2@h/two"
    assert redact(text) == "failed: https://a:***@h/one and https://b:***@h/two"
    assert redact("https://mirror.example/cf") == "https://mirror.example/cf"


def test_parsed_mirror_urls_carry_no_credentials_but_requests_do() -> None:
    mirrors = parse_mirrors(["conda-forge=https://alice:s3cret@mirror.example/cf/"])
    assert mirrors == {"conda-forge": "https://mirror.example/cf"}
    url, headers = auth_headers("https://mirror.example/cf/noarch/tqdm-4.67.1-pyhd8ed1ab_0.conda")
    assert url == "https://mirror.example/cf/noarch/tqdm-4.67.1-pyhd8ed1ab_0.conda"
    assert headers == {"Authorization": "Basic YWxpY2U6czNjcmV0"}  # alice:s3cret
    assert auth_headers("https://mirror.example/cfx/noarch/a.conda")[1] == {}  # a prefix ends at '/'
    assert auth_headers("https://other.example/cf/a.conda")[1] == {}
    assert shown("https://mirror.example/cf") == "https://alice:***@mirror.example/cf"
    assert "s3cret" not in repr(channels.credentials_for("https://mirror.example/cf"))
    # a URL that still carries them (from elsewhere): stripped from the request, sent as a header
    url, headers = auth_headers("http://bob:pw@h:9/c/x.conda")
    assert (url, headers) == ("http://h:9/c/x.conda", {"Authorization": "Basic Ym9iOnB3"})


def test_mirrors_from_the_environment_are_stripped_too() -> None:
    mirrors = parse_mirrors((), "conda-forge=https://alice:s3cret@mirror.example/cf")
    assert mirrors == {"conda-forge": "https://mirror.example/cf"}
    assert auth_headers("https://mirror.example/cf/x")[1]


@pytest.mark.parametrize("bad", ["https://alice:s3cret@mirror.example/cf", "conda-forge=relative:s3cret@x"])
def test_a_bad_mirror_error_never_shows_the_password(bad: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_mirrors([bad])
    assert "s3cret" not in info.value.one_line()


def test_shim_gets_canonical_channel_mirror_and_credentials() -> None:
    mirrors = parse_mirrors(["conda-forge=https://alice:s3cret@mirror.example/cf"])
    routes = shim_mirrors(["conda-forge", "nodefaults", "bioconda"], mirrors)
    assert routes == [{"channel": CF, "mirror": "https://mirror.example/cf", "username": "alice", "password": "s3cret"}]
    assert shim_mirrors(["conda-forge"], {}) == []
    assert canonical_channels(["conda-forge", "nodefaults"]) == (CF,)
    assert apply_mirrors(["conda-forge"], mirrors) == ("https://mirror.example/cf",)


def test_shim_routes_canonical_channels_and_maps_answers_back() -> None:
    routed = route(
        [CF, "file:///tmp/vpkgs"],
        [{"channel": CF + "/", "mirror": "http://127.0.0.1:8/cf/", "username": "u", "password": "p"}],
    )
    assert routed.channels == ("http://127.0.0.1:8/cf", "file:///tmp/vpkgs")
    assert dict(routed.auth) == {"http://127.0.0.1:8/cf": ("u", "p")}
    back = routed.canonical
    assert canonical_url("http://127.0.0.1:8/cf/linux-64/x-1-0.conda", back) == CF + "/linux-64/x-1-0.conda"
    assert canonical_url("http://127.0.0.1:8/cf", back) == CF
    assert canonical_url("http://127.0.0.1:8/cfx/a.conda", back) == "http://127.0.0.1:8/cfx/a.conda"
    assert canonical_url("file:///tmp/vpkgs/noarch/v.conda", back) == "file:///tmp/vpkgs/noarch/v.conda"


def _project(tmp_path: Path) -> SimpleNamespace:
    (tmp_path / "lockfiles").mkdir(exist_ok=True)
    (tmp_path / "environment-t.yml").write_text("channels: [conda-forge]\ndependencies: [python]\n")
    (tmp_path / "lockfiles" / "t.virtual-packages.yml").write_text("subdirs: {}\n")
    return SimpleNamespace(
        root=tmp_path,
        cache_dir=tmp_path / ".envspec-cache",
        env_file=lambda t: tmp_path / f"environment-{t}.yml",
        vpkg_file=lambda t: tmp_path / "lockfiles" / f"{t}.virtual-packages.yml",
        conda_lock_file=lambda t: tmp_path / "lockfiles" / f"{t}.conda-lock.yml",
        explicit_file=lambda t: tmp_path / "lockfiles" / f"{t}.lock",
    )


def test_the_input_hash_leaves_mirrors_out(tmp_path: Path) -> None:
    project = _project(tmp_path)
    target = SimpleNamespace(name="t", subdir="linux-64", channels=("conda-forge", "nodefaults"), dependencies=())
    hashes = set()
    for mirrors in ({}, {"conda-forge": "file:///a"}, parse_mirrors(["conda-forge=https://u:pw@b.example/cf"])):
        (job,) = make_jobs(project, [target], mirrors)
        assert job.channels == (CF,)
        hashes.add(job.input.digest())
    assert len(hashes) == 1
    other = SimpleNamespace(name="t", subdir="linux-64", channels=("bioconda",), dependencies=())
    (job,) = make_jobs(project, [other], {})
    assert job.input.digest() not in hashes  # channels themselves still are inputs


# ------------------------------------------------------------------------------- pairs


def _pair(input_hash: str, urls: list[str]) -> tuple[str, str]:
    explicit_text = f"# envspec-target: t\n# envspec-input-hash: {input_hash}\n@EXPLICIT\n" + "".join(
        f"{u}#{'0' * 32}\n" for u in urls
    )
    packages = "".join(
        f"- name: {u.rsplit('/', 1)[-1].split('-')[0]}\n  version: '1'\n  manager: conda\n  platform: linux-64\n"
        f"  url: {u}\n  hash:\n    md5: {'0' * 32}\n"
        for u in urls
    )
    conda_lock_text = (
        f"version: 1\nmetadata:\n  custom_metadata:\n    envspec_input_hash: '{input_hash}'\npackage:\n{packages}"
    )
    return explicit_text, conda_lock_text


H1, H2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
A = f"{CF}/noarch/a-1-0.conda"
B1, B2 = f"{CF}/noarch/b-1-0.conda", f"{CF}/noarch/b-2-0.conda"


def test_check_pair_accepts_one_run_and_refuses_a_torn_pair() -> None:
    ex, cl = _pair(H1, [A, B1])
    assert commit.pair_problem(ex, cl) is None
    ex2, cl2 = _pair(H2, [A, B1])
    assert "input hash" in (commit.pair_problem(ex, cl2) or "")
    # the same input hash (an --update run), different packages: still torn
    _, cl3 = _pair(H1, [A, B2])
    assert "differ" in (commit.pair_problem(ex, cl3) or "")
    with pytest.raises(commit.TornLockfiles) as info:
        commit.check_pair(ex, cl3, explicit_source="lockfiles/t.lock", conda_lock_source="lockfiles/t.conda-lock.yml")
    assert info.value.exit_code == 3 and "envspec lock --target t" in (info.value.tip or "")
    assert ex2 != ex


# ------------------------------------------------------------------------------- the commit


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception`` handlers)."""


def _steps(n_files: int) -> list[str]:
    return ["write-1", "staged", "journal", *(f"rename-{i}" for i in range(1, n_files + 1)), "renamed", None]  # type: ignore[list-item]


def _files(folder: Path, version: str) -> list[tuple[Path, str]]:
    return [
        (folder / f"{t}.{kind}", f"{t} {kind} {version}\n") for t in ("a", "b") for kind in ("conda-lock.yml", "lock")
    ]


@pytest.mark.parametrize("step", _steps(4))
def test_a_commit_killed_at_any_instant_is_all_old_or_all_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str | None
) -> None:
    folder = tmp_path / "lockfiles"
    folder.mkdir()
    for path, text in _files(folder, "old"):
        path.write_text(text)
    real_write = commit._write_all_synced
    writes = []

    def write(files: list[tuple[Path, bytes, int]]) -> None:  # one by one: a kill may land between two
        for item in files:
            writes.append(item[0])
            if step == "write-1" and len(writes) == 2:
                raise Killed
            real_write([item])

    def pause(at: str) -> None:
        if at == step:
            raise Killed

    monkeypatch.setattr(commit, "_write_all_synced", write)
    monkeypatch.setattr(commit, "_pause", pause)
    with contextlib.suppress(Killed):
        commit.commit(folder, _files(folder, "new"))
    monkeypatch.undo()
    committed = commit.pending(folder) or step in {"renamed", None}
    commit.recover(folder)  # what the next run (or lock --check) does first
    version = "new" if committed else "old"
    assert {p.name: p.read_text() for p, _ in _files(folder, "")} == {p.name: t for p, t in _files(folder, version)}
    assert not commit.pending(folder)
    if step in {"journal", "rename-1", "rename-2", "rename-3", "rename-4", "renamed", None}:
        assert version == "new"
    elif step in {"write-1", "staged"}:
        assert version == "old"  # leftover temps, if any, are deleted by the next run
        assert commit.recover(folder) == []


def test_os_replace_failing_after_the_first_rename_is_completed_by_recover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    folder = tmp_path / "lockfiles"
    folder.mkdir()
    for path, text in _files(folder, "old"):
        path.write_text(text)
    real = os.replace
    calls = []

    def replace(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 3:  # journal, first lockfile, then the kill
            raise Killed
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Killed):
        commit.commit(folder, _files(folder, "new"))
    monkeypatch.undo()
    contents = {p.name: p.read_text() for p, _ in _files(folder, "")}
    assert "a conda-lock.yml new\n" in contents.values() and "a lock old\n" in contents.values()  # torn now
    assert commit.pending(folder)
    assert commit.recover(folder) == ["a.lock", "b.conda-lock.yml", "b.lock"]
    assert {p.name: p.read_text() for p, _ in _files(folder, "")} == {p.name: t for p, t in _files(folder, "new")}
    assert commit.staged_temps(folder) == []


def test_a_foreign_journal_is_dropped(tmp_path: Path) -> None:
    (tmp_path / commit.JOURNAL_NAME).write_text("not json")
    assert commit.recover(tmp_path) == []
    assert not commit.pending(tmp_path)
    (tmp_path / commit.JOURNAL_NAME).write_text(json.dumps({"version": 99, "renames": []}))
    assert commit.recover(tmp_path) == []


def test_the_staged_files_are_made_durable_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every temp is written first, then all are fsynced at once (a journaling file system flushes
    once for them all); the call returns only when each is durable, each with its mode."""
    import os
    import threading

    files = [(tmp_path / f"f{n}", f"text {n}".encode(), 0o640 if n else 0o600) for n in range(3)]
    # passes only when three fsyncs are under way at once (the time-out only ends a hang: one at a time)
    together = threading.Barrier(3, timeout=600)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        together.wait()
        real_fsync(fd)
        synced.append(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    commit._write_all_synced(files)
    monkeypatch.undo()
    assert len(synced) == 3
    assert [p.read_bytes() for p, _, _ in files] == [d for _, d, _ in files]
    if os.name == "posix":  # (Windows modes are read-only or not)
        assert [p.stat().st_mode & 0o777 for p, _, _ in files] == [m for _, _, m in files]
