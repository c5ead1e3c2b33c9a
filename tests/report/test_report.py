"""Report: reading smoke results and lockfiles, the pure table model, HTML and markdown rendering."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import markupsafe
import pytest
from smokefixtures import (
    make_png,
    smoke_json,
    write_conda_lock,
    write_result,
    write_standard_results,
)

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.project import Project
from envspec.report import build as report
from envspec.report import inputs, matrix, pages
from envspec.spec.load import ResolvedTarget, load_spec


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    write_standard_results(folder)
    return folder


def _model(project_copy: Path, results: Path) -> matrix.ResultTable:
    project = Project(project_copy)
    targets = load_spec(project.spec_path).resolve_all()
    locks = {t.name: inputs.read_lock(project, t) for t in targets}
    return matrix.build_table(targets, inputs.read_results(results), locks)


def _rows(model: matrix.ResultTable) -> dict[str, matrix.Row]:
    return {row.target: row for row in model.rows}


def test_table_model_has_every_target_with_its_status(project_copy: Path, results: Path) -> None:
    (results / "osx-64" / "smoke.json").unlink()  # osx-64: no results at all -> missing
    model = _model(project_copy, results)
    rows = _rows(model)
    assert [r.target for r in model.rows] == ["osx-arm64", "osx-64", "linux-cuda", "linux-cpu", "win-cuda"]
    assert {n: r.status for n, r in rows.items()} == {
        "osx-arm64": "pass",
        "osx-64": "missing",
        "linux-cuda": "pass",
        "linux-cpu": "missing",  # the fixture has no results for it
        "win-cuda": "fail",
    }
    assert model.counts == {"pass": 2, "missing": 2, "fail": 1}
    assert model.headline == "2/5 targets passed (2 pass, 1 fail, 2 missing)"
    assert rows["osx-64"].image is None and "no smoke results" in rows["osx-64"].reason


def test_device_used_versus_promised(project_copy: Path, results: Path) -> None:
    rows = _rows(_model(project_copy, results))
    assert (rows["linux-cuda"].device, rows["linux-cuda"].promised_device) == ("cuda", "cuda")
    assert rows["linux-cuda"].device_verdict == "promised"
    assert (rows["osx-arm64"].device, rows["osx-arm64"].promised_device) == ("cpu", "mps")
    assert rows["osx-arm64"].device_verdict == "allowed-cpu"
    assert rows["osx-64"].device_verdict == "unknown"


def test_wrong_device_without_allow_cpu(project_copy: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    write_result(results, "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cpu"), make_png(8, 8))
    rows = _rows(_model(project_copy, results))
    assert rows["linux-cuda"].device_verdict == "wrong"


def test_timings_benchmark_checks_versions(project_copy: Path, results: Path) -> None:
    rows = _rows(_model(project_copy, results))
    cuda = rows["linux-cuda"]
    assert dict(cuda.timings) == {
        "import": 2.31,
        "load": 0.42,
        "first step": 0.081,
        "median step": 0.034,
        "decode": 0.052,
        "total": 3.12,
    }
    assert cuda.it_per_s == 91.3
    assert cuda.benchmark is not None and "10.9 ms/step" in cuda.benchmark and "compiled in 52 s" in cuda.benchmark
    assert rows["osx-arm64"].it_per_s is None and rows["osx-arm64"].benchmark is None
    assert [c.name for c in rows["win-cuda"].failed_checks] == ["not_blank"]
    assert ("torch", "2.13.0") in cuda.versions and all(k != "torch_cuda" for k, _ in cuda.versions)
    assert cuda.image is not None and (cuda.image.width, cuda.image.height) == (128, 128)
    assert rows["osx-64"].status == "error" and "torch is not importable" in rows["osx-64"].reason
    assert rows["osx-64"].image is None and rows["osx-64"].image_note == "no smoke.png"
    assert dict(rows["osx-64"].timings) == {"import": 0.02}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"schema": "envspec-smoke/2", "target": "x", "verdict": "pass"}), "'envspec-smoke/2'"),
        (json.dumps({"schema": "envspec-smoke/1", "target": "win-cuda", "verdict": "maybe"}), "verdict"),
        (json.dumps({"schema": "envspec-smoke/1", "verdict": "pass", "target": 7}), "target"),
        (json.dumps({"schema": "envspec-smoke/1", "target": "win-cuda"}), "verdict"),
        (
            json.dumps({"schema": "envspec-smoke/1", "target": "win-cuda", "verdict": "pass", "timings_s": 3}),
            "timings_s",
        ),
        ("\udcff", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ],
)
def test_malformed_smoke_json_is_an_error_row_not_a_crash(
    project_copy: Path, tmp_path: Path, content: str, reason: str
) -> None:
    results = tmp_path / "r"
    folder = results / "win-cuda"
    folder.mkdir(parents=True)
    (folder / "smoke.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    row = _rows(_model(project_copy, results))["win-cuda"]
    assert row.status == "error"
    assert reason in row.reason


def test_results_under_the_wrong_folder_are_an_error(project_copy: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    write_result(results, "win-cuda", smoke_json("linux-cuda"), make_png(8, 8))
    row = _rows(_model(project_copy, results))["win-cuda"]
    assert row.status == "error" and "'linux-cuda'" in row.reason


def test_results_of_unknown_targets_are_shown_not_dropped(project_copy: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    write_result(results, "linux-rocm", smoke_json("linux-rocm"), make_png(8, 8))
    model = _model(project_copy, results)
    extra = model.rows[-1]
    assert extra.target == "linux-rocm" and not extra.in_spec and extra.status == "pass"
    assert len(model.rows) == 6


def test_bad_png_and_unsafe_image_names(project_copy: Path, tmp_path: Path) -> None:
    results = tmp_path / "r"
    write_result(results, "win-cuda", smoke_json("win-cuda"), b"GIF89a not a png")
    data = smoke_json("linux-cuda")
    data["image"]["file"] = "../../etc/passwd"
    write_result(results, "linux-cuda", data, make_png(8, 8))
    rows = _rows(_model(project_copy, results))
    assert rows["win-cuda"].image is None and "not a PNG" in rows["win-cuda"].image_note
    assert rows["linux-cuda"].image is None and "not a plain file name" in rows["linux-cuda"].image_note


def test_lockfile_summary(project_copy: Path, results: Path) -> None:
    write_conda_lock(project_copy, "linux-cuda", "linux-64", "cuda129_mkl_py312_h1234567_300")
    rows = _rows(_model(project_copy, results))
    lock = rows["linux-cuda"].lock
    assert lock.packages == 3
    assert (lock.torch_version, lock.torch_build) == ("2.9.1", "cuda129_mkl_py312_h1234567_300")
    assert rows["linux-cuda"].torch == "2.9.1 (cuda129_mkl_py312_h1234567_300)"
    assert rows["osx-64"].lock.state == "missing" and rows["osx-64"].lock.packages is None


def test_lockfile_entries_of_other_platforms_are_not_counted() -> None:
    from smokefixtures import CONDA_LOCK_V1

    text = CONDA_LOCK_V1.format(target="t", subdir="linux-64", build="cpu_generic_py312_h0_0")
    assert inputs.parse_conda_lock(text, "linux-64") == (3, "2.9.1", "cpu_generic_py312_h0_0")
    assert inputs.parse_conda_lock(text, "win-64") == (0, None, None)
    with_build = text.replace("  version: 2.9.1\n", "  version: 2.9.1\n  build: explicit_build_1\n")
    assert inputs.parse_conda_lock(with_build, "linux-64") == (3, "2.9.1", "explicit_build_1")
    with pytest.raises(ValueError, match="no 'package' list"):
        inputs.parse_conda_lock("a: 1\n", "linux-64")
    with pytest.raises(ValueError, match="not valid YAML"):
        inputs.parse_conda_lock("a: [\n", "linux-64")


def test_broken_lockfile_is_unknown_not_a_crash(project_copy: Path, results: Path) -> None:
    path = project_copy / "lockfiles" / "win-cuda.conda-lock.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("package: [\n")
    lock = _rows(_model(project_copy, results))["win-cuda"].lock
    assert lock.state == "unknown" and lock.problem is not None and "not valid YAML" in lock.problem


@pytest.mark.parametrize(
    ("url", "build"),
    [
        ("https://x/linux-64/pytorch-2.9.1-cuda129_mkl_py312_habc_300.conda", "cuda129_mkl_py312_habc_300"),
        ("https://x/osx-arm64/pytorch-2.9.1-cpu_generic_py312_h0_0.tar.bz2", "cpu_generic_py312_h0_0"),
        ("https://x/pytorch-2.9.1-b_1.conda#sha256", "b_1"),
        ("https://x/readme.txt", None),
    ],
)
def test_build_from_url(url: str, build: str | None) -> None:
    from envspec.lock.condalock import build_from_url

    assert build_from_url(url) == build


def test_freshness_comes_from_the_lock_step(project_copy: Path, results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, subdir in (("linux-cuda", "linux-64"), ("win-cuda", "win-64"), ("osx-64", "osx-64")):
        write_conda_lock(project_copy, name, subdir, "b_0")

    def is_fresh(project: Project, target: ResolvedTarget) -> bool | None:
        if target.name == "osx-64":
            raise RuntimeError("boom")
        return {"linux-cuda": True, "win-cuda": False}[target.name]

    monkeypatch.setattr(inputs, "is_fresh", is_fresh)
    rows = _rows(_model(project_copy, results))
    assert rows["linux-cuda"].lock.state == "fresh"
    assert rows["win-cuda"].lock.state == "stale"
    assert rows["osx-64"].lock.state == "unknown" and "boom" in str(rows["osx-64"].lock.problem)
    assert rows["osx-arm64"].lock.state == "missing"


def test_html_is_self_contained_and_escaped(project_copy: Path, results: Path) -> None:
    page = pages.render_html(_model(project_copy, results))
    assert "<script>" not in page and "alert('x')" not in page
    assert "image is blank &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; | a &amp; b" in page
    # no external assets: every src/href is a data: URI, no url(...) or @import in the CSS
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "@import" not in page and "url(" not in page and "http://" not in page and "https://" not in page
    assert page.count('<tr class="row ') == 5
    assert page.count("<img ") == 3  # osx-64 errored before it made an image


def test_every_input_string_is_escaped(project_copy: Path, tmp_path: Path) -> None:
    evil = "<b>x</b>\"'&"
    data = smoke_json("win-cuda", verdict="fail", failed=("not_blank",), message=evil)
    data["device_name"] = evil
    data["versions"] = {"torch": evil, evil: "1"}
    data["checks"][0]["name"] = evil
    data["checks"][0]["detail"] = evil
    data["mode"] = evil
    data["benchmark"] = {"it_per_s": 1.0, "dtype": evil, "resolution": [1, 1], "batch": 1}
    results = tmp_path / "r"
    write_result(results, "win-cuda", data, make_png(8, 8))
    write_result(results, "x<i>y", smoke_json("x<i>y"), make_png(8, 8))
    model = _model(project_copy, results)
    page = pages.render_html(model)
    assert "<b>" not in page and "<i>" not in page
    # message, device name, a version, a version's name, check name, check detail, mode, benchmark dtype
    assert page.count(str(markupsafe.escape(evil))) >= 8
    assert "x&lt;i&gt;y" in page
    md = pages.render_markdown(model)
    assert "<b>" not in md and "<i>" not in md and "&lt;b&gt;" in md


def test_markdown_table(project_copy: Path, results: Path) -> None:
    (results / "osx-64" / "smoke.json").unlink()
    md = pages.render_markdown(_model(project_copy, results), image_hint="Images: in the `envspec-report` artifact.")
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| target |"))
    table = [line for line in lines[header + 2 :] if line.startswith("|")]
    assert len(table) == 5
    # the pipe inside the message is escaped: every row has exactly the header's 8 cells
    assert all(len(re.split(r"(?<!\\)\|", line)) == len(re.split(r"(?<!\\)\|", lines[header])) for line in table)
    by_target = {re.search(r"\*\*(.+?)\*\*", line).group(1): line for line in table}  # type: ignore[union-attr]
    assert "⬜ missing" in by_target["osx-64"]
    assert "❌ fail" in by_target["win-cuda"] and "failed: not\\_blank" in by_target["win-cuda"]
    assert "CPU allowed by --allow-cpu (e.g. a hosted runner)" in by_target["osx-arm64"]
    assert "| 91.3 |" in by_target["linux-cuda"]
    assert "Images: in the `envspec-report` artifact." in md
    assert "data:image" not in md


def test_thumbnail_without_pillow_keeps_the_png_and_scales_the_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    png = make_png(512, 256)
    data, width, height = pages.thumbnail(png, max_px=128)
    assert data == png and (width, height) == (128, 64)
    small = make_png(64, 64)
    assert pages.thumbnail(small, max_px=128) == (small, 64, 64)


def test_thumbnail_with_pillow_shrinks_the_png() -> None:
    pytest.importorskip("PIL", reason="Pillow is optional; without it the PNG is embedded as is")
    data, width, height = pages.thumbnail(make_png(512, 256), max_px=128)
    assert inputs.png_size(data) == (128, 64) and (width, height) == (128, 64)


def test_github_context() -> None:
    env = {
        "GITHUB_REPOSITORY": "me/sd",
        "GITHUB_SHA": "0123456789abcdef0123",
        "GITHUB_RUN_ID": "42",
        "GITHUB_REF_NAME": "main",
        "GITHUB_SERVER_URL": "https://github.com",
    }
    assert dict(report.github_context(env)) == {
        "repository": "me/sd",
        "ref": "main",
        "commit": "0123456789ab",
        "run": "https://github.com/me/sd/actions/runs/42",
    }
    assert report.github_context({}) == []


def test_cli_writes_both_files(project_copy: Path, results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = project_copy / "out"
    code = main(["--spec", str(project_copy / "envspec.yml"), "report", str(results), "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.split() == [str(out / "report.html"), str(out / "report.md")]
    assert "2/5 targets passed" in captured.err
    assert (out / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "| target |" in (out / "report.md").read_text(encoding="utf-8")
    assert {p.name for p in out.iterdir()} == {"report.html", "report.md"}


def test_cli_missing_results_dir(project_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--spec", str(project_copy / "envspec.yml"), "report", str(project_copy / "nope")])
    assert code == ExitCode.SPEC_INVALID
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such folder" in err and "Traceback" not in err


def test_failed_render_leaves_the_old_report(
    project_copy: Path, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = project_copy / "out"
    model = _model(project_copy, results)
    report.write_report(model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*_: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(model, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no half-written pair, no temp files


def test_a_single_smoke_out_folder_is_read_too(project_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "outputs" / "smoke"  # `envspec smoke --out outputs/smoke`: no <target>/ level
    out.mkdir(parents=True)
    (out / "smoke.json").write_text(json.dumps(smoke_json("win-cuda", verdict="fail")), encoding="utf-8")
    (out / "smoke.png").write_bytes(make_png(8, 8))
    rows = _rows(_model(project_copy, out))
    assert rows["win-cuda"].status == "fail" and rows["win-cuda"].image is not None
    assert rows["linux-cuda"].status == "missing"


def test_cli_in_github_actions_names_the_artifacts(
    project_copy: Path, results: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "me/sd")
    monkeypatch.setenv("GITHUB_RUN_ID", "7")
    out = project_copy / "out"
    assert main(["--spec", str(project_copy / "envspec.yml"), "report", str(results), "--out", str(out)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "`envspec-report` artifact" in md and "`smoke-<target>` artifact" in md
    assert "https://github.com/me/sd/actions/runs/7" in md


def test_reads_a_lockfile_written_by_conda_lock(project_copy: Path, results: Path) -> None:
    """The lockfile comes from conda-lock's own writer (its v1 format on disk), not a hand-made copy."""
    from conda_lock.lockfile import write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel, LockMeta
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

    packages = [
        ("python", "3.12.11", "h9e4cc4f_0_cpython"),
        ("pytorch", "2.9.1", "cuda128_mkl_py312_h5c0a1b2_301"),
        ("cuda-version", "12.8", "h5d125a7_3"),
        ("numpy", "2.3.4", "py312h33ff503_0"),
    ]
    deps = [
        LockedDependency(
            name=name,
            version=version,
            manager="conda",
            platform="win-64",
            dependencies={},
            url=f"https://conda.anaconda.org/conda-forge/win-64/{name}-{version}-{build}.conda",
            hash=HashModel(md5="0" * 32, sha256="1" * 64),
            categories={"main"},
        )
        for name, version, build in packages
    ]
    meta = LockMeta(
        content_hash={"win-64": "abc"},
        channels=[{"url": "conda-forge", "used_env_vars": []}],
        platforms=["win-64"],
        sources=["environment-win-cuda.yml"],
    )
    path = project_copy / "lockfiles" / "win-cuda.conda-lock.yml"
    path.parent.mkdir(exist_ok=True)
    write_conda_lock_file(Lockfile(package=deps, metadata=meta), path, metadata_choices=None)
    lock = _rows(_model(project_copy, results))["win-cuda"].lock
    assert (lock.packages, lock.torch_version, lock.torch_build) == (4, "2.9.1", "cuda128_mkl_py312_h5c0a1b2_301")
