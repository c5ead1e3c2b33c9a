"""A lockfile solved against the tests' synthetic channel is recognisable; one from real records is not marked.

Every record of the synthetic channel (tests/channel_factory.py) carries the licence
``TEST_CHANNEL_LICENSE``; the conda shim reports a solution that holds one, and ``envspec lock``
writes ``# envspec-solved-from: test-channel`` (with a warning line) into both lockfiles and warns,
as ``lock --check`` does. Real records carry no such licence, so locking them through any mirror
gives the same bytes as before: the mark is content, not transport.
``tests/lock/test_committed_lockfiles.py`` refuses a committed lockfile with the mark (and any
package that is not a vendored real record).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import shutil
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from envspec.cli.main import main
from envspec.lock import explicit
from envspec.lock.conda_lock_job import synthetic_channel_packages
from envspec.lock.conda_shim import REPORT_ENV, TEST_CHANNEL_LICENSE, TEST_CHANNEL_REPORT_KEY, _note_test_channel
from envspec.project import Project
from envspec.report.inputs import TEST_CHANNEL_TEXT, read_lock
from envspec.spec.load import load_spec

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_SPEC = REPO / "tests" / "data" / "synthetic" / "envspec.yml"
REAL = REPO / "tests" / "data" / "conda-forge"
MARK = f"# {explicit.SOLVED_FROM_KEY}: {explicit.TEST_CHANNEL}"


def envspec(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


def record(name: str, license: str | None) -> Any:
    return SimpleNamespace(name=SimpleNamespace(normalized=name), license=license)


# --- unit: the shim's note, its reader, the header -------------------------------------------------


def test_the_shim_notes_synthetic_records_in_its_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    records = [record("pytorch", TEST_CHANNEL_LICENSE), record("python", TEST_CHANNEL_LICENSE), record("x", "MIT")]
    _note_test_channel(records, {REPORT_ENV: str(report)})
    assert json.loads(report.read_text()) == {TEST_CHANNEL_REPORT_KEY: ["python", "pytorch"]}
    assert synthetic_channel_packages(report) == ["python", "pytorch"]


def test_real_records_leave_no_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    _note_test_channel([record("pytorch", "BSD-3-Clause"), record("tzdata", None)], {REPORT_ENV: str(report)})
    assert not report.exists()
    assert synthetic_channel_packages(report) == []


@pytest.mark.parametrize(
    "text", ["", "not json", "[1, 2]", '{"envspec_kind": "unsatisfiable"}', '{"envspec_test_channel": 3}']
)
def test_a_report_without_the_note_marks_nothing(tmp_path: Path, text: str) -> None:
    (tmp_path / "r.json").write_text(text)
    assert synthetic_channel_packages(tmp_path / "r.json") == []


def test_the_note_is_a_header_field_of_the_explicit_file() -> None:
    args: dict[str, Any] = {
        "target": "t",
        "subdir": "linux-64",
        "input_hash": "sha256:0",
        "sources": ["e"],
        "channels": ["c"],
    }
    plain = explicit.render("@EXPLICIT\n", explicit.Header(**args))
    marked = explicit.render(
        "@EXPLICIT\n", explicit.Header(**args), explicit.test_channel_note([f"p{i}" for i in range(7)])
    )
    assert explicit.SOLVED_FROM_KEY not in explicit.header_fields(plain)
    assert explicit.header_fields(marked)[explicit.SOLVED_FROM_KEY] == explicit.TEST_CHANNEL
    assert "p0, p1, p2, p3, p4 and 2 more" in marked and "never commit" in marked
    assert marked.replace(explicit.test_channel_note([f"p{i}" for i in range(7)]), "") == plain


# --- integration: both directions, through the real locker -----------------------------------------


def _project(root: Path, spec_text: str) -> Path:
    root.mkdir(parents=True)
    (root / "envspec.yml").write_text(spec_text, encoding="utf-8")
    code, _, err = envspec(root, "render")
    assert code == 0, err
    return root


@pytest.mark.integration
def test_a_lock_against_the_synthetic_channel_is_marked_and_check_says_so(local_channel: Path, tmp_path: Path) -> None:
    project = _project(tmp_path / "proj", SYNTHETIC_SPEC.read_text(encoding="utf-8"))
    code, _, err = envspec(project, "lock", "--target", "osx-64", "--mirror", f"conda-forge={local_channel.as_uri()}")
    assert code == 0, err[-2000:]
    assert "warning: 1 lockfile(s) here were solved against the tests' synthetic channel" in err
    for name in ("osx-64.lock", "osx-64.conda-lock.yml"):
        text = (project / "lockfiles" / name).read_text(encoding="utf-8")
        assert MARK in text.splitlines()[:12], name
        assert "never commit this lockfile" in text
    # canonical URLs all the same: the mark, not the URL, tells them apart
    assert "https://conda.anaconda.org/conda-forge/osx-64/pytorch-" in (project / "lockfiles/osx-64.lock").read_text()
    code, _, err = envspec(project, "lock", "--check", "--target", "osx-64")
    assert code == 0 and f"({MARK}): never commit them" in err, err
    # the report: fresh, and says what it is
    summary = read_lock(Project(project), load_spec(project / "envspec.yml").resolve("osx-64"), {})
    assert summary.state == "fresh" and summary.problem == TEST_CHANNEL_TEXT
    (project / "results").mkdir()  # no smoke results yet: every row is "missing", the lock column still says it
    code, _, err = envspec(project, "report", str(project / "results"), "--out", str(project / "report"))
    assert (project / "report" / "report.md").is_file(), err
    md = (project / "report" / "report.md").read_text(encoding="utf-8")
    assert f"fresh<br>{TEST_CHANNEL_TEXT}" in md, md
    assert "synthetic channel: never commit it" in (project / "report" / "report.html").read_text(encoding="utf-8")


def _load_torch_only() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envspec_torch_only_mark", REAL / "torch_only.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_real_records_through_two_mirrors_give_the_same_unmarked_bytes(tmp_path: Path) -> None:
    cases = json.loads((REAL / "targets.json").read_text(encoding="utf-8"))["targets"]
    text = _load_torch_only().spec_text({"osx-64": cases["osx-64"]})
    results = []
    for mirror in ("a", "b"):
        channel = tmp_path / f"mirror-{mirror}" / "conda-forge"
        shutil.copytree(REAL, channel, ignore=shutil.ignore_patterns("*.py", "*.md", "targets.json"))
        project = _project(tmp_path / f"proj-{mirror}", text)
        code, _, err = envspec(project, "lock", "--mirror", f"conda-forge={channel.as_uri()}")
        assert code == 0, err[-2000:]
        assert "never commit" not in err
        results.append({p.name: p.read_bytes() for p in (project / "lockfiles").glob("osx-64.*")})
    assert results[0] == results[1]
    for data in results[0].values():
        assert explicit.SOLVED_FROM_KEY.encode() not in data and b"synthetic" not in data
