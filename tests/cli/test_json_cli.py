"""`--json` through main(), in-process: stdout is exactly one document valid against the schema the
package ships, errors included (with the same exit code); and the newcomer frictions of #22 that
need no real tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsondocs import SCHEMAS, only_document, schema

from envspec.cli import up_plan as up
from envspec.cli.common import Context
from envspec.cli.main import main
from envspec.doctor.probe import RecordedProbe
from envspec.errors import ChannelUnreachable, ExitCode, IntegrityError
from envspec.install.run import hash_summary
from envspec.lock.plan import LockInput, parse_exclude_newer

DATA = Path(__file__).resolve().parents[1] / "data" / "doctor"


@pytest.fixture
def rendered(project_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = json.loads((DATA / "linux-no-gpu.json").read_text())
    monkeypatch.setattr(Context, "machine", lambda self: RecordedProbe(data))  # a machine without an NVIDIA GPU
    monkeypatch.delenv("ENVSPEC_MIRRORS", raising=False)
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"]) == 0
    return project_copy


def test_every_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    for name in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema(name))
        assert schema(name)["properties"]["schema"]["const"].endswith("/1")


@pytest.mark.parametrize(
    "argv",
    [
        ["lock", "--json", "--exclude-newer", "yesterday"],
        ["lock", "--json", "--exclude-newer", "2025-06-01T12:00:00"],  # no time zone: ambiguous
        ["diff", "--json", "--no-such-option"],
        ["install", "--json"],  # neither --prefix nor --name
    ],
)
def test_a_usage_error_is_a_json_document_with_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    captured = capsys.readouterr()
    doc = only_document(captured.out, "error")
    assert doc["exit_code"] == ExitCode.USAGE and doc["command"] == argv[0]
    assert doc["error"] in captured.err  # the usage message is still on stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["lock", "--target", "nope"],
        ["diff", "--target", "nope"],
        ["install", "nope", "--prefix", "env"],
        ["up", "nope", "--prefix", "env"],
        ["models", "pull", "nope"],
    ],
)
def test_an_error_is_a_json_document_with_the_same_exit_code(
    argv: list[str], rendered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["--spec", str(rendered / "envspec.yml"), *argv, "--json"])
    captured = capsys.readouterr()
    assert code == ExitCode.SPEC_INVALID
    doc = only_document(captured.out, "error")
    assert doc["exit_code"] == code and "nope" in doc["error"]
    assert doc["command"] == (" ".join(argv[:2]) if argv[0] == "models" else argv[0])
    assert captured.err.strip().splitlines()[-1].startswith("error: ")  # the one line stays on stderr


def test_without_json_stdout_gets_no_document(rendered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["--spec", str(rendered / "envspec.yml"), "lock", "--target", "nope"]) == ExitCode.SPEC_INVALID
    assert capsys.readouterr().out == ""


def test_up_json_is_one_document_with_the_failing_step_and_its_exit_code(
    rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    prefix = tmp_path / "my env"
    code = main(["--spec", str(rendered / "envspec.yml"), "up", "linux-cuda", "--prefix", str(prefix), "--json"])
    captured = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED
    doc = only_document(captured.out, "up")  # one document: no error document after it
    assert doc["exit_code"] == code and doc["failed_step"] == "doctor" and not doc["ok"]
    assert "nvidia-gpu" in doc["error"] and "--allow-cpu" in doc["tip"]
    assert [s["status"] for s in doc["steps"]] == ["fail"] + ["skipped"] * 5
    assert doc["prefix"] == str(prefix)
    assert "error: doctor: linux-cuda: nvidia-gpu:" in captured.err
    # the doctor inside `up` names up's own prefix, never the doctor's `--prefix ./env` example
    assert "--prefix ./env" not in captured.err
    assert f"envspec up linux-cuda --prefix '{prefix}'" in captured.err


def test_up_outcome_json_of_a_passing_run_matches_the_schema() -> None:
    def passing(state: up.UpState) -> tuple[up.UpState, str]:
        return state, "fine"

    steps = [up.Step(name, passing) for name in up.STEP_NAMES]
    outcome = up.run_steps(steps, up.UpState("linux-cpu", Path("/p"), Path("/o")), lambda _: None)
    import jsonschema

    doc = outcome.to_json()
    jsonschema.validate(doc, schema("up"))
    assert doc["ok"] and doc["exit_code"] == 0 and doc["failed_step"] is None and doc["error"] is None


def test_up_outcome_json_carries_the_failing_steps_code() -> None:
    def broken(state: up.UpState) -> tuple[up.UpState, str]:
        raise IntegrityError("bad hash", tip="re-download")

    def passing(state: up.UpState) -> tuple[up.UpState, str]:
        return state, "fine"

    steps = [up.Step(n, broken if n == "install" else passing) for n in up.STEP_NAMES]
    doc = up.run_steps(steps, up.UpState("t", Path("/p"), Path("/o")), lambda _: None).to_json()
    import jsonschema

    jsonschema.validate(doc, schema("up"))
    assert (doc["exit_code"], doc["failed_step"], doc["error"], doc["tip"]) == (7, "install", "bad hash", "re-download")


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2025-06-01", "2025-06-01T00:00:00Z"),
        ("2025-06-01T12:30:00Z", "2025-06-01T12:30:00Z"),
        ("2025-06-01T12:30:00+02:00", "2025-06-01T10:30:00Z"),
        ("2025-06-01 12:30:00.250-01:00", "2025-06-01T13:30:00.25Z"),
        ("0002-01-01T00:00:00+01:00", "0001-12-31T23:00:00Z"),  # four-digit years everywhere
        ("2025-06-01t12:00:00z", "2025-06-01T12:00:00Z"),
    ],
)
def test_exclude_newer_is_normalised_to_one_utc_instant(text: str, instant: str) -> None:
    assert parse_exclude_newer(text) == instant


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2025-06-01T12:00:00",  # no zone: another instant on each machine
        "2025-13-01",
        "",
        "1717200000",
        "2025-W22-1",  # ISO 8601 week date, not RFC 3339
        "20250601",
        "2025-06-01T12",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: refused, not an OverflowError
        "2025-06-01\x00",
        "\uff12\uff10\uff12\uff15-06-01",  # fullwidth digits
    ],
)
def test_exclude_newer_refuses_what_is_not_one_instant(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|no time zone"):
        parse_exclude_newer(text)


def test_exclude_newer_is_an_input_of_the_lock_and_absent_keeps_old_hashes() -> None:
    plain = LockInput("t", "linux-64", b"env", b"vp", ("https://c",))
    dated = LockInput("t", "linux-64", b"env", b"vp", ("https://c",), exclude_newer="2025-06-01T00:00:00Z")
    later = LockInput("t", "linux-64", b"env", b"vp", ("https://c",), exclude_newer="2025-07-01T00:00:00Z")
    assert len({plain.digest(), dated.digest(), later.digest()}) == 3
    assert "exclude_newer" not in plain.components()  # lockfiles made before --exclude-newer stay current


def test_the_hash_line_says_md5_only_when_some_package_has_no_sha256() -> None:
    assert hash_summary(12, 12) == "hashes: 12/12 packages pinned by sha256"
    assert hash_summary(10, 12) == "hashes: 10/12 packages pinned by sha256, the other 2 by md5"


def test_an_unreachable_hub_while_locking_does_not_offer_hf_hub_offline() -> None:
    """`models lock` needs the Hub: its tip must not say HF_HUB_OFFLINE=1 gets around it (pull's may)."""
    from envspec.models.hub import translate

    lock_error = translate(ConnectionError("refused"), repo="o/r", revision="main", doing="lock")
    pull_error = translate(ConnectionError("refused"), repo="o/r", revision="c" * 40, doing="pull", path="a")
    assert isinstance(lock_error, ChannelUnreachable) and isinstance(pull_error, ChannelUnreachable)
    assert lock_error.tip is not None and pull_error.tip is not None
    assert "locking needs the Hub" in lock_error.tip and "HF_HUB_OFFLINE=1 does not help" in lock_error.tip
    assert "pulled without the network with HF_HUB_OFFLINE=1" in pull_error.tip


def test_an_apple_silicon_cpu_generic_torch_build_is_called_the_mps_build() -> None:
    from envspec.lock.condalock import torch_build_label

    build = "cpu_generic_py313_h459cd70_4"
    assert torch_build_label(build, "osx-arm64") == f"{build}, the MPS build"
    assert torch_build_label(build, "osx-64") == build  # an Intel Mac's CPU build is a CPU build
    assert torch_build_label("cpu_mkl_py312_h1_0", "linux-64") == "cpu_mkl_py312_h1_0"


def test_the_report_row_says_which_torch_build_is_the_mps_one() -> None:
    from envspec.report.inputs import LockReading
    from envspec.report.matrix import Row

    def row(subdir: str) -> Row:
        made = Row.__new__(Row)  # only the fields Row.torch reads
        object.__setattr__(made, "subdir", subdir)
        object.__setattr__(
            made, "lock", LockReading(state="fresh", torch_version="2.10.0", torch_build="cpu_generic_4")
        )
        return made

    assert row("osx-arm64").torch == "2.10.0 (cpu_generic_4, the MPS build)"
    assert row("osx-64").torch == "2.10.0 (cpu_generic_4)"


def test_a_json_document_is_ascii_whatever_the_message_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A console that cannot encode "é" still gets the document: non-ASCII is escaped."""
    spec = tmp_path / "projé" / "envspec.yml"
    spec.parent.mkdir()
    spec.write_text("version: 1\nname: [x]\n", encoding="utf-8")
    assert main(["--spec", str(spec), "lock", "--json"]) == ExitCode.SPEC_INVALID
    out = capsys.readouterr().out
    assert out.isascii() and "proj\\u00e9" in out
    assert "projé" in only_document(out, "error")["error"]
