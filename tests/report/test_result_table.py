"""The report's pure model word for word: how a row is judged from the evidence, every reason and
note, the benchmark and image texts, the headline, the markdown table and the GitHub context.

Written against the survivors of `nox -s mutants` in report/build.py's model functions
(docs/mutation.md).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from smokefixtures import make_png

from envspec.report import inputs, matrix, pages
from envspec.report.build import github_context, report_title
from envspec.report.inputs import LockReading, SmokeBenchmark, SmokeRead, SmokeReport, parse_smoke_json, png_size
from envspec.report.matrix import ResultTable, build_row, build_table, judge, model_note
from envspec.report.pages import md_cell, render_markdown
from envspec.spec.load import ResolvedTarget

CHECKS_OK = [{"name": "finite", "passed": True}, {"name": "not-blank", "passed": True, "detail": "std 40"}]


def smoke(**kw: Any) -> SmokeReport:
    data: dict[str, Any] = {
        "schema": "envspec-smoke/1",
        "verdict": "pass",
        "message": "ok",
        "device": "cuda",
        "checks": CHECKS_OK,
    }
    data.update(kw)
    return SmokeReport.model_validate(data)


def target(name: str = "gpu", device: str = "cuda") -> ResolvedTarget:
    return ResolvedTarget(
        name=name,
        description="",
        subdir="linux-64",
        accelerator="cuda" if device == "cuda" else "cpu",  # type: ignore[arg-type]
        channels=("conda-forge",),
        dependencies=(),
        pip=(),
        virtual_packages={},
        variables={},
        runner="gpu-runner",
        runner_has_accelerator=True,
        smoke_device=device,  # type: ignore[arg-type]
        torch_spec="pytorch",
        cuda_version=None,
        env_name=f"sd-{name}",
    )


# ---- judging the evidence -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("promised", "kw", "verdict", "expected"),
    [
        ("cuda", {}, "promised", ("pass", "ok")),
        ("cuda", {"verdict": "error", "message": "boom"}, "unknown", ("error", "boom")),
        (
            "cuda",
            {"checks": [{"name": "a", "passed": False}, {"name": "b", "passed": True}]},
            "promised",
            ("fail", "smoke.json says pass, but check a failed"),
        ),
        (
            "cuda",
            {"checks": [{"name": "a", "passed": False}, {"name": "b", "passed": False}]},
            "promised",
            ("fail", "smoke.json says pass, but checks a, b failed"),
        ),
        ("cuda", {"checks": []}, "promised", ("fail", "smoke.json says pass, but it recorded no checks")),
        (
            "cuda",
            {"device": "cpu", "checks": []},
            "wrong",
            (
                "fail",
                (
                    "smoke.json says pass, but it recorded no checks; it ran on cpu where cuda was promised and not "
                    "waived by --allow-cpu"
                ),
            ),
        ),
        (
            "cuda",
            {"device": None},
            "unknown",
            ("fail", "smoke.json says pass, but it does not say which device it ran on"),
        ),
        # An unknown promise (a result of no spec target, naming none) is not held against it.
        ("?", {"device": None}, "unknown", ("pass", "ok")),
        ("?", {"device": "cpu"}, "wrong", ("pass", "ok")),
        (
            "cuda",
            {"verdict": "fail", "message": "too slow"},
            "promised",
            ("fail", "too slow (smoke.json says fail, although every recorded check passed on the promised device)"),
        ),
        (
            "cuda",
            {"verdict": "fail", "message": ""},
            "promised",
            ("fail", "smoke.json says fail, although every recorded check passed on the promised device"),
        ),
        ("cuda", {"verdict": "fail", "message": "blank", "checks": []}, "promised", ("fail", "blank")),
        ("cpu", {"device": "cpu"}, "allowed-cpu", ("pass", "ok")),
    ],
)
def test_judge(promised: str, kw: dict[str, Any], verdict: str, expected: tuple[str, str]) -> None:
    assert judge(promised, smoke(**kw), verdict) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("promised", "kw", "expected"),
    [
        ("cuda", {"device": "cuda"}, "promised"),
        ("cuda", {"device": None}, "unknown"),
        ("cuda", {"device": ""}, "unknown"),
        ("?", {"device": "cuda"}, "unknown"),
        ("cuda", {"device": "cpu", "allow_cpu": True}, "allowed-cpu"),
        ("cuda", {"device": "cpu", "allow_cpu": False}, "wrong"),
        ("mps", {"device": "cuda", "allow_cpu": True}, "wrong"),
    ],
)
def test_device_verdict(promised: str, kw: dict[str, Any], expected: str) -> None:
    assert matrix._device_verdict(promised, smoke(**kw)) == expected


# ---- one row -------------------------------------------------------------------------------------


def test_a_full_row() -> None:
    png = make_png(16, 8)
    rep = smoke(
        target="gpu",
        device_name="H100",
        dtype="float16",
        mode="model",
        model="/models/sd-v1-5",
        timings_s={"import": 1.5, "load": 2.0, "first_step": None, "median_step": 0.05, "total": 9.0},
        image={"std": 40.04, "mean": 120.06, "distinct_values": 200},
        versions={"torch": "2.13.0", "cuda": None, "python": "3.12.11"},
        benchmark={"it_per_s": 12.5, "ms_per_step": 80.04},
        checks=[{"name": "finite", "passed": True}, {"name": "shape", "passed": False, "detail": "64x64"}],
    )
    lock = LockReading(state="fresh", packages=3)
    row = build_row("gpu", target(), SmokeRead(report=rep, png=png), lock)
    assert row == matrix.Row(
        target="gpu",
        in_spec=True,
        runner="gpu-runner",
        subdir="linux-64",
        promised_device="cuda",
        status="fail",
        reason="smoke.json says pass, but check shape failed",
        device="cuda",
        device_name="H100",
        device_verdict="promised",
        dtype="float16",
        mode="model",
        model_note="model sd-v1-5",
        model_path="/models/sd-v1-5",
        lock=lock,
        timings=(("import", 1.5), ("load", 2.0), ("median step", 0.05), ("total", 9.0)),
        it_per_s=12.5,
        benchmark="80.0 ms/step",
        checks=(matrix.CheckCell("finite", True, ""), matrix.CheckCell("shape", False, "64x64")),
        versions=(("torch", "2.13.0"), ("python", "3.12.11")),
        image=matrix.ImageCell(png=png, width=16, height=8, stats="mean 120.1, std 40.0, 200 values"),
        image_note="",
    )
    assert row.failed_checks == (matrix.CheckCell("shape", False, "64x64"),)


def test_rows_without_results() -> None:
    lock = LockReading(state="missing")
    missing = build_row("gpu", target(), None, lock)
    assert (missing.status, missing.reason, missing.promised_device, missing.in_spec) == (
        "missing",
        "no smoke results (the job failed before the smoke test, or did not run)",
        "cuda",
        True,
    )
    assert (missing.runner, missing.subdir, missing.device_verdict, missing.image_note) == (
        "gpu-runner",
        "linux-64",
        "unknown",
        "no image",
    )
    assert (missing.device, missing.model_note, missing.timings, missing.checks, missing.image) == (
        None,
        None,
        (),
        (),
        None,
    )
    assert missing.model_path is None
    broken = build_row("gpu", target(), SmokeRead(problem="smoke.json is not valid JSON: x"), lock)
    assert (broken.status, broken.reason) == ("error", "smoke.json is not valid JSON: x")
    unreadable = build_row("other", None, SmokeRead(), lock)
    assert (unreadable.status, unreadable.reason, unreadable.promised_device) == ("error", "unreadable results", "?")
    assert (unreadable.in_spec, unreadable.runner, unreadable.subdir) == (False, "", "")


def test_a_result_of_no_spec_target_takes_its_promise_from_smoke_json() -> None:
    rep = smoke(target="x", promised_device="mps", device="mps")
    row = build_row("x", None, SmokeRead(report=rep), LockReading(state="unknown"))
    assert (row.promised_device, row.device_verdict, row.status) == ("mps", "promised", "pass")
    assert (row.image, row.image_note) == (None, "no smoke.png")
    assert build_row("x", None, SmokeRead(report=smoke(device="cpu")), LockReading("unknown")).promised_device == "?"


def test_results_filed_under_another_target_are_an_error() -> None:
    row = build_row("gpu", target(), SmokeRead(report=smoke(target="mac")), LockReading(state="fresh"))
    assert (row.status, row.reason) == ("error", "smoke.json is for target 'mac' but was found under 'gpu'")
    # No target in smoke.json: it is taken to be this one's.
    assert build_row("gpu", target(), SmokeRead(report=smoke()), LockReading(state="fresh")).status == "pass"


@pytest.mark.parametrize(
    ("mode", "model", "note"),
    [
        ("tiny", "anything", "tiny offline model (random weights: a shape test, not a real picture)"),
        ("model", "/m/sd-v1-5/", "model sd-v1-5"),
        ("model", None, None),
        ("model", "", None),
        ("benchmark", "sd-v1-5", "sd-v1-5"),
        ("benchmark", None, "benchmark"),
        (None, "x", None),
        ("other", "x", None),
    ],
)
def test_model_note(mode: str | None, model: str | None, note: str | None) -> None:
    assert model_note(mode, model) == note


@pytest.mark.parametrize(
    ("bench", "text"),
    [
        ({}, None),
        ({"ms_per_step": 12.345}, "12.3 ms/step"),
        ({"unet_tflops": 101.26}, "UNet 101.3 TFLOP/s"),
        ({"unet_tflops": 101.26, "peak_share": 0.1049}, "UNet 101.3 TFLOP/s, 10% of peak"),
        ({"compiled": True}, "compiled"),
        ({"compiled": True, "compile_s": 42.6}, "compiled in 43 s"),
        ({"compiled": False, "compile_s": 42.6}, "eager"),
        ({"resolution": 512, "batch": 4}, "512×512 batch 4"),
        ({"resolution": [512, 768], "batch": 1, "dtype": "float16"}, "512×768 batch 1 float16"),
        ({"resolution": 512}, None),
        ({"batch": 0, "resolution": 0}, None),
        (
            {"ms_per_step": 80, "unet_tflops": 5, "compiled": False, "resolution": 256, "batch": 0, "dtype": "bf16"},
            "80.0 ms/step, UNet 5.0 TFLOP/s, eager, 256×256 batch 0 bf16",
        ),
    ],
)
def test_benchmark_text(bench: dict[str, Any], text: str | None) -> None:
    assert matrix._benchmark_text(SmokeBenchmark.model_validate(bench)) == text


def test_image_cell() -> None:
    png = make_png(4, 6)
    plain = smoke()
    assert matrix._image_cell(SmokeRead(), plain) == (None, "no smoke.png")
    assert matrix._image_cell(SmokeRead(png_problem="smoke.png is a symlink"), plain) == (
        None,
        "smoke.png is a symlink",
    )
    assert matrix._image_cell(SmokeRead(png=b"GIF89a" + bytes(30)), plain) == (None, "smoke.png is not a PNG image")
    assert matrix._image_cell(SmokeRead(png=png), plain) == (matrix.ImageCell(png, 4, 6, ""), "")
    no_std = smoke(image={"mean": 3.0})
    assert matrix._image_cell(SmokeRead(png=png), no_std)[0] == matrix.ImageCell(png, 4, 6, "")
    no_mean = smoke(image={"std": 2.25})
    assert matrix._image_cell(SmokeRead(png=png), no_mean)[0] == matrix.ImageCell(png, 4, 6, "mean nan, std 2.2")


def test_png_size() -> None:
    png = make_png(300, 2)
    assert png_size(png) == (300, 2)
    assert png_size(png[:24]) == (300, 2)
    assert png_size(png[:23]) is None
    assert png_size(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDX" + bytes(8)) is None
    assert png_size(b"\x89PNG\r\n\x1a\x00" + png[8:]) is None


# ---- parse_smoke_json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\xff",
            "smoke.json is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
        ),
        (
            b"{",
            "smoke.json is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "smoke.json nests too deeply to be a smoke report"),
        (b"[1]", "smoke.json is not a JSON object"),
        (b"{}", "smoke.json has schema None; this envspec reads 'envspec-smoke/1'"),
        (
            b'{"schema": "envspec-smoke/2"}',
            "smoke.json has schema 'envspec-smoke/2'; this envspec reads 'envspec-smoke/1'",
        ),
        (
            b'{"schema": "envspec-smoke/1", "verdict": "maybe"}',
            "smoke.json: verdict: Input should be 'pass', 'fail' or 'error'",
        ),
        (
            b'{"schema": "envspec-smoke/1", "verdict": "pass", "checks": [{"name": "a"}]}',
            "smoke.json: checks.0.passed: Field required",
        ),
    ],
)
def test_parse_smoke_json_refusals(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_smoke_json(data)
    assert str(info.value) == message


def test_parse_smoke_json_reads_the_timings_alias_and_ignores_extra_fields() -> None:
    rep = parse_smoke_json(
        json.dumps(
            {"schema": "envspec-smoke/1", "verdict": "pass", "timings_s": {"import": 1.25}, "later": {"x": 1}}
        ).encode()
    )
    assert rep.timings_s.import_ == 1.25 and rep.verdict == "pass" and rep.checks == []


# ---- the table, its headline and the markdown ------------------------------------------------------


def test_build_table_rows_counts_and_headline() -> None:
    gpu, cpu = target("gpu"), target("cpu", device="cpu")
    results = {
        "gpu": SmokeRead(report=smoke()),
        "zz-extra": SmokeRead(report=smoke(device="cpu")),
        "aa-extra": SmokeRead(problem="bad"),
    }
    table = build_table([gpu, cpu], results, {"gpu": LockReading(state="fresh")}, [("ref", "main")], title="T")
    assert [(r.target, r.status) for r in table.rows] == [
        ("gpu", "pass"),
        ("cpu", "missing"),
        ("aa-extra", "error"),
        ("zz-extra", "pass"),
    ]
    assert table.rows[1].lock == LockReading(state="unknown")
    assert table.rows[2].lock == LockReading(state="unknown", problem="not a target of the spec")
    assert table.counts == {"pass": 2, "missing": 1, "error": 1}
    assert (table.context, table.title) == ((("ref", "main"),), "T")
    assert table.headline == "2/4 targets passed (2 pass, 1 error, 1 missing)"
    assert ResultTable(rows=()).headline == "0/0 targets passed"
    assert ResultTable(rows=(), counts={"fail": 2}).headline == "0/0 targets passed (2 fail)"
    assert ResultTable(rows=()).title == "envspec report"


def test_row_torch_text() -> None:
    row = build_row("gpu", target(), None, LockReading(state="fresh"))
    assert row.torch == ""
    with_build = dataclasses.replace(row, lock=LockReading(state="fresh", torch_version="2.9.1", torch_build="cuda129"))
    assert with_build.torch == "2.9.1 (cuda129)"
    assert dataclasses.replace(row, lock=LockReading(state="fresh", torch_version="2.9.1")).torch == "2.9.1"


def test_markdown_word_for_word() -> None:
    png = make_png(4, 4)
    rep = smoke(
        target="gpu",
        mode="tiny",
        timings_s={"load": 0.25, "total": 3.456},
        benchmark={"it_per_s": 7.25},
        checks=[{"name": "a|b", "passed": False}],
    )
    lock = LockReading(
        state="stale", packages=120, torch_version="2.9.1", torch_build="cuda129", pip_packages=("x 1", "y_z 2")
    )
    table = build_table(
        [target()],
        {
            "gpu": SmokeRead(report=rep, png=png),
            "cpu-box": SmokeRead(report=smoke(device="cpu", promised_device="cuda")),
        },
        {"gpu": lock},
        [("repository", "o/r"), ("ref", "main")],
        title="envspec verify",
    )
    assert render_markdown(table, image_hint="see the artifact") == "\n".join(
        [
            "## envspec verify",
            "",
            "0/2 targets passed (2 fail)",
            "",
            "repository: o/r · ref: main",
            "",
            "| target | result | device used / promised | lock | packages | torch | timings | it/s |",
            "| --- | --- | --- | --- | ---: | --- | --- | ---: |",
            (
                "| **gpu**<br>gpu-runner | ❌ fail<br>smoke.json says pass, but check a\\|b failed<br>failed: a\\|b"
                "<br>tiny offline model (random weights: a shape test, not a real picture) | cuda / cuda<br>the "
                "promised device | stale | 120 + 2 PyPI: x 1, y\\_z 2 | 2.9.1 (cuda129) | load 250 ms, "
                "total 3.46 s | 7.2 |"
            ),
            (
                "| **cpu-box**<br>not in envspec.yml | ❌ fail<br>smoke.json says pass, but it ran on cpu where cuda "
                "was promised and not waived by --allow-cpu | cpu / cuda<br>NOT the promised device | unknown "
                "| — | — | — | — |"
            ),
            "",
            "see the artifact",
            "",
        ]
    )
    bare = render_markdown(ResultTable(rows=()))
    assert bare == "\n".join(
        [
            "## envspec report",
            "",
            "0/0 targets passed",
            "",
            "| target | result | device used / promised | lock | packages | torch | timings | it/s |",
            "| --- | --- | --- | --- | ---: | --- | --- | ---: |",
            "",
        ]
    )


def test_markdown_of_a_missing_row() -> None:
    row = build_row("gpu", dataclasses.replace(target(), runner=""), None, LockReading(state="missing"))
    text = render_markdown(ResultTable(rows=(row,), counts={"missing": 1}))
    assert text.splitlines()[-1] == (
        "| **gpu** | ⬜ missing<br>no smoke results (the job failed before the smoke test, or did not run) | — / cuda "
        "| missing | — | — | — | — |"
    )


def test_md_cell_and_seconds() -> None:
    assert md_cell("a  b\n c") == "a b c"
    assert md_cell("<b>|`*_[]\\") == "&lt;b&gt;\\|\\`\\*\\_\\[\\]\\\\"
    assert md_cell('"q"') == '"q"'
    assert md_cell(3) == "3"
    assert pages._seconds(0.9994) == "999 ms"
    assert pages._seconds(1.0) == "1.00 s"
    assert pages._seconds(0.0004) == "0 ms"


def test_report_title_and_github_context() -> None:
    assert report_title({}) == "envspec report"
    assert report_title({"GITHUB_WORKFLOW": "verify"}) == "envspec report"
    assert report_title({"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": "  my\n  verify "}) == "envspec my verify"
    assert report_title({"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": " "}) == "envspec report"
    env = {
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_REF_NAME": "main",
        "GITHUB_SHA": "0123456789abcdef0123",
        "GITHUB_RUN_ID": "42",
    }
    assert github_context(env) == [
        ("repository", "o/r"),
        ("ref", "main"),
        ("commit", "0123456789ab"),
        ("run", "https://github.com/o/r/actions/runs/42"),
    ]
    assert github_context({**env, "GITHUB_SERVER_URL": "https://ghe.example"})[-1] == (
        "run",
        "https://ghe.example/o/r/actions/runs/42",
    )
    assert github_context({"GITHUB_RUN_ID": "42", "GITHUB_SHA": "abc"}) == [("commit", "abc")]
    assert github_context({}) == []


def test_details_the_first_pass_left_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # A PNG wider than a signed 32-bit int.
    png = make_png(1, 1)
    huge = png[:16] + (2**31).to_bytes(4, "big") + png[20:]
    assert png_size(huge) == (2**31, 1)
    # conda-lock errors lose their "conda-lock file: " prefix.
    with pytest.raises(ValueError) as info:
        inputs.parse_conda_lock("garbage", "linux-64")
    assert str(info.value) == "not a conda-lock.yml: no 'package' list"
    # Rows: a resultless row keeps its target's place in the spec; a row without a target has no subdir.
    broken = build_row("gpu", target(), SmokeRead(problem="bad"), LockReading("unknown"))
    assert (broken.in_spec, broken.runner, broken.subdir, broken.versions) == (True, "gpu-runner", "linux-64", ())
    stray = build_row("x", None, SmokeRead(report=smoke(promised_device="cuda")), LockReading("unknown"))
    assert (stray.runner, stray.subdir, stray.in_spec) == ("", "", False)
    assert build_table([], {}, {}).title == "envspec report"
    assert report_title({"GITHUB_ACTIONS": "true"}) == "envspec report"


def test_markdown_of_an_empty_reason_and_several_failed_checks() -> None:
    clean = smoke(message="", checks=[{"name": "a", "passed": True}])
    two = smoke(checks=[{"name": "a", "passed": False}, {"name": "b", "passed": False}])
    table = build_table([], {"p": SmokeRead(report=clean), "q": SmokeRead(report=two)}, {})
    lines = render_markdown(table).splitlines()
    assert lines[-2].startswith("| **p**<br>not in envspec.yml | ✅ pass | cuda / ?")
    assert "❌ fail<br>smoke.json says pass, but checks a, b failed<br>failed: a, b |" in lines[-1]


def test_freshness_asks_the_lock_step_with_the_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def is_fresh(*args: Any) -> bool | None:
        calls.append(args)
        return answers.pop(0)

    answers: list[bool | None] = [True, False, None]
    monkeypatch.setattr(inputs, "is_fresh", is_fresh)
    assert inputs._freshness("proj", "tgt", {"conda-forge": "file:///m"}) == ("fresh", None)  # type: ignore[arg-type]
    assert inputs._freshness("proj", "tgt") == ("stale", None)  # type: ignore[arg-type]
    assert inputs._freshness("proj", "tgt") == ("unknown", None)  # type: ignore[arg-type]
    assert calls == [("proj", "tgt", {"conda-forge": "file:///m"}), ("proj", "tgt"), ("proj", "tgt")]

    def broken(*args: Any) -> bool:
        raise RuntimeError("no  lock\n" + "x" * 300)

    monkeypatch.setattr(inputs, "is_fresh", broken)
    state, problem = inputs._freshness("proj", "tgt")  # type: ignore[arg-type]
    assert state == "unknown"
    assert problem == "freshness check failed: no lock " + "x" * 192
