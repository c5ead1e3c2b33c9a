"""The plan of `envspec up` (envspec.cli.up_plan) with stub steps, and its first two steps through main()."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from envspec.cli import up_plan as up
from envspec.cli.main import main as real_main
from envspec.doctor.check import Check, Status
from envspec.doctor.probe import RecordedProbe
from envspec.errors import CheckFailed, ExitCode, IntegrityError

DATA = Path(__file__).parents[1] / "data" / "doctor"
START = up.UpState("linux-cuda", Path("/envs/sd"), Path("/out"))


def step(name: str, log: list[str], fail: Exception | None = None) -> up.Step:
    def run(state: up.UpState) -> tuple[up.UpState, str]:
        log.append(f"{name} after {state.waived}")
        if fail is not None:
            raise fail
        return replace(state, waived=(*state.waived, name)), f"{name} done"

    return up.Step(name, run)


def test_steps_run_in_order_each_on_the_previous_state() -> None:
    log: list[str] = []
    lines: list[str] = []
    outcome = up.run_steps([step(n, log) for n in up.STEP_NAMES], START, lines.append)
    assert log == [
        "doctor after ()",
        "lock after ('doctor',)",
        "install after ('doctor', 'lock')",
        "models after ('doctor', 'lock', 'install')",
        "smoke after ('doctor', 'lock', 'install', 'models')",
        "report after ('doctor', 'lock', 'install', 'models', 'smoke')",
    ]
    assert outcome.ok and outcome.exit_code == 0 and outcome.failed is None
    assert [r.status for r in outcome.results] == [up.StepStatus.PASS] * 6
    assert "[2/6] lock: ..." in lines and "[6/6] report: report done" in lines


def test_the_first_failure_ends_the_run_with_its_exit_code() -> None:
    log: list[str] = []
    broken = IntegrityError("install: pytorch does not match its sha256")
    steps = [step("doctor", log), step("lock", log), step("install", log, fail=broken), step("smoke", log)]
    lines: list[str] = []
    outcome = up.run_steps(steps, START, lines.append)
    assert [r.status for r in outcome.results] == [
        up.StepStatus.PASS,
        up.StepStatus.PASS,
        up.StepStatus.FAIL,
        up.StepStatus.SKIPPED,
    ]
    assert len(log) == 3  # smoke never ran
    assert outcome.failed is not None and outcome.failed.error is broken
    assert outcome.exit_code == ExitCode.INTEGRITY
    assert "[3/4] install: FAILED" in lines and not any(line.startswith("[4/4]") for line in lines)
    assert up.final_line(outcome) == "up linux-cuda: FAILED at install; prefix /envs/sd; report none"


def test_only_envspec_errors_are_step_failures() -> None:
    def crash(state: up.UpState) -> tuple[up.UpState, str]:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        up.run_steps([up.Step("doctor", crash)], START, lambda _: None)


def fail(name: str) -> Check:
    return Check(name, Status.FAIL, f"{name} is wrong", f"fix {name}")


PASS = Check("platform", Status.PASS, "ok")


@pytest.mark.parametrize(
    ("checks", "accelerator", "allow_cpu", "blocking", "waived"),
    [
        ([PASS], "cuda", False, [], []),
        ([PASS, fail("nvidia-gpu")], "cuda", False, ["nvidia-gpu"], []),
        ([PASS, fail("nvidia-gpu")], "cuda", True, [], ["nvidia-gpu"]),
        # --allow-cpu waives the missing GPU only: any other FAIL still stops the run
        ([fail("nvidia-gpu"), fail("disk")], "cuda", True, ["nvidia-gpu", "disk"], []),
        ([fail("nvidia-driver")], "cuda", True, ["nvidia-driver"], []),  # a GPU with an old driver
        ([fail("platform")], "mps", True, ["platform"], []),  # an MPS target on the wrong machine
        ([fail("nvidia-gpu")], "cpu", True, ["nvidia-gpu"], []),  # the checks are per accelerator
    ],
)
def test_doctor_gate(
    checks: list[Check], accelerator: str, allow_cpu: bool, blocking: list[str], waived: list[str]
) -> None:
    gate = up.doctor_gate(checks, accelerator, allow_cpu)
    assert [c.name for c in gate.blocking] == blocking
    assert [c.name for c in gate.waived] == waived
    assert gate.ok is not blocking


def test_gate_error_offers_allow_cpu_only_when_the_gpu_is_all_that_is_missing() -> None:
    gpu = up.gate_error(up.doctor_gate([fail("nvidia-gpu")], "cuda", False), "linux-cuda", "cuda", False)
    assert isinstance(gpu, CheckFailed) and gpu.exit_code == ExitCode.CHECK_FAILED
    assert "nvidia-gpu: nvidia-gpu is wrong" in gpu.message and gpu.tip and "--allow-cpu" in gpu.tip
    both = up.doctor_gate([fail("nvidia-gpu"), fail("disk")], "cuda", True)
    err = up.gate_error(both, "linux-cuda", "cuda", True)
    assert "(+1 more FAIL)" in err.message and err.tip == "fix nvidia-gpu"


def test_final_line_of_a_passing_run() -> None:
    state = replace(START, waived=("nvidia-gpu",), smoke_device="cpu", report_html=Path("/out/report/report.html"))
    results = tuple(up.StepResult(n, up.StepStatus.PASS) for n in up.STEP_NAMES)
    assert up.final_line(up.UpOutcome(state, results)) == (
        "up linux-cuda: PASS on cpu (--allow-cpu waived: nvidia-gpu); prefix /envs/sd; report /out/report/report.html"
    )


def test_smoke_error_names_the_verdict_and_where_to_look() -> None:
    err = up.smoke_error(1, "fail", "linux-cuda: not-blank failed", "/out/linux-cuda/smoke.json")
    assert err.message == "smoke: fail: linux-cuda: not-blank failed" and err.tip
    assert "/out/linux-cuda/smoke.json" in err.tip
    crashed = up.smoke_error(2, None, None, "/o/smoke.json")
    assert "exit status 2, no /o/smoke.json written" in crashed.message


def test_a_smoke_error_is_one_line_with_one_prefix_and_one_tip() -> None:
    """smoke.json's own message carries "error: " and a tip: the line main() prints has one of each."""
    said = "error: RuntimeError: CUDA out of memory (tip: set ENVSPEC_DEBUG=1 for the traceback)"
    err = up.smoke_error(10, "error", said, "/o/linux-cuda/smoke.json")
    line = err.one_line()
    assert line == (
        "error: smoke: RuntimeError: CUDA out of memory "
        "(tip: set ENVSPEC_DEBUG=1 for the traceback; details in /o/linux-cuda/smoke.json)"
    )
    assert line.count("error:") == 1 and line.count("tip:") == 1 and err.exit_code == ExitCode.SMOKE_SETUP
    setup = up.smoke_error(10, "error", "error: the promised device cuda is absent", "/o/smoke.json")
    assert setup.one_line().count("error:") == 1 and setup.one_line().count("tip:") == 1


# --------------------------------------------------------------------------------------------
# Through main(): a recorded GPU-less Linux machine, a rendered project without lockfiles
# --------------------------------------------------------------------------------------------


def no_gpu_main(argv: list[str], probe: RecordedProbe | None = None) -> int:
    """main() on a recorded GPU-less Linux machine (the probe is a parameter of main)."""
    data = json.loads((DATA / "linux-no-gpu.json").read_text())
    return real_main(argv, environ={}, probe=probe or RecordedProbe(data))


main = no_gpu_main


@pytest.fixture
def rendered(project_copy: Path) -> Path:
    assert main(["--spec", str(project_copy / "envspec.yml"), "render"]) == 0
    return project_copy


def test_no_gpu_stops_at_the_doctor(rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    prefix = tmp_path / "env"
    code = main(["--spec", str(rendered / "envspec.yml"), "up", "linux-cuda", "--prefix", str(prefix)])
    captured = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED
    assert captured.out == f"up linux-cuda: FAILED at doctor; prefix {prefix}; report none\n"
    assert "FAIL    nvidia-gpu" in captured.err  # the doctor's checks are printed
    assert "error: doctor: linux-cuda: nvidia-gpu:" in captured.err and "--allow-cpu" in captured.err
    assert "[2/6]" not in captured.err and not prefix.exists()


def test_missing_lockfile_with_locked_stops_before_installing(
    rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    prefix = tmp_path / "env"
    argv = [
        "--spec",
        str(rendered / "envspec.yml"),
        "up",
        "linux-cuda",
        "--allow-cpu",
        "--locked",
        "--prefix",
        str(prefix),
    ]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED
    assert "[1/6] doctor: " in captured.err and "FAIL accepted by --allow-cpu: nvidia-gpu" in captured.err
    assert "error: lock: lockfiles/linux-cuda.lock does not exist and --locked was given; nothing was installed" in (
        captured.err
    )
    assert "drop --locked to solve it now" in captured.err
    assert "FAILED at lock" in captured.out and not prefix.exists()


def test_unrendered_project_says_to_render(
    project_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--spec", str(project_copy / "envspec.yml"), "up", "linux-cuda", "--allow-cpu", "--lock"]
    code = main([*argv, "--prefix", str(tmp_path / "env")])
    assert code == ExitCode.SPEC_INVALID
    assert "envspec render" in capsys.readouterr().err


def test_without_target_up_takes_the_one_recommended_for_this_machine(
    rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["--spec", str(rendered / "envspec.yml"), "up", "--allow-cpu", "--locked"]
    code = main([*argv, "--prefix", str(tmp_path / "env")])
    captured = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED  # no lockfile, and --locked
    assert "using linux-cpu, the target recommended for this machine" in captured.err  # no NVIDIA GPU
    assert captured.out.startswith("up linux-cpu: FAILED at lock;")


def test_an_unreachable_hub_in_the_models_step_says_how_to_go_on_without_the_model() -> None:
    from envspec.cli.up import _offer_no_models
    from envspec.errors import ChannelUnreachable

    with pytest.raises(ChannelUnreachable) as err, _offer_no_models():
        raise ChannelUnreachable("cannot reach the Hub at https://huggingface.co", tip="check the network")
    assert err.value.tip == "check the network; or pass --no-models to smoke-test with the tiny offline model"
    assert err.value.exit_code == ExitCode.CHANNEL_UNREACHABLE


def test_up_resolves_each_target_once_and_probes_once(
    rendered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Target choice, doctor and the lock step share one record per target and one probe of the machine."""
    import envspec.doctor.machine
    from envspec.spec.load import Spec

    resolved: list[str] = []
    real_resolve = Spec._resolve
    collected: list[bool] = []
    real_collect = envspec.doctor.machine.collect_facts

    def counting_resolve(self: Spec, name: str) -> object:
        resolved.append(name)
        return real_resolve(self, name)

    def counting_collect(*args: object, **kwargs: object) -> object:
        collected.append(True)
        return real_collect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Spec, "_resolve", counting_resolve)
    monkeypatch.setattr(envspec.doctor.machine, "collect_facts", counting_collect)
    argv = ["--spec", str(rendered / "envspec.yml"), "up", "--allow-cpu", "--locked", "--prefix", str(tmp_path / "e")]
    assert main(argv) == ExitCode.CHECK_FAILED
    assert "FAILED at lock" in capsys.readouterr().out  # the choice, the doctor and the lock step ran
    targets = sorted(set(resolved))
    assert len(targets) >= 2 and sorted(resolved) == targets, resolved  # every target, each once
    assert len(collected) == 1
