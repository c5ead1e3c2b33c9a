"""The smoke test end to end on CPU torch, in this process: a pass, then each check made to fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envspec.smoke import loader, run

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
np = pytest.importorskip("numpy")

Smoke = Callable[..., tuple[int, dict[str, Any], Path]]
FAST = ("--steps", "2")


def check(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in data["checks"] if c["name"] == name]
    assert len(found) == 1, data["checks"]
    return found[0]


def failed(data: dict[str, Any]) -> set[str]:
    return {c["name"] for c in data["checks"] if not c["passed"]}


SCHEMA_KEYS = {
    "schema",
    "target",
    "verdict",
    "message",
    "promised_device",
    "device",
    "device_name",
    "allow_cpu",
    "dtype",
    "mode",
    "model",
    "resolution",
    "steps",
    "seed",
    "versions",
    "timings_s",
    "memory",
    "image",
    "checks",
    "benchmark",
}


def test_tiny_pipeline_passes_and_reports_every_field(smoke: Smoke) -> None:
    code, data, out = smoke("--target", "linux-cpu")
    assert code == 0, data["message"]
    assert set(data) == SCHEMA_KEYS
    assert data["schema"] == "envspec-smoke/1" and data["verdict"] == "pass"
    assert (data["target"], data["mode"], data["model"], data["device"], data["dtype"]) == (
        "linux-cpu",
        "tiny",
        None,
        "cpu",
        "float32",
    )
    assert data["resolution"] == [128, 128] and data["steps"] == 8 and data["benchmark"] is None
    assert set(data["versions"]) == {"python", "torch", "torch_cuda", "diffusers", "transformers", "numpy", "pillow"}
    assert data["versions"]["torch"] == torch.__version__
    assert set(data["timings_s"]) == {"import", "load", "first_step", "median_step", "decode", "total"}
    assert all(isinstance(v, float) and v >= 0 for v in data["timings_s"].values())
    assert data["memory"]["peak_host_mib"] > 100 and data["memory"]["peak_device_mib"] is None
    assert [c["name"] for c in data["checks"]] == [
        "weights_loaded",
        "params_device_dtype",
        "tokenizer",
        "finite",
        "shape",
        "not_blank",
        "repeatable",
    ]
    from PIL import Image

    with Image.open(out / "smoke.png") as image:
        assert image.size == (128, 128)
        pixels = np.asarray(image)
    assert data["image"]["distinct_values"] == np.unique(pixels).size > 16
    assert abs(data["image"]["std"] - pixels.std() / 255) < 1e-4


def test_nan_latents_fail_finite_and_blank(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    real = run.denoise

    def nan_latents(*args: Any) -> tuple[Any, float, float]:
        latents, first, median = real(*args)
        return latents * float("nan"), first, median

    monkeypatch.setattr(run, "denoise", nan_latents)
    code, data, _out = smoke(*FAST)
    assert code == 1 and data["verdict"] == "fail"
    assert failed(data) == {"finite", "not_blank"}
    assert data["image"]["distinct_values"] == 1  # the black PNG diffusers would write silently
    assert "finite" in data["message"]


def test_blank_output_fails(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    def gray(_pipe: Any, latents: Any, _device: str) -> Any:
        return np.full((latents.shape[0], 128, 128, 3), 0.5, dtype=np.float32)

    monkeypatch.setattr(run, "decode", gray)
    code, data, _ = smoke(*FAST)
    assert code == 1 and failed(data) == {"not_blank"}


def test_wrong_shape_fails(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    real = run.decode
    monkeypatch.setattr(run, "decode", lambda *a: real(*a)[:, :64])
    code, data, _ = smoke(*FAST)
    assert code == 1 and "shape" in failed(data)


@pytest.mark.parametrize("component", ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"])
def test_dropped_weight_fails_weights_loaded(smoke: Smoke, tiny_copy: Path, component: str) -> None:
    from safetensors.torch import load_file, save_file

    path = tiny_copy / component
    tensors = load_file(path)
    dropped = sorted(tensors)[3]
    del tensors[dropped]
    save_file(tensors, path)
    code, data, _ = smoke("--model", str(tiny_copy), "--resolution", "128", *FAST)
    assert code == 1 and data["mode"] == "model" and data["model"] == str(tiny_copy)
    assert failed(data) == {"weights_loaded"}
    assert dropped.split(".")[0] in check(data, "weights_loaded")["detail"]


def test_saved_tiny_model_loads_as_a_model_folder(smoke: Smoke, tiny_model_dir: Path) -> None:
    code, data, _ = smoke("--model", str(tiny_model_dir), "--resolution", "64", *FAST)
    assert code == 0, data["message"]
    assert data["resolution"] == [64, 64]


def test_parameter_on_wrong_dtype_fails(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    real = loader.load_pipeline

    def half_wrong(*args: Any) -> Any:
        pipe = real(*args)
        pipe.unet.conv_out.to(torch.float64)
        return pipe

    monkeypatch.setattr(loader, "load_pipeline", half_wrong)
    code, data, _ = smoke(*FAST)
    assert code in (1, 10)  # a float64 layer may also break the forward pass
    if code == 1:
        assert "params_device_dtype" in failed(data)
        assert "unet.conv_out.weight on cpu as float64" in check(data, "params_device_dtype")["detail"]
    else:
        assert data["verdict"] == "error"


def test_parameter_without_data_fails_weights_loaded(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """With accelerate, diffusers leaves a missing weight on the meta device instead of warning only."""
    real = loader.load_pipeline

    def on_meta(*args: Any) -> Any:
        pipe = real(*args)
        pipe.vae.post_quant_conv.to("meta")
        return pipe

    monkeypatch.setattr(loader, "load_pipeline", on_meta)
    monkeypatch.setattr(run, "generate", lambda *a: pytest.fail("must not generate without weights"))
    code, data, out = smoke(*FAST)
    assert code == 1 and data["verdict"] == "fail" and failed(data) == {"weights_loaded"}
    assert "vae.post_quant_conv.weight" in check(data, "weights_loaded")["detail"]
    assert not (out / "smoke.png").exists()


def test_nondeterminism_fails_repeatable(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    real = run.denoise
    calls = []

    def drifting(*args: Any) -> tuple[Any, float, float]:
        latents, first, median = real(*args)
        calls.append(1)
        return latents + 0.5 * (len(calls) - 1), first, median

    monkeypatch.setattr(run, "denoise", drifting)
    code, data, _ = smoke(*FAST)
    assert code == 1 and failed(data) == {"repeatable"} and len(calls) == 2


def test_promised_cuda_missing_is_exit_2_with_the_reason(smoke: Smoke) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, data, _ = smoke("--expect", "cuda", "--target", "linux-cuda", *FAST)
    assert code == 10 and data["verdict"] == "error"
    assert data["promised_device"] == "cuda" and data["target"] == "linux-cuda"
    assert set(data) == SCHEMA_KEYS and data["versions"]["torch"] == torch.__version__  # an error report is whole
    assert "linux-cuda promises cuda" in data["message"] and "--allow-cpu" in data["message"]


def test_allow_cpu_runs_and_records_the_unmet_promise(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("ENVSPEC_DEVICE", "cuda")
    monkeypatch.setenv("ENVSPEC_TARGET", "linux-cuda")
    code, data, _ = smoke("--allow-cpu", *FAST)
    assert code == 0, data["message"]
    assert (data["promised_device"], data["device"], data["allow_cpu"]) == ("cuda", "cpu", True)
    assert check(data, "promised_device")["detail"].startswith("NOT MET")
    assert "NOT met" in data["message"]


def make_ckpt(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


class Trap:
    """Unpickling this creates a file: proof that a refused pickle was never unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickle_is_refused_and_never_unpickled(smoke: Smoke, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    ckpt = make_ckpt(tmp_path / "m" / "model.ckpt", {"state_dict": {"w": torch.ones(2)}, "trap": Trap(marker)})
    code, data, _ = smoke("--model", str(ckpt))
    assert code == 10 and "--trust-pickle" in data["message"]
    assert not marker.exists() and not ckpt.with_suffix(".safetensors").exists()


def test_old_guide_checkpoint_path_is_picked_up(smoke: Smoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_ckpt(tmp_path / "models/ldm/stable-diffusion-v1/model.ckpt", {"w": torch.ones(2)})
    monkeypatch.chdir(tmp_path)
    code, data, _ = smoke()
    assert code == 10 and data["mode"] == "model" and "model.ckpt is a pickle" in data["message"]


def test_trust_pickle_converts_once_to_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    weights = {"a.weight": torch.randn(3, 4), "b.bias": torch.arange(5, dtype=torch.int64)}
    ckpt = make_ckpt(tmp_path / "model.ckpt", {"state_dict": weights, "global_step": 470000})
    source = loader.prepare(ckpt, trust_pickle=True)
    assert source.kind == "single_file" and source.path == tmp_path / "model.safetensors"
    loaded = load_file(source.path)
    assert set(loaded) == set(weights) and all(torch.equal(loaded[k], weights[k]) for k in weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt", "model.safetensors"]  # no temp left
    again = loader.prepare(ckpt, trust_pickle=False)  # converted earlier: no pickle needed any more
    assert again.path == source.path and "converted earlier" in again.note


def test_safetensors_writer_matches_the_reference_reader(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    tensors = {
        "half": torch.randn(2, 3).half(),
        "bf16": torch.randn(4).bfloat16(),
        "scalar": torch.tensor(7.0),
        "strided": torch.randn(4, 6).t(),
        "empty": torch.zeros(0, 3),
        "flag": torch.tensor([True, False]),
    }
    loader.write_safetensors(tmp_path / "x.safetensors", tensors, {"format": "pt"})
    loaded = load_file(tmp_path / "x.safetensors")
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    raw = (tmp_path / "x.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"] == {"format": "pt"}


def test_single_file_without_tokenizer_is_a_setup_error(
    smoke: Smoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    path = tmp_path / "sd.safetensors"
    loader.write_safetensors(path, {"w": torch.ones(1)}, {})
    code, data, _ = smoke("--model", str(path), *FAST)
    assert code == 10 and "no CLIP tokenizer" in data["message"]


def test_model_folder_without_tokenizer_files_fails(smoke: Smoke, tiny_copy: Path) -> None:
    for path in (tiny_copy / "tokenizer").iterdir():
        if path.name != "tokenizer_config.json":
            path.unlink()
    code, data, _ = smoke("--model", str(tiny_copy), "--resolution", "64", *FAST)
    assert code in (1, 10), data["message"]
    if code == 1:  # transformers 5 loads an empty tokenizer without complaint
        assert failed(data) == {"tokenizer"}


def test_the_report_generator_reads_our_smoke_json(smoke: Smoke) -> None:
    from envspec.report.inputs import parse_smoke_json

    code, _, out = smoke("--target", "linux-cpu", *FAST)
    parsed = parse_smoke_json((out / "smoke.json").read_bytes())
    assert code == 0 and parsed.target == "linux-cpu" and parsed.verdict == "pass"
    assert parsed.timings_s.import_ is not None and parsed.image is not None and parsed.image.width == 128


def test_the_report_reads_a_run_without_target_from_its_folder(smoke: Smoke, tmp_path: Path, repo: Path) -> None:
    from envspec.report.inputs import LockReading, read_results
    from envspec.report.matrix import build_table
    from envspec.spec.load import load_spec

    code, data, out = smoke(*FAST)
    assert code == 0 and data["target"] is None
    results = tmp_path / "results"
    (results / "osx-64").mkdir(parents=True)
    for name in ("smoke.json", "smoke.png"):
        (results / "osx-64" / name).write_bytes((out / name).read_bytes())
    targets = load_spec(repo / "envspec.yml").resolve_all()
    locks = {t.name: LockReading(state="unknown") for t in targets}
    report = build_table(targets, read_results(results), locks)
    row = next(r for r in report.rows if r.target == "osx-64")
    assert row.status == "pass", row.reason
    assert row.image is not None
