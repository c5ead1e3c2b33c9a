"""A hostile Hub (or mirror at HF_ENDPOINT), through the real huggingface_hub (issue #21).

Families: paths from a server (an ``X-Linked-Etag`` / ``X-Repo-Commit`` huggingface_hub would use as
a cache path), reads without end (an endless CDN body, a CDN that ignores Range and stalls,
``Retry-After: 100000``), one-line errors for a malformed listing, terminal control characters in
file names, and user-info in HF_ENDPOINT. Each runs ``envspec models`` as a child process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.errors import ExitCode

from .conftest import REPO_ID, Project, entry_yaml
from .test_models_hub import FP16, UNET_DEST, UNET_FP16, error_line, setup_repo

pytestmark = pytest.mark.integration


def _locked(project: Project, unet_size: int = 1 << 20) -> str:
    setup_repo(project, unet_size=unet_size, **FP16)
    result = project.run("lock")
    assert result.code == 0, result.text
    return project.hub.sha256(REPO_ID, UNET_FP16)


def _tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize(
    "etag",
    ['"../../../../../../victim"', "../../../victim", "/tmp/envspec-victim", 'W/"..\\\\..\\\\victim"', '"abc"'],
)
def test_an_etag_that_is_not_a_hash_never_becomes_a_cache_path(project: Project, etag: str) -> None:
    oid = _locked(project)
    outside = project.root.parent
    before = _tree(outside / "hf-home") - {p for p in _tree(outside / "hf-home") if "/blobs/" in p}
    project.hub.faults.linked_etag[oid] = etag
    result = project.run("pull")
    line = error_line(result)
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "ETag" in line and "not a hash" in line
    assert not (outside / "victim").exists() and not Path("/tmp/envspec-victim").exists()
    assert not any("victim" in p for p in _tree(outside))
    assert before <= _tree(outside / "hf-home")


def test_a_commit_header_that_is_not_a_commit_is_refused(project: Project) -> None:
    _locked(project)
    project.hub.faults.repo_commit = "../../../../../../../../../../../../../x"  # 40 characters? no matter
    result = project.run("pull")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "not a 40-hex commit id" in error_line(result)
    assert not any(p.endswith("/x") or p == "x" for p in _tree(project.root.parent))


def test_an_endless_cdn_body_stops_at_the_locked_size(project: Project) -> None:
    oid = _locked(project)
    project.hub.faults.endless.add(oid)
    result = project.run("pull")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "more than the 524288 bytes the lockfile records" in error_line(result)
    cdn = project.hub.requests("cdn", "GET")
    assert sum(e.sent for e in cdn) < 64 << 20  # the client hung up long before the server's own bound
    assert not (project.root / "models/tiny" / UNET_DEST).exists()


def test_a_gzip_bomb_stops_at_the_locked_size_after_decoding(project: Project) -> None:
    oid = _locked(project)
    project.hub.faults.gzip_bomb.add(oid)
    result = project.run("pull")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "after decoding its Content-Encoding" in error_line(result)
    assert not (project.root / "models/tiny" / UNET_DEST).exists()
    blobs = project.hf_home / "hub"
    assert sum(p.stat().st_size for p in blobs.rglob("*") if p.is_file()) < 64 << 20


@pytest.mark.slow
def test_a_cdn_ignoring_range_and_stalling_is_given_up_after_ENVSPEC_HUB_RETRIES_resumes(project: Project) -> None:
    # Half the fp16 weights (12 MiB) is more than huggingface_hub's 10 MiB read: each attempt gets
    # data, which resets huggingface_hub's own retry count, so without envspec's bound it never ends.
    # Each try stalls for a window (1 s) and huggingface_hub waits 1 s before the next: 1 retry (a Range
    # request answered 200), not the default 5 (test_models_hub_units.py), keeps it short.
    oid = _locked(project, unet_size=48 << 20)
    project.hub.faults.norange_stall.add(oid)
    result = project.run("pull", HF_HUB_DOWNLOAD_TIMEOUT="1", ENVSPEC_HUB_RETRIES="1")
    assert result.code == ExitCode.CHANNEL_UNREACHABLE, result.text
    assert "stalled 2 times" in error_line(result), result.err  # the first try and 1 retry


def test_retry_after_100000_is_not_slept_on(project: Project) -> None:
    _locked(project)
    project.hub.faults.retry_after = "100000"
    result = project.run("pull")
    assert result.code == ExitCode.CHANNEL_UNREACHABLE, result.text
    assert "retry after 100000 s" in error_line(result)


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"size": "12abc"}, "no valid size"),
        ({"size": -5}, "no valid size"),
        ({"size": True}, "no valid size"),
        ({"lfs": {"sha256": "../../x"}}, "no valid hash"),
        ({"lfs": {"sha256": 12}}, "no valid hash"),
        ({"lfs": {"size": 1e300}}, "no valid size"),
        ({"blobId": None}, "no valid hash"),
    ],
)
def test_a_malformed_listing_is_one_line(project: Project, patch: dict[str, object], words: str) -> None:
    setup_repo(project, unet_size=1 << 20, **FP16)
    path = "unet/config.json" if "blobId" in patch else UNET_FP16
    if "lfs" not in patch and "blobId" not in patch:
        path = "model_index.json"
    project.hub.faults.listing[path] = patch
    result = project.run("lock")
    line = error_line(result)
    assert result.code == ExitCode.TOOL_FAILED, result.text
    assert words in line, line
    assert not project.lockfile.exists()


@pytest.mark.parametrize("evil", ["unet/\x9b31mred.json", "unet/\u202egpj.json", "unet/a\x1b[2J.json", "unet/\u2028x"])
def test_file_names_with_terminal_controls_are_refused_escaped(project: Project, evil: str) -> None:
    files = {"model_index.json": b"{}", "unet/config.json": b"{}", evil: b"{}"}
    project.hub.commit(REPO_ID, files)
    project.write_spec(entry_yaml(include="[unet]"))
    result = project.run("lock")
    assert result.code == ExitCode.SPEC_INVALID, result.text
    line = error_line(result)
    assert "unsafe file name" in line
    for c in ("\x9b", "\x1b", "\u202e", "\u2028"):
        assert c not in result.out + result.err
    assert not project.lockfile.exists()


def test_user_info_in_hf_endpoint_is_never_printed(project: Project) -> None:
    setup_repo(project)
    closed = "http://alice:s3cr3t-pw@127.0.0.1:9/"  # port 9 (discard): refused at once
    result = project.run("lock", HF_ENDPOINT=closed)
    assert result.code == ExitCode.CHANNEL_UNREACHABLE, result.text
    assert "s3cr3t-pw" not in result.out + result.err
    assert "127.0.0.1:9" in error_line(result)


def test_a_non_utf8_dest_is_printed_escaped_to_a_strict_stdout(project: Project) -> None:
    setup_repo(project, unet_size=1 << 16, **FP16)
    assert project.run("lock").code == 0
    dest = project.root.parent / "out-\udcff"  # the bytes b"out-\xff" on argv
    result = project.run("pull", "--dest", str(dest), PYTHONIOENCODING="utf-8:strict", LC_ALL="C.UTF-8")
    assert result.code == 0, result.text
    assert "Traceback" not in result.err
    assert "out-\\udcff" in result.out
    assert (dest / "tiny" / "model_index.json").is_file()


def test_a_hub_advertising_xet_is_pulled_over_guarded_http(project: Project) -> None:
    # hf_xet (installed with huggingface_hub) would fetch the file from the CAS server the Hub names,
    # outside envspec's HTTP client: no stall guard, no size cap, the token sent to another origin.
    # Here the CAS server trickles forever; envspec's pull never asks for a Xet token and takes the
    # file over the guarded HTTP path instead.
    oid = _locked(project)
    project.hub.faults.xet.add(oid)
    result = project.run("pull")  # over Xet it would hang on the trickle until the hang guard
    assert result.code == 0, result.text
    assert project.hub.requests(contains="xet") == []
    assert project.hub.requests("cdn", "GET", contains=oid)  # the file came over HTTP
    placed = project.root / "models/tiny" / UNET_DEST
    assert placed.read_bytes() == project.hub.blob(REPO_ID, oid).read_bytes()


def test_an_endless_listing_stops_at_the_answer_cap(project: Project) -> None:
    # only a file's own body may be as long as the lockfile says; a listing (or an error, a redirect)
    # is capped, so a hostile HF_ENDPOINT cannot fill memory while `models lock` reads its answer
    setup_repo(project, unet_size=1 << 16, **FP16)
    project.hub.faults.endless_api = True
    result = project.run("lock")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "with more than 32 MiB; stopped" in error_line(result)
    sent = sum(e.sent for e in project.hub.requests("hub", "GET", "/api/models/"))
    assert sent < 128 << 20  # the client hung up long before the server's own bound
    assert not project.lockfile.exists()


def test_a_token_is_not_sent_to_the_cdn_when_the_hub_advertises_xet(project: Project) -> None:
    # huggingface_hub drops the token for a CDN only when it plans a plain download; with Xet
    # advertised (and off for envspec) it asks /resolve/ again and follows the redirect itself
    token = "hf_" + "Xet9" * 8
    project.hub.create(REPO_ID, gated=True)
    project.hub.granted.add(token)
    oid = _locked(project)
    project.hub.faults.xet.add(oid)
    result = project.run("pull", HF_TOKEN=token)
    assert result.code == 0, result.text
    assert project.hub.requests("cdn", "GET", contains=oid)
    assert all(r.authorization is None for r in project.hub.requests("cdn")), "token sent to the CDN"
    assert any(r.authorization == f"Bearer {token}" for r in project.hub.requests("hub", contains="/resolve/"))


def test_a_gzip_bomb_listing_stops_at_the_answer_cap_after_inflating(project: Project) -> None:
    setup_repo(project, unet_size=1 << 16, **FP16)
    project.hub.faults.gzip_listing = True  # 64 KiB on the wire, 64 MiB inflated: valid JSON all along
    result = project.run("lock")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "with more than 32 MiB; stopped" in error_line(result)
    assert not project.lockfile.exists()
    project.hub.faults.gzip_listing = False
    assert project.run("lock").code == 0  # a plain (or plainly gzipped) listing is read as before
