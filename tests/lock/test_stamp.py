"""The nothing-changed fast path of `envspec lock`: a stamp of every byte the answer depends on."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from envspec.cli.main import main
from envspec.lock import run as lock_run
from envspec.lock import stamp

pytestmark = pytest.mark.integration  # the first lock runs conda-lock

REPO = Path(__file__).resolve().parents[2]


def envspec(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def locked(local_channel: Path, tmp_path: Path) -> tuple[Path, str]:
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", project / "envspec.yml")
    assert envspec(project, "render")[0] == 0
    mirror = f"conda-forge={local_channel.as_uri()}"
    code, _, err = envspec(project, "lock", "--target", "osx-64", "--mirror", mirror)
    assert code == 0, err
    return project, mirror


def test_a_second_run_answers_from_the_stamp_and_any_changed_byte_misses_it(
    locked: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, mirror = locked
    calls: list[str] = []

    def no_lock(*args: object, **kwargs: object) -> None:
        calls.append("lock")
        raise AssertionError("the stage ran")

    monkeypatch.setattr(lock_run, "lock", no_lock)
    code, out, err = envspec(project, "lock", "--target", "osx-64", "--mirror", mirror)
    assert (code, calls) == (0, [])  # answered from the stamp: the lock stage never ran
    assert "osx-64: up to date (inputs unchanged)" in err and "osx-64" in out and "up to date" in out
    assert envspec(project, "lock", "--target", "osx-64", "--mirror", mirror, "--check")[0] == 0
    assert calls == []
    # another selection, another mirror, a changed lockfile, spec or environment file: the full path
    for change in (
        lambda: envspec(project, "lock", "--mirror", mirror),
        lambda: envspec(project, "lock", "--target", "osx-64"),
    ):
        calls.clear()
        with pytest.raises(AssertionError, match="the stage ran"):
            change()
        assert calls == ["lock"]
    for path in (
        project / "lockfiles" / "osx-64.conda-lock.yml",
        project / "envspec.yml",
        project / "environment-osx-64.yml",
    ):
        saved = path.read_bytes()
        path.write_bytes(saved + b"\n")
        calls.clear()
        with pytest.raises(AssertionError, match="the stage ran"):
            envspec(project, "lock", "--target", "osx-64", "--mirror", mirror)
        assert calls == ["lock"], path
        path.write_bytes(saved)


def test_the_digest_covers_every_input(locked: tuple[Path, str]) -> None:
    project, _ = locked
    spec = project / "envspec.yml"
    base = stamp.digest(project, spec, ["osx-64"], {})
    assert base is not None and base == stamp.digest(project, spec, ["osx-64", "osx-64"], {})
    assert base != stamp.digest(project, spec, ["osx-64", "win-cuda"], {})
    assert base != stamp.digest(project, spec, ["osx-64"], {"conda-forge": "file:///m"})
    (project / "lockfiles" / ".envspec-lock.commit").write_text("{}")  # a pending commit journal
    assert base != stamp.digest(project, spec, ["osx-64"], {})
    assert stamp.digest(project, project / "missing.yml", [], {}) is None
    assert stamp.fresh(project / ".envspec-cache", None) is None
    (project / ".envspec-cache" / stamp.STAMP_FILE).write_text("not json")
    assert stamp.fresh(project / ".envspec-cache", base) is None  # a damaged stamp is a miss
