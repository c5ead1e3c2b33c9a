"""``--benchmark [--compile]``: SD-1 at full size with random weights, timed like a real 512x512 run.

The UNet, VAE and text encoder are built from the shipped SD-v1 configs (``configs/sd-v1``), so
each step costs what the real model costs, with nothing to download. Classifier-free guidance
doubles the UNet batch (2). FLOPs per step are counted once with torch's FlopCounterMode on a
meta-device copy of the UNet (shape arithmetic only, no compute on the device).

The fast path (``--compile``): fp16 on CUDA, PyTorch SDPA attention (diffusers' default on
torch 2), fused QKV projections, a channels_last UNet, cuDNN autotuning, inductor's
conv-1x1-as-matmul and coordinate-descent tuning, and ``torch.compile(unet, mode=--compile-mode)``
("reduce-overhead", i.e. CUDA graphs, by default: at ~11 ms per step launch overhead matters;
"max-autotune-no-cudagraphs" autotunes the matmuls instead, at the price of a long compile). Eager runs
(no ``--compile``) are the plain diffusers baseline, fp16 and SDPA only.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from envspec.smoke import checks, loader, peaks, report, run, tiny
from envspec.smoke.errors import SmokeSetupError

BATCH: Final = 2  # classifier-free guidance: unconditional + conditional
TEXT_TOKENS: Final = 77


def figure(value: float) -> float:
    """Two decimals, and at least four significant digits for small values (a CPU's 0.1257 it/s
    must not become 0.13, nor its 0.004 TFLOP/s 0.0)."""
    if value <= 0 or not math.isfinite(value):
        return round(value, 2) if math.isfinite(value) else 0.0
    return round(value, max(2, 3 - math.floor(math.log10(value))))


def build_full_size(device_type: str, dtype: Any) -> Any:
    """A StableDiffusionPipeline of SD-1's size with random weights, created directly on the device."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    loader.quiet_progress()
    torch.manual_seed(0)
    with torch.device(device_type):  # initialise on the GPU: seconds instead of a minute on the CPU
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(loader.CONFIG_DIR / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(loader.CONFIG_DIR / "vae")))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(str(loader.CONFIG_DIR / "text_encoder")))
    with tempfile.TemporaryDirectory(prefix="envspec-bench-tok-") as folder:
        for name, text in tiny.tokenizer_files().items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    scheduler = DDIMScheduler.from_config(DDIMScheduler.load_config(str(loader.CONFIG_DIR / "scheduler")))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    for module in (unet, vae, text_encoder):  # nn.Module.to: diffusers' own .to() warns about dtype casts
        torch.nn.Module.to(module, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unet_gflop_per_step(size: int) -> float:
    """FLOPs of one guided UNet call at ``size`` px, counted on the meta device (no compute)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(loader.CONFIG_DIR / "unet")))
        latents = torch.empty(BATCH, 4, size // 8, size // 8)
        text = torch.empty(BATCH, TEXT_TOKENS, int(unet.config.cross_attention_dim))
        timestep = torch.tensor(500)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(latents, timestep, encoder_hidden_states=text)
    return float(counter.get_total_flops()) / 1e9


def apply_fast_path(pipe: Any, opts: run.Options, device_type: str) -> list[str]:
    """channels_last, fused QKV, inductor settings and torch.compile of the UNet; return what was done."""
    import torch

    done: list[str] = []
    channels_last = opts.compile if opts.channels_last is None else opts.channels_last
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        done.append("channels_last")
    if not opts.compile:
        return done
    if device_type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick the fastest convolution kernels for these shapes
        done.append("cudnn.benchmark")
    try:
        pipe.fuse_qkv_projections()
        done.append("fused_qkv")
    except Exception:  # older diffusers: no fused projections
        pass
    inductor = getattr(getattr(torch, "_inductor", None), "config", None)
    if inductor is not None:
        for key, value in (("conv_1x1_as_mm", True), ("coordinate_descent_tuning", True), ("epilogue_fusion", False)):
            if hasattr(inductor, key):
                setattr(inductor, key, value)
        done.append("inductor_tuning")
    pipe.unet = torch.compile(pipe.unet, mode=opts.compile_mode)
    done.append(f"torch.compile({opts.compile_mode})")
    return done


def run_benchmark(opts: run.Options, rep: dict[str, Any]) -> bytes:
    rep["mode"] = "benchmark"
    rep["timings_s"]["import"] = round(run.import_libraries(), 3)
    rep["versions"] = report.library_versions()
    choice, found = run.select_device(opts, rep)
    size = opts.resolution or run.MODEL_RESOLUTION
    if size % 8:
        raise SmokeSetupError(f"resolution {size} is not a multiple of 8")
    rep["resolution"] = [size, size]
    rep["steps"] = opts.benchmark_steps
    rep["model"] = "SD-1 architecture, random weights (configs/sd-v1)"
    dtype = run.torch_dtype(rep["dtype"])

    start = time.perf_counter()
    pipe = build_full_size(choice.device, dtype)
    rep["timings_s"]["load"] = round(time.perf_counter() - start, 3)
    found.append(checks.params_placed(run.named_parameters(pipe), choice.device, rep["dtype"]))
    gflop = unet_gflop_per_step(size)
    fast = apply_fast_path(pipe, opts, choice.device)
    print(
        f"benchmark: {size}x{size}, batch {BATCH}, {rep['dtype']} on {choice.name}; "
        f"{', '.join(fast) or 'eager'}; {gflop:.1f} GFLOP/step",
        file=sys.stderr,
        flush=True,
    )

    sync = run.synchronizer(choice.device)
    warm = dataclasses.replace(opts, seed=opts.seed + 1)
    start = time.perf_counter()
    run.denoise(pipe, warm, run.Job(size, size, opts.warmup_steps, choice.device))  # compiles on the first call
    sync()
    warmup_s = time.perf_counter() - start
    if opts.compile:  # a second short warm-up: recompiles (e.g. dynamic shapes) must not enter the timing
        run.denoise(pipe, warm, run.Job(size, size, 2, choice.device))

    result = run.generate(pipe, opts, run.Job(size, size, opts.benchmark_steps, choice.device))
    rep["timings_s"].update(
        first_step=round(result.first_step_s, 4),
        median_step=round(result.median_step_s, 4),
        decode=round(result.decode_s, 4),
    )
    pixels = run.to_pixels(result.image)
    found.append(checks.finite(result.image))
    found.append(checks.shape(result.image, (1, size, size, 3)))
    rep["checks"] = [c.as_dict() for c in found]
    run.fill_image(rep, pixels)

    median = result.median_step_s
    it_per_s = 1.0 / median if median > 0 else 0.0
    tflops = gflop * it_per_s / 1000.0
    peak = peaks.peak_tflops(choice.name, rep["dtype"]) if choice.device == "cuda" else None
    rep["benchmark"] = {
        "it_per_s": figure(it_per_s),
        "ms_per_step": round(median * 1000.0, 3),
        "unet_gflop_per_step": round(gflop, 1),
        "unet_tflops": figure(tflops),
        "peak_tflops": peak,
        "peak_share": round(tflops / peak, 4) if peak else None,
        "compiled": opts.compile,
        "compile_s": round(warmup_s, 1) if opts.compile else None,
        "batch": BATCH,
        "resolution": size,
        "dtype": rep["dtype"],
    }
    return run.png_bytes(pixels[0])
