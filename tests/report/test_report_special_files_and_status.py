"""Report on hostile results (issue #11, case 7): special files never hang it, and the row's status
comes from the checks and the device, not from the ``verdict`` smoke.json claims."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from smokefixtures import make_png, smoke_json, write_result

from envspec.cli.main import main
from envspec.project import Project
from envspec.report import build as report
from envspec.report import inputs, matrix
from envspec.spec.load import load_spec

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def _rows(project_copy: Path, results: Path) -> dict[str, matrix.Row]:
    targets = load_spec(Project(project_copy).spec_path).resolve_all()
    locks = {t.name: inputs.LockReading(state="unknown") for t in targets}
    table = matrix.build_table(targets, inputs.read_results(results), locks)
    return {row.target: row for row in table.rows}


def _within(seconds: float, work: Any) -> Any:
    """``work()``'s result (or its exception), or a test failure (not a hung suite) when it blocks."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, work()))
        except BaseException as exc:  # handed to the test thread
            box.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the report blocked reading a result file"
    ok, value = box[0]
    if not ok:
        raise value
    return value


# --- special files -----------------------------------------------------------------------------


@needs_fifo
def test_a_fifo_as_smoke_json_is_an_error_row_not_a_hang(project_copy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "r" / "linux-cuda"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "smoke.json")
    rows = _within(10, lambda: _rows(project_copy, tmp_path / "r"))
    assert rows["linux-cuda"].status == "error"
    assert rows["linux-cuda"].reason == "smoke.json is not a regular file (a FIFO)"


@needs_fifo
def test_a_fifo_as_smoke_png_is_an_image_note_not_a_hang(project_copy: Path, tmp_path: Path) -> None:
    folder = write_result(tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), None)
    os.mkfifo(folder / "smoke.png")
    rows = _within(10, lambda: _rows(project_copy, tmp_path / "r"))
    assert rows["linux-cuda"].status == "pass" and rows["linux-cuda"].image is None
    assert rows["linux-cuda"].image_note == "smoke.png is not a regular file (a FIFO)"


@needs_fifo
def test_a_fifo_as_the_single_result_is_read_not_skipped(project_copy: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "smoke.json")
    found = _within(10, lambda: inputs.read_results(tmp_path))
    assert found[tmp_path.name].problem == "smoke.json is not a regular file (a FIFO)"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize("name", ["smoke.json", "smoke.png"])
def test_a_link_to_dev_zero_is_refused_without_reading_it(project_copy: Path, tmp_path: Path, name: str) -> None:
    folder = write_result(tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), None)
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to("/dev/zero")
    row = _within(10, lambda: _rows(project_copy, tmp_path / "r"))["linux-cuda"]
    problem = row.reason if name == "smoke.json" else row.image_note
    assert problem == f"{name} is a link to a file outside its results folder"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(inputs._Unreadable, match=r"^zero is not a regular file \(a character device\)$"):
        _within(10, lambda: inputs.read_capped(Path("/dev/zero"), 16, Path("/dev")))


def test_a_link_to_a_regular_file_inside_the_folder_is_followed(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", promised="cuda", device="cuda")
    folder = write_result(tmp_path / "r", "linux-cuda", data, make_png(8, 8))
    (folder / "real.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "smoke.json").unlink()
    (folder / "smoke.json").symlink_to("real.json")
    row = _rows(project_copy, tmp_path / "r")["linux-cuda"]
    assert row.status == "pass" and row.image is not None


def test_a_link_out_of_the_folder_is_refused(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", promised="cuda", device="cuda")
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(data), encoding="utf-8")
    folder = write_result(tmp_path / "r", "linux-cuda", data, None)
    (folder / "smoke.json").unlink()
    (folder / "smoke.json").symlink_to(outside)
    row = _rows(project_copy, tmp_path / "r")["linux-cuda"]
    assert (row.status, row.reason) == ("error", "smoke.json is a link to a file outside its results folder")


def test_reads_stop_one_byte_past_the_cap(project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_result(
        tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), make_png(8, 8)
    )
    size = (folder / "smoke.json").stat().st_size
    monkeypatch.setattr(inputs, "MAX_JSON_BYTES", size)  # exactly at the cap: read
    assert _rows(project_copy, tmp_path / "r")["linux-cuda"].status == "pass"
    monkeypatch.setattr(inputs, "MAX_JSON_BYTES", size - 1)
    row = _rows(project_copy, tmp_path / "r")["linux-cuda"]
    assert (row.status, row.reason) == ("error", f"smoke.json is larger than {size - 1} bytes")
    monkeypatch.setattr(inputs, "MAX_EMBED_BYTES", 10)
    monkeypatch.setattr(inputs, "MAX_JSON_BYTES", size)
    assert _rows(project_copy, tmp_path / "r")["linux-cuda"].image_note == "smoke.png is larger than 10 bytes"


# --- the verdict is judged, not trusted ----------------------------------------------------------


def _row_for(project_copy: Path, tmp_path: Path, data: dict[str, Any]) -> matrix.Row:
    write_result(tmp_path / "r", "linux-cuda", data, make_png(8, 8))
    return _rows(project_copy, tmp_path / "r")["linux-cuda"]


def test_a_pass_on_the_wrong_device_with_a_failed_check_is_a_fail(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", promised="cuda", device="cpu", failed=("not_blank",))  # verdict "pass"
    row = _row_for(project_copy, tmp_path, data)
    assert row.status == "fail" and row.device_verdict == "wrong"
    assert row.reason == (
        "smoke.json says pass, but check not_blank failed; it ran on cpu where cuda was promised and not "
        "waived by --allow-cpu"
    )


def test_a_pass_on_the_wrong_device_is_a_fail(project_copy: Path, tmp_path: Path) -> None:
    row = _row_for(project_copy, tmp_path, smoke_json("linux-cuda", promised="cuda", device="cpu"))
    assert row.status == "fail" and "where cuda was promised" in row.reason


def test_a_pass_with_a_failed_check_is_a_fail(project_copy: Path, tmp_path: Path) -> None:
    row = _row_for(
        project_copy, tmp_path, smoke_json("linux-cuda", promised="cuda", device="cuda", failed=("finite", "shape"))
    )
    assert (row.status, row.reason) == ("fail", "smoke.json says pass, but checks finite, shape failed")


def test_a_pass_that_says_nothing_is_a_fail(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", promised="cuda", device=None)
    data["checks"] = []
    row = _row_for(project_copy, tmp_path, data)
    assert row.status == "fail"
    assert row.reason == ("smoke.json says pass, but it recorded no checks; it does not say which device it ran on")


def test_cpu_with_the_promise_waived_passes(project_copy: Path, tmp_path: Path) -> None:
    row = _row_for(project_copy, tmp_path, smoke_json("linux-cuda", promised="cuda", device="cpu", allow_cpu=True))
    assert (row.status, row.device_verdict) == ("pass", "allowed-cpu")


def test_a_fail_with_clean_evidence_stays_a_fail_and_says_so(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", verdict="fail", promised="cuda", device="cuda", message="odd")
    row = _row_for(project_copy, tmp_path, data)
    assert row.status == "fail"
    assert row.reason == "odd (smoke.json says fail, although every recorded check passed on the promised device)"


def test_an_error_stays_an_error(project_copy: Path, tmp_path: Path) -> None:
    data = smoke_json("linux-cuda", verdict="error", promised="cuda", device=None, message="no torch")
    row = _row_for(project_copy, tmp_path, data)
    assert (row.status, row.reason) == ("error", "no torch")


def test_the_headline_counts_the_judged_status(project_copy: Path, tmp_path: Path) -> None:
    write_result(tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cpu"), None)
    targets = load_spec(Project(project_copy).spec_path).resolve_all()
    table = matrix.build_table(targets, inputs.read_results(tmp_path / "r"), {})
    assert table.counts.get("pass", 0) == 0 and table.counts["fail"] == 1


# --- the title says where the report was made (#10 §5) ---------------------------------------------


def test_title_is_data_driven() -> None:
    assert report.report_title({}) == "envspec report"
    assert report.report_title({"GITHUB_WORKFLOW": "verify"}) == "envspec report"  # not in Actions
    assert report.report_title({"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": "verify"}) == "envspec verify"
    assert report.report_title({"GITHUB_ACTIONS": "true"}) == "envspec report"


def test_a_local_report_is_not_titled_verify(
    project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GITHUB_ACTIONS", "GITHUB_WORKFLOW"):
        monkeypatch.delenv(name, raising=False)
    write_result(tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), None)
    out = tmp_path / "out"
    assert main(["--spec", str(project_copy / "envspec.yml"), "report", str(tmp_path / "r"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert md.startswith("## envspec report\n") and "verify" not in md
    assert "<h1>envspec report</h1>" in page and "<title>envspec report — " in page
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKFLOW", "verify")
    assert main(["--spec", str(project_copy / "envspec.yml"), "report", str(tmp_path / "r"), "--out", str(out)]) == 0
    assert (out / "report.md").read_text(encoding="utf-8").startswith("## envspec verify\n")


# --- a fresh pass (issue #21): lockfiles that are no regular file, terminal controls from artifacts ---


@needs_fifo
def test_a_fifo_as_a_lockfile_is_an_unknown_lock_not_a_hang(project_copy: Path) -> None:
    target = load_spec(Project(project_copy).spec_path).resolve("linux-cuda")
    lock = Project(project_copy).conda_lock_file("linux-cuda")
    lock.parent.mkdir(exist_ok=True)
    os.mkfifo(lock)
    summary = _within(10, lambda: inputs.read_lock(Project(project_copy), target, {}))
    assert summary.state == "unknown"
    assert summary.problem is not None and "not a regular file (a FIFO)" in summary.problem


HOSTILE = "ev\x1b[2Jil\x9b31m\u202egpj.exe\u2028"


def test_terminal_controls_from_results_are_escaped_everywhere(
    project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = smoke_json("linux-cuda", promised="cuda", device="cuda", message=f"boom {HOSTILE}", verdict="fail")
    data["checks"].append({"name": f"check {HOSTILE}", "passed": False, "detail": HOSTILE})
    data["device_name"] = f"GPU {HOSTILE}"
    write_result(tmp_path / "r", "linux-cuda", data, None)
    write_result(tmp_path / "r", HOSTILE, smoke_json(HOSTILE), None)  # a results folder of that name
    out = tmp_path / "out"
    assert main(["--spec", str(project_copy / "envspec.yml"), "report", str(tmp_path / "r"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    for text in (err, md, page):
        assert not any(c in text for c in "\x1b\x9b\u202e\u2028"), text
    assert "ev\\x1b[2Jil" in err
    assert "boom ev\\\\x1b\\[2Jil\\\\x9b31m\\\\u202egpj.exe" in md  # escaped, then markdown-escaped
    assert "boom ev\\x1b[2Jil\\x9b31m\\u202egpj.exe\\u2028" in page


def test_a_results_folder_linked_out_is_not_read(project_copy: Path, tmp_path: Path) -> None:
    elsewhere = write_result(tmp_path / "elsewhere", "linux-cuda", smoke_json("linux-cuda"), make_png(8, 8))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "linux-cuda").symlink_to(elsewhere, target_is_directory=True)
    row = _rows(project_copy, tmp_path / "r")["linux-cuda"]
    assert (row.status, row.reason) == ("error", "smoke.json is a link to a file outside its results folder")


def test_a_secret_a_result_quotes_never_reaches_the_report(
    project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "S3cr3t-9x7w"
    message = f"401 for https://ci:{secret}@mirror.example/simple and https://h/t/{secret}/x (Bearer {secret}Zz)"
    data = smoke_json("linux-cuda", promised="cuda", device="cuda", message=message, verdict="error")
    data["checks"].append({"name": "load", "passed": False, "detail": f"?token={secret}"})
    write_result(tmp_path / "r", "linux-cuda", data, make_png(8, 8))
    out = tmp_path / "out"
    assert main(["--spec", str(project_copy / "envspec.yml"), "report", str(tmp_path / "r"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    page = (out / "report.html").read_text(encoding="utf-8")
    for text in (captured.out + captured.err, (out / "report.md").read_text(encoding="utf-8"), page):
        assert secret not in text
    assert "https://ci:***@mirror.example/simple" in page and "<img" in page  # the image is still there
