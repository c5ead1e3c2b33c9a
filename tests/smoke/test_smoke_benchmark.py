"""`--benchmark`: the shipped SD-1 configs on the meta device, the whole run on CPU at a narrow width
(the GPU figures come from benchmarks/gpu_smoke.sh).

SD-1 at full size holds 1.07 billion float32 parameters (4.3 GB): on the meta device it costs shapes
only, so the shipped configs are checked there, and the CPU run uses the same configs at a tenth of
the width (the same blocks, layers and heads), which keeps the test process far below the suite's
memory limit (tests/conftest.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envspec.smoke import benchmark, loader, peaks

Smoke = Callable[..., tuple[int, dict[str, Any], Path]]


def test_unet_flops_match_the_sd1_reference() -> None:
    pytest.importorskip("diffusers")
    # domain notes: SD-1 UNet, 512x512, guidance batch 2 = 1606.5 GFLOP per step
    assert benchmark.unet_gflop_per_step(512) == pytest.approx(1606.5, abs=0.1)
    assert benchmark.unet_gflop_per_step(64) == pytest.approx(1606.5 / 64, rel=0.1)  # FLOPs scale with pixels


def test_the_shipped_configs_build_sd1_at_full_size_and_fit_together() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    pipe = benchmark.build_full_size("meta", torch.float32)  # shapes only: no memory, no compute
    sizes = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) for name in ("unet", "vae", "text_encoder")}
    assert sizes == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}  # SD-1's published counts
    ids = pipe.tokenizer(["a prompt"] * 2, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        text = pipe.text_encoder(ids.to("meta"))[0]
        noise = pipe.unet(torch.empty(2, 4, 8, 8, device="meta"), torch.tensor(500), encoder_hidden_states=text).sample
        image = pipe.vae.decode(torch.empty(1, 4, 8, 8, device="meta")).sample
    assert (tuple(text.shape), tuple(noise.shape), tuple(image.shape)) == ((2, 77, 768), (2, 4, 8, 8), (1, 3, 64, 64))


@pytest.fixture
def narrow_sd1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped SD-1 configs at a tenth of the width, in place of the shipped ones."""
    folder = tmp_path / "sd-v1-narrow"
    shutil.copytree(loader.CONFIG_DIR, folder)
    for part, changes in (
        ("unet", {"block_out_channels": [32, 64, 128, 128], "cross_attention_dim": 96}),
        ("vae", {"block_out_channels": [32, 32, 64, 64]}),
        ("text_encoder", {"hidden_size": 96, "intermediate_size": 384, "projection_dim": 96}),
    ):
        path = folder / part / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text(encoding="utf-8")), **changes}), encoding="utf-8")
    monkeypatch.setattr(loader, "CONFIG_DIR", folder)
    return folder


def test_peak_table() -> None:
    assert peaks.peak_tflops("NVIDIA H100 80GB HBM3", "float16") == 989.5
    assert peaks.peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.5
    assert peaks.peak_tflops("NVIDIA H200", "float16") == 989.5
    assert peaks.peak_tflops("NVIDIA A10G", "float16") is None
    assert peaks.peak_tflops("NVIDIA H100 80GB HBM3", "float32") is None


def test_figures_keep_their_precision_when_small() -> None:
    assert [benchmark.figure(v) for v in (87.6349, 44.6, 0.125656, 0.0039871, 0.0)] == [
        87.63,
        44.6,
        0.1257,
        0.003987,
        0.0,
    ]


def test_cpu_benchmark_at_small_size(smoke: Smoke, narrow_sd1: Path) -> None:
    code, data, out = smoke("--benchmark", "--resolution", "64", "--benchmark-steps", "2", "--warmup-steps", "1")
    assert code == 0, data["message"]
    assert data["mode"] == "benchmark" and data["resolution"] == [64, 64] and data["steps"] == 2
    bench = data["benchmark"]
    assert set(bench) == {
        "it_per_s",
        "ms_per_step",
        "unet_gflop_per_step",
        "unet_tflops",
        "peak_tflops",
        "peak_share",
        "compiled",
        "compile_s",
        "batch",
        "resolution",
        "dtype",
    }
    assert bench["it_per_s"] > 0 and bench["ms_per_step"] == pytest.approx(1000 / bench["it_per_s"], rel=0.02)
    assert bench["unet_gflop_per_step"] == round(benchmark.unet_gflop_per_step(64), 1)  # of the model it ran
    assert bench["unet_tflops"] == pytest.approx(benchmark.unet_gflop_per_step(64) * bench["it_per_s"] / 1000, rel=1e-3)
    assert (bench["compiled"], bench["batch"], bench["resolution"], bench["dtype"]) == (False, 2, 64, "float32")
    assert bench["peak_tflops"] is None and bench["peak_share"] is None  # no peak for a CPU
    assert {c["name"] for c in data["checks"]} == {"params_device_dtype", "finite", "shape"}
    assert (out / "smoke.png").is_file()
    # the report generator reads the real benchmark output and shows its figures
    from envspec.report.inputs import parse_smoke_json
    from envspec.report.matrix import _benchmark_text

    parsed = parse_smoke_json((out / "smoke.json").read_bytes())
    assert parsed.benchmark is not None and parsed.benchmark.it_per_s == bench["it_per_s"]
    text = _benchmark_text(parsed.benchmark)
    assert text is not None and "64×64 batch 2" in text
