"""`envspec smoke`: the plan (pure), option pass-through, and real runs in a prefix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from envspec.cli import main as cli
from envspec.cli import smoke as smoke_command
from envspec.cli.common import Context
from envspec.doctor.probe import RecordedProbe
from envspec.settings import Settings
from envspec.smoke import cli as smoke_cli
from envspec.smoke import host as smoke_runner
from envspec.spec.load import ResolvedTarget, load_spec

REPO = Path(__file__).resolve().parents[2]


def target(name: str) -> ResolvedTarget:
    return load_spec(REPO / "envspec.yml").resolve(name)


def test_plan_expects_the_targets_device_in_the_prefix_python() -> None:
    cuda = target("linux-cuda")
    plan = smoke_runner.plan(cuda, Path("/envs/sd"), ["--steps", "2"], windows=False)
    assert plan.python == Path("/envs/sd/bin/python")
    assert plan.argv == ["-m", "envspec.smoke", "--target", "linux-cuda", "--expect", cuda.smoke_device, "--steps", "2"]
    assert plan.env["PATH"].startswith("/envs/sd/bin") and plan.env["CONDA_PREFIX"] == "/envs/sd"
    assert plan.env["PYTHONSAFEPATH"] == "1"  # never the envspec checkout in the cwd


def test_plan_keeps_an_explicit_expect_and_uses_target_variables() -> None:
    mac = target("osx-arm64")
    plan = smoke_runner.plan(mac, Path("/e"), ["--expect", "cpu"], windows=False)
    assert plan.argv.count("--expect") == 1 and plan.argv[-2:] == ["--expect", "cpu"]
    assert plan.env["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"


def test_plan_on_windows_and_without_prefix() -> None:
    plan = smoke_runner.plan(None, Path("C:/envs/sd"), [], windows=True)
    assert plan.python == Path("C:/envs/sd/python.exe")
    assert str(Path("C:/envs/sd/Library/bin")) in plan.env["PATH"]
    here = smoke_runner.plan(target("linux-cuda"), None, [])
    assert here.python is None and here.argv[:4] == ["--target", "linux-cuda", "--expect", "cuda"]


def test_options_pass_through_unchanged() -> None:
    argv = [
        "--allow-cpu",
        "--model",
        "m.ckpt",
        "--trust-pickle",
        "--steps",
        "3",
        "--benchmark",
        "--compile",
        "--compile-mode",
        "reduce-overhead",
        "--no-channels-last",
        "--out",
        "o",
    ]
    args = smoke_cli.build_parser().parse_args(["--target", "t", *argv])
    rebuilt = smoke_cli.to_argv(args, skip=frozenset({"target"}))
    assert smoke_cli.build_parser().parse_args(rebuilt) == smoke_cli.build_parser().parse_args(argv)
    assert smoke_cli.to_argv(smoke_cli.build_parser().parse_args([])) == []


def test_prefix_state_variables_are_set_as_activation_would(tmp_path: Path) -> None:
    (tmp_path / "conda-meta").mkdir()
    state = {"ENVSPEC_TARGET": "osx-64", "ENVSPEC_DEVICE": "cpu", "PYTORCH_ENABLE_MPS_FALLBACK": "1"}
    (tmp_path / "conda-meta" / "state").write_text(json.dumps({"env_vars": state}))
    assert smoke_runner.activation_vars(tmp_path) == state
    plan = smoke_runner.plan(None, tmp_path, [], state=state, windows=False)
    assert {k: plan.env[k] for k in state} == state
    assert "--expect" not in plan.argv  # the child reads the promise from the same state file
    ctx = Context(Settings(spec=tmp_path / "no-such.yml"))
    assert smoke_command.find_target(None, state, ctx) is None  # no --target, no project: no spec needed


def test_without_target_the_environment_s_own_target_is_used(tmp_path: Path) -> None:
    ctx = Context(Settings(spec=REPO / "envspec.yml"))
    target = smoke_command.find_target(None, {"ENVSPEC_TARGET": "win-cuda"}, ctx)
    assert target is not None and target.name == "win-cuda"
    assert smoke_command.find_target(None, {"ENVSPEC_TARGET": "gone-from-spec"}, ctx) is None


def test_without_target_or_state_the_recommended_target_is_used() -> None:
    m1 = json.loads((REPO / "tests" / "data" / "doctor" / "m1-arm64.json").read_text())
    ctx = Context(Settings(spec=REPO / "envspec.yml"), probe=RecordedProbe(m1))
    assert smoke_command.find_target(None, {}, ctx) == load_spec(REPO / "envspec.yml").resolve("osx-arm64")


def test_missing_prefix_python_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["--spec", str(REPO / "envspec.yml"), "smoke", "--prefix", str(tmp_path)])
    assert code == 10 and "no Python in" in capsys.readouterr().err


@pytest.mark.integration
def test_smoke_in_a_prefix_fails_on_a_missing_promise_then_passes_with_allow_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    base = ["--spec", str(REPO / "envspec.yml"), "smoke", "--prefix", sys.prefix, "--target", "linux-cuda"]
    out = tmp_path / "out"
    assert cli.main([*base, "--steps", "2", "--out", str(out)]) == 10
    report = json.loads((out / "smoke.json").read_text())
    assert report["verdict"] == "error" and "built without CUDA" in report["message"]
    assert cli.main([*base, "--allow-cpu", "--steps", "2", "--out", str(out)]) == 0
    report = json.loads((out / "smoke.json").read_text())
    assert (report["target"], report["promised_device"], report["device"]) == ("linux-cuda", "cuda", "cpu")
    assert (out / "smoke.png").is_file()


def test_the_pinned_model_and_the_targets_image_settings_are_passed_when_pulled(tmp_path: Path) -> None:
    import dataclasses

    cuda = dataclasses.replace(target("linux-cuda"), smoke_steps=20, smoke_resolution=512)
    model = tmp_path / "models" / "sd-v1-5"
    assert smoke_runner.model_argv(cuda, None, []) == []  # nothing pulled: the tiny offline model
    argv = ["--model", str(model), "--steps", "20", "--resolution", "512"]
    assert smoke_runner.model_argv(cuda, model, []) == argv
    assert smoke_runner.model_argv(cuda, model, ["--steps", "2"]) == ["--model", str(model), "--resolution", "512"]
    assert smoke_runner.model_argv(cuda, model, ["--model", "other"]) == []  # the command line wins
    assert smoke_runner.model_argv(dataclasses.replace(cuda, smoke_with_model=False), model, []) == []
    assert smoke_runner.model_argv(None, model, []) == []


def test_up_s_smoke_options_are_typed_until_the_child_s_command_line(tmp_path: Path) -> None:
    options = smoke_runner.SmokeOptions(out=tmp_path / "o", allow_cpu=True)
    args = smoke_cli.build_parser().parse_args(options.argv())
    assert (args.out, args.allow_cpu) == (str(tmp_path / "o"), True)
    assert smoke_runner.SmokeOptions(out=tmp_path).argv() == ["--out", str(tmp_path)]
