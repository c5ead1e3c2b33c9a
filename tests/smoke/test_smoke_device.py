"""Device choice and the promised device: pure decisions over a probe (no GPU needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from envspec.smoke.device import DeviceProbe, Promise, choose_device, dtype_name, find_promise, read_state_file
from envspec.smoke.errors import SmokeSetupError

CPU_BUILD = DeviceProbe("2.13.0+cpu", False, False, None, False, False, "x86_64")
CUDA_BOX = replace(CPU_BUILD, torch_version="2.13.0", cuda_built=True, cuda_available=True, cuda_name="NVIDIA H100")
CUDA_NO_GPU = replace(CUDA_BOX, cuda_available=False, cuda_name=None)
MAC = replace(CPU_BUILD, mps_built=True, mps_available=True, cpu_name="arm")
NONE = Promise(None, None, "none")


def promise(device: str) -> Promise:
    return Promise(device, "linux-cuda", "--expect")  # type: ignore[arg-type]


def test_preference_order_without_promise() -> None:
    assert choose_device(CUDA_BOX, None, NONE, False).device == "cuda"
    assert choose_device(MAC, None, NONE, False).device == "mps"
    assert choose_device(CPU_BUILD, None, NONE, False).device == "cpu"
    assert choose_device(CUDA_BOX, None, NONE, False).promise_met is None


def test_promise_met_names_the_gpu() -> None:
    choice = choose_device(CUDA_BOX, None, promise("cuda"), False)
    assert (choice.device, choice.name, choice.promise_met) == ("cuda", "NVIDIA H100", True)


@pytest.mark.parametrize(
    ("probe", "wanted", "reason"),
    [
        (CPU_BUILD, "cuda", "built without CUDA"),
        (CUDA_NO_GPU, "cuda", "no GPU is usable"),
        (CPU_BUILD, "mps", "built without MPS"),
        (replace(MAC, mps_available=False), "mps", "not available"),
    ],
)
def test_missing_promised_device_is_a_setup_error_with_the_reason(probe: DeviceProbe, wanted: str, reason: str) -> None:
    with pytest.raises(SmokeSetupError) as err:
        choose_device(probe, None, promise(wanted), allow_cpu=False)
    assert reason in err.value.message
    assert "linux-cuda" in err.value.message and "--allow-cpu" in (err.value.tip or "")


def test_allow_cpu_runs_on_cpu_and_records_the_broken_promise() -> None:
    choice = choose_device(CPU_BUILD, None, promise("cuda"), allow_cpu=True)
    assert (choice.device, choice.promise_met) == ("cpu", False)
    assert "built without CUDA" in choice.note


def test_forced_device() -> None:
    assert choose_device(CUDA_BOX, "cpu", NONE, False).device == "cpu"
    assert choose_device(CUDA_BOX, "cpu", promise("cuda"), False).promise_met is False
    with pytest.raises(SmokeSetupError, match="built without CUDA"):
        choose_device(CPU_BUILD, "cuda", NONE, False)


def test_forcing_another_device_does_not_hide_a_missing_promised_one() -> None:
    # --device cpu on a CPU-only torch of a cuda target: the promise is broken, exit 2 as without --device
    with pytest.raises(SmokeSetupError, match=r"promises cuda .* built without CUDA") as err:
        choose_device(CPU_BUILD, "cpu", promise("cuda"), allow_cpu=False)
    assert "--allow-cpu" in (err.value.tip or "")
    choice = choose_device(CPU_BUILD, "cpu", promise("cuda"), allow_cpu=True)
    assert (choice.device, choice.promise_met) == ("cpu", False)
    with pytest.raises(SmokeSetupError, match="--device cuda is not usable"):
        choose_device(CPU_BUILD, "cuda", NONE, False)


def test_dtype_per_device() -> None:
    assert [dtype_name(d) for d in ("cuda", "mps", "cpu")] == ["float16", "float32", "float32"]


def write_state(prefix: Path, env_vars: dict[str, str]) -> None:
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": env_vars}))


def test_promise_sources_in_order(tmp_path: Path) -> None:
    write_state(tmp_path, {"ENVSPEC_DEVICE": "mps", "ENVSPEC_TARGET": "osx-arm64"})
    from_state = find_promise(None, None, environ={}, prefix=tmp_path)
    assert (from_state.device, from_state.target) == ("mps", "osx-arm64")
    assert from_state.source.endswith("state")
    from_env = find_promise(
        None, None, environ={"ENVSPEC_DEVICE": "cuda", "ENVSPEC_TARGET": "linux-cuda"}, prefix=tmp_path
    )
    assert (from_env.device, from_env.target, from_env.source) == ("cuda", "linux-cuda", "$ENVSPEC_DEVICE")
    explicit = find_promise("cpu", "t", environ={"ENVSPEC_DEVICE": "cuda"}, prefix=tmp_path)
    assert (explicit.device, explicit.target, explicit.source) == ("cpu", "t", "--expect")
    assert find_promise(None, None, environ={}, prefix=tmp_path / "none") == Promise(None, None, "none")


def test_bad_promised_value_and_bad_state_file(tmp_path: Path) -> None:
    with pytest.raises(SmokeSetupError, match="'tpu'"):
        find_promise(None, None, environ={"ENVSPEC_DEVICE": "tpu"}, prefix=tmp_path)
    (tmp_path / "conda-meta").mkdir()
    (tmp_path / "conda-meta" / "state").write_text("{not json")
    with pytest.raises(SmokeSetupError, match="cannot read"):
        read_state_file(tmp_path)


@pytest.mark.parametrize(("allow_cpu", "why"), [(True, "allowed by --allow-cpu"), (False, "forced by --device")])
def test_verdict_names_what_let_an_unmet_promise_pass(allow_cpu: bool, why: str) -> None:
    from envspec.smoke.report import empty_report
    from envspec.smoke.run import conclude

    rep = empty_report("linux-cuda", "tiny", 0, allow_cpu)
    rep.update(promised_device="cuda", device="cpu", device_name="x86_64", dtype="float32", resolution=[8, 8])
    assert conclude(rep) == 0
    assert rep["message"].endswith(f"(promised cuda NOT met, {why})")
