"""`envspec lock --json` and `--exclude-newer`, end to end: real conda-lock, the py-rattler shim, a
local channel in which some packages were published later than the rest (their records' timestamps)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsondocs import only_document

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.lock import explicit

from .conftest import FACTORY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LATER_MS = 1_775_001_600_000  # 2026-04-01: the bump packages (tqdm 4.68.0, diffusers 0.37.0) appear then
BEFORE = "2026-01-01"  # between the stack (2025-11-01) and the bump


def envspec(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def dated_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack (published 2025-11-01) plus newer tqdm and diffusers published 2026-04-01."""
    root = tmp_path_factory.mktemp("dated") / "conda-forge-local"
    subprocess.run([sys.executable, str(FACTORY), str(root)], check=True, capture_output=True)
    subprocess.run(
        [sys.executable, str(FACTORY), str(root), "--bump", "--published", str(LATER_MS)],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    dest.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", dest / "envspec.yml")
    assert envspec(dest, "render")[0] == 0
    return dest


def versions(project: Path, target: str) -> dict[str, str]:
    text = (project / "lockfiles" / f"{target}.lock").read_text(encoding="utf-8")
    return {e.name: e.version for e in explicit.entries(text)}


def test_exclude_newer_solves_as_of_the_date_records_it_and_keeps_it(project: Path, dated_channel: Path) -> None:
    mirror = ("--mirror", f"conda-forge={dated_channel.as_uri()}")
    code, out, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--exclude-newer", BEFORE, "--json")
    assert code == 0, err
    doc = only_document(out, "lock")
    (row,) = doc["targets"]
    assert row["target"] == "linux-cuda" and row["status"] == "solved" and row["packages"] > 10
    assert row["exclude_newer"] == "2026-01-01T00:00:00Z"
    assert versions(project, "linux-cuda")["tqdm"] == "4.67.1"  # 4.68.0 came later
    lock_text = (project / "lockfiles" / "linux-cuda.lock").read_text()
    assert "# envspec-exclude-newer: 2026-01-01T00:00:00Z\n" in lock_text
    assert (
        "envspec_exclude_newer: '2026-01-01T00:00:00Z'" in (project / "lockfiles/linux-cuda.conda-lock.yml").read_text()
    )
    # later runs without the flag keep the recorded cutoff: up to date, in CI's --check too
    code, out, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--check", "--json")
    assert code == 0, err
    assert only_document(out, "lock")["targets"][0]["status"] == "up to date"
    # another date is another input: re-solved
    code, _, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--exclude-newer", "2026-05-01T00:00:00+02:00")
    assert code == 0, err
    assert "# envspec-exclude-newer: 2026-04-30T22:00:00Z\n" in (project / "lockfiles/linux-cuda.lock").read_text()
    assert versions(project, "linux-cuda")["tqdm"] == "4.68.0"
    # `none` drops the cutoff
    code, _, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--exclude-newer", "2026-01-01")
    assert code == 0 and versions(project, "linux-cuda")["tqdm"] == "4.67.1", err
    code, _, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--exclude-newer", "none")
    assert code == 0, err
    assert "envspec-exclude-newer" not in (project / "lockfiles/linux-cuda.lock").read_text()
    assert versions(project, "linux-cuda")["tqdm"] == "4.68.0"


def test_a_cutoff_before_everything_is_unsatisfiable_and_says_so(project: Path, dated_channel: Path) -> None:
    mirror = ("--mirror", f"conda-forge={dated_channel.as_uri()}")
    code, out, err = envspec(project, "lock", "-t", "linux-cuda", *mirror, "--exclude-newer", "2020-01-01", "--json")
    assert code == ExitCode.UNSATISFIABLE, err
    doc = only_document(out, "error")
    assert doc["exit_code"] == ExitCode.UNSATISFIABLE and doc["command"] == "lock"
    assert "records newer than 2020-01-01T00:00:00Z excluded" in doc["error"]
    assert "later --exclude-newer" in doc["tip"]
    assert not (project / "lockfiles" / "linux-cuda.lock").exists()


def test_lock_json_outcomes_stamp_and_check(project: Path, dated_channel: Path) -> None:
    mirror = ("--mirror", f"conda-forge={dated_channel.as_uri()}")
    code, out, err = envspec(project, "lock", "-t", "osx-arm64", *mirror, "--json")
    assert code == 0, err
    assert "locking 1 target(s)" in err  # progress stays on stderr
    doc = only_document(out, "lock")
    assert [(r["target"], r["status"], r["exclude_newer"]) for r in doc["targets"]] == [("osx-arm64", "solved", None)]
    assert doc["targets"][0]["torch"].startswith("2.") and doc["solver"]
    assert doc["targets"][0]["torch"].endswith(", the MPS build")  # cpu_generic on Apple silicon
    code, out, _ = envspec(project, "lock", "-t", "osx-arm64", *mirror, "--json")  # the stamp's fast path
    assert code == 0
    assert only_document(out, "lock")["targets"][0]["status"] == "up to date"
    spec = project / "envspec.yml"
    spec.write_text(spec.read_text().replace("  - tqdm\n", "  - tqdm>=4\n"))
    assert envspec(project, "render")[0] == 0
    code, out, err = envspec(project, "lock", "-t", "osx-arm64", *mirror, "--check", "--json")
    assert code == ExitCode.CHECK_FAILED
    doc = only_document(out, "error")
    assert doc["exit_code"] == 1 and "osx-arm64" in doc["error"] and err.strip().splitlines()[-1].startswith("error: ")


def test_a_missing_top_level_package_points_at_dependencies(project: Path, dated_channel: Path) -> None:
    spec = project / "envspec.yml"
    spec.write_text(spec.read_text().replace("  - tqdm\n", "  - tqdm\n  - no-such-package>=1\n"))
    assert envspec(project, "render")[0] == 0
    code, _, err = envspec(project, "lock", "-t", "linux-cuda", "--mirror", f"conda-forge={dated_channel.as_uri()}")
    assert code == ExitCode.UNSATISFIABLE
    line = err.strip().splitlines()[-1]
    assert "`no-such-package` has no matching package" in line and "under `dependencies:`" in line
    assert "targets.linux-cuda" not in line


@pytest.fixture
def http_channel(dated_channel: Path) -> Iterator[str]:
    """The dated channel behind a real HTTP server (the shim's gateway path, not the local-file one)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dated_channel))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_exclude_newer_through_an_http_mirror(project: Path, http_channel: str) -> None:
    mirror = ("--mirror", f"conda-forge={http_channel}")
    code, _, err = envspec(project, "lock", "-t", "linux-cpu", *mirror, "--exclude-newer", BEFORE)
    assert code == 0, err
    assert versions(project, "linux-cpu")["tqdm"] == "4.67.1"
    code, _, err = envspec(project, "lock", "-t", "linux-cpu", *mirror, "--exclude-newer", "none")
    assert code == 0, err
    assert versions(project, "linux-cpu")["tqdm"] == "4.68.0"
