"""`--benchmark` on CPU at a small size (the GPU figures come from benchmarks/gpu_smoke.sh)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envspec.smoke import benchmark, peaks

Smoke = Callable[..., tuple[int, dict[str, Any], Path]]


def test_unet_flops_match_the_sd1_reference() -> None:
    pytest.importorskip("diffusers")
    # domain notes: SD-1 UNet, 512x512, guidance batch 2 = 1606.5 GFLOP per step
    assert benchmark.unet_gflop_per_step(512) == pytest.approx(1606.5, abs=0.1)


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


@pytest.mark.slow
def test_cpu_benchmark_at_small_size(smoke: Smoke) -> None:
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
    assert bench["unet_gflop_per_step"] == pytest.approx(1606.5 / 64, rel=0.1)  # FLOPs scale with pixels
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
