"""`envspec install --json`: a real install (the local channel, py-rattler) in a child process, whose
stdout is exactly one document valid against the shipped schema; an error is one too."""

from __future__ import annotations

from pathlib import Path

import pytest
from jsondocs import only_document
from test_install_integration import cache, install, local_channel, locked

from envspec.errors import ExitCode
from envspec.install.plan import parse_lock

pytestmark = pytest.mark.integration
__all__ = ["cache", "local_channel", "locked"]  # fixtures, imported


def test_install_json_is_the_one_thing_on_stdout(locked: Path, tmp_path: Path, cache: Path) -> None:
    prefix = tmp_path / "env"
    proc = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = only_document(proc.stdout, "install")
    lock = parse_lock((locked / "lockfiles" / "linux-cuda.lock").read_text(), "x")
    assert doc["target"] == "linux-cuda" and doc["prefix"] == str(prefix) and doc["tool"] == "rattler"
    assert doc["packages"] == len(lock.entries) == doc["downloaded"] + doc["cache_hits"]
    assert doc["lockfile"] == "lockfiles/linux-cuda.lock" and not doc["replaced_existing"]
    assert "hashes: " in proc.stderr and "by md5" not in proc.stderr  # every package has a sha256: no "rest"
    again = install(locked, "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache), "--json", "--replace")
    assert again.returncode == 0, again.stderr
    doc = only_document(again.stdout, "install")
    assert doc["replaced_existing"] and doc["cache_hits"] == doc["packages"] and doc["downloaded"] == 0


def test_install_json_error_has_the_exit_code(locked: Path, tmp_path: Path) -> None:
    proc = install(locked, "osx-64", "--prefix", str(tmp_path / "env"), "--frozen", "--json")
    assert proc.returncode == ExitCode.CHECK_FAILED, proc.stderr
    doc = only_document(proc.stdout, "error")
    assert doc["exit_code"] == ExitCode.CHECK_FAILED and "--frozen" in doc["error"] and doc["command"] == "install"
