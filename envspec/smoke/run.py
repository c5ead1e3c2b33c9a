"""One smoke run as a sequence of steps: promise -> device -> load -> generate -> check -> report.

Each step fills the report dict (schema in :mod:`envspec.smoke.report`). Setup problems raise
:class:`SmokeSetupError` (exit 10); failed checks give verdict "fail" (exit 1).
"""

from __future__ import annotations

import io
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from envspec.smoke import checks, device, loader, report, tiny
from envspec.smoke.capture import load_warnings
from envspec.smoke.checks import Check
from envspec.smoke.errors import SmokeSetupError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_RESOLUTION: Final = 512  # the old guide's defaults: 512x512, DDIM 50 steps, scale 7.5
MODEL_STEPS: Final = 50
COMPONENTS: Final = ("unet", "vae", "text_encoder")


@dataclass(frozen=True)
class Options:
    out: Path
    cwd: Path
    device: str | None = None
    expect: str | None = None
    target: str | None = None
    allow_cpu: bool = False
    model: str | None = None
    trust_pickle: bool = False
    tokenizer: str | None = None
    config: str | None = None
    resolution: int | None = None
    steps: int | None = None
    seed: int = 0
    guidance: float = 7.5
    prompt: str = tiny.PROMPT
    benchmark: bool = False
    compile: bool = False
    compile_mode: str = "reduce-overhead"
    channels_last: bool | None = None
    benchmark_steps: int = 20
    warmup_steps: int = 3


@dataclass(frozen=True)
class Job:
    """One image to make: its size, DDIM steps and the device it runs on."""

    height: int
    width: int
    steps: int
    device: str


@dataclass
class Generated:
    image: npt.NDArray[np.float32]  # (1, H, W, 3) floats in 0..1 as decoded (NaN stays NaN)
    first_step_s: float
    median_step_s: float
    decode_s: float


def synchronizer(device_type: str) -> Callable[[], None]:
    """A function that waits for queued GPU work, so wall-clock timings are true."""
    import torch

    def cuda() -> None:
        torch.cuda.synchronize()

    def mps() -> None:
        torch.mps.synchronize()

    def cpu() -> None:
        return None

    return {"cuda": cuda, "mps": mps}.get(device_type, cpu)


def denoise(pipe: Any, opts: Options, job: Job) -> tuple[Any, float, float]:
    """Run the denoising loop; return (latents, first step s, median step s)."""
    import torch

    sync = synchronizer(job.device)
    marks: list[float] = []

    def on_step(_pipe: Any, _i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        sync()
        marks.append(time.perf_counter())
        return kwargs

    generator = torch.Generator(device="cpu").manual_seed(opts.seed)  # same noise on every device
    sync()
    start = time.perf_counter()
    with torch.inference_mode():
        latents = pipe(
            opts.prompt,
            height=job.height,
            width=job.width,
            num_inference_steps=job.steps,
            guidance_scale=opts.guidance,
            generator=generator,
            output_type="latent",
            callback_on_step_end=on_step,
        ).images
    if not marks:
        raise SmokeSetupError("the pipeline ran no denoising step")
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    first = marks[0] - start
    return latents, first, statistics.median(gaps) if gaps else first


def decode(pipe: Any, latents: Any, device_type: str) -> npt.NDArray[np.float32]:
    """VAE-decode latents to (N, H, W, 3) floats in 0..1, keeping NaN/inf visible to the checks."""
    import torch

    with torch.inference_mode():
        image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
        image = (image / 2 + 0.5).clamp(0, 1)
        result: npt.NDArray[np.float32] = image.float().permute(0, 2, 3, 1).cpu().numpy()
    synchronizer(device_type)()
    return result


def generate(pipe: Any, opts: Options, job: Job) -> Generated:
    latents, first, median = denoise(pipe, opts, job)
    start = time.perf_counter()
    image = decode(pipe, latents, job.device)
    return Generated(image, first, median, time.perf_counter() - start)


def to_pixels(image: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """What the PNG holds: NaN becomes 0 (black), as diffusers' own conversion does."""
    import numpy as np

    clean = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    pixels: npt.NDArray[np.uint8] = (clean * 255).round().astype(np.uint8)
    return pixels


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def named_parameters(pipe: Any) -> Iterator[tuple[str, Any]]:
    for component in COMPONENTS:
        module = getattr(pipe, component, None)
        if module is None:
            continue
        for name, param in module.named_parameters():
            yield f"{component}.{name}", param


def tokenizer_check(pipe: Any, prompt: str) -> Check:
    tok = pipe.tokenizer
    ids = [int(i) for i in tok(prompt).input_ids]
    specials = (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id)
    return checks.tokenizer_works(ids, specials, int(pipe.text_encoder.config.vocab_size))


def import_libraries() -> float:
    """Import the five libraries the smoke test needs; return the seconds it took."""
    import importlib.util

    missing = [
        name for name in ("torch", "diffusers", "transformers", "numpy", "PIL") if not importlib.util.find_spec(name)
    ]
    if missing:
        raise SmokeSetupError(
            f"this environment lacks {', '.join('pillow' if m == 'PIL' else m for m in missing)}",
            tip="the smoke test needs torch, diffusers, transformers, numpy and pillow (install the target's lockfile)",
        )
    start = time.perf_counter()
    try:
        import diffusers  # noqa: F401
        import numpy  # noqa: F401
        import PIL  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:  # present but broken (e.g. a missing shared library)
        raise SmokeSetupError(f"cannot import {exc.name or exc}: {exc}") from None
    return time.perf_counter() - start


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def select_device(opts: Options, rep: dict[str, Any]) -> tuple[device.DeviceChoice, list[Check]]:
    promise = device.find_promise(opts.expect, opts.target)
    rep["target"] = promise.target
    rep["promised_device"] = promise.device
    choice = device.choose_device(device.probe_torch(), opts.device, promise, opts.allow_cpu)
    rep["device"] = choice.device
    rep["device_name"] = choice.name
    rep["dtype"] = device.dtype_name(choice.device)
    found: list[Check] = []
    if promise.device is not None:
        detail = (
            f"promised {promise.device} ({promise.source}), running on {choice.device}"
            if choice.promise_met
            else f"NOT MET: {choice.note}"
        )
        found.append(Check("promised_device", True, detail))  # a miss without --allow-cpu is exit 10
    return choice, found


def run_smoke(opts: Options, rep: dict[str, Any]) -> bytes | None:
    """The smoke test proper (tiny or real model); fills ``rep``, returns the PNG bytes."""
    # The scratch folder (tiny model) lives as long as the pipeline: its weights may be memory-mapped,
    # and Windows cannot delete a mapped file (then the folder is left to the system's temp cleanup).
    with tempfile.TemporaryDirectory(prefix="envspec-smoke-", ignore_cleanup_errors=True) as scratch:
        return _smoke_in(Path(scratch), opts, rep)


def _smoke_in(scratch: Path, opts: Options, rep: dict[str, Any]) -> bytes | None:
    rep["timings_s"]["import"] = round(import_libraries(), 3)
    rep["versions"] = report.library_versions()
    choice, found = select_device(opts, rep)
    located = loader.locate(opts.model, opts.cwd)
    if located is None:
        rep["mode"] = "tiny"
        folder = tiny.write_tiny_model(scratch / "tiny")
        source = loader.ModelSource("folder", folder, folder, "tiny random SD-v1-shaped pipeline")
        size, steps = opts.resolution or tiny.TINY_RESOLUTION, opts.steps or tiny.TINY_STEPS
    else:
        rep["mode"] = "model"
        rep["model"] = str(located)
        source = loader.prepare(located, opts.trust_pickle, opts.config)
        size, steps = opts.resolution or MODEL_RESOLUTION, opts.steps or MODEL_STEPS
    if size % 8:
        raise SmokeSetupError(f"resolution {size} is not a multiple of 8")
    rep["resolution"] = [size, size]
    rep["steps"] = steps
    if source.kind == "single_file":
        loader.find_tokenizer(source.given, opts.tokenizer)  # a setup error (exit 10) comes before the checks
        lacking = loader.single_file_missing(source.path, source.config)
        if lacking:  # loading would silently keep random weights (or crash with accelerate)
            found.append(checks.weights_loaded([], COMPONENTS, missing=lacking))
            rep["checks"] = [c.as_dict() for c in found]
            return None
    start = time.perf_counter()
    with load_warnings() as messages:
        pipe = loader.load_pipeline(source, torch_dtype(rep["dtype"]), opts.tokenizer)
    on_meta = [name for name, param in named_parameters(pipe) if param.device.type == "meta"]
    found.append(checks.weights_loaded(messages, COMPONENTS, on_meta))
    if on_meta:  # nothing can run without those weights: report the failed check, no image
        rep["checks"] = [c.as_dict() for c in found]
        return None
    pipe = pipe.to(choice.device)
    rep["timings_s"]["load"] = round(time.perf_counter() - start, 3)
    found.append(checks.params_placed(named_parameters(pipe), choice.device, rep["dtype"]))
    found.append(tokenizer_check(pipe, opts.prompt))

    job = Job(size, size, steps, choice.device)
    result = generate(pipe, opts, job)
    rep["timings_s"].update(
        first_step=round(result.first_step_s, 4),
        median_step=round(result.median_step_s, 4),
        decode=round(result.decode_s, 4),
    )
    pixels = to_pixels(result.image)
    found.append(checks.finite(result.image))
    found.append(checks.shape(result.image, (1, size, size, 3)))
    found.append(checks.not_blank(pixels))
    again = to_pixels(generate(pipe, opts, job).image) if choice.device == "cpu" else None
    found.append(checks.repeatable(pixels, again, choice.device))
    rep["checks"] = [c.as_dict() for c in found]
    fill_image(rep, pixels)
    return png_bytes(pixels[0])


def fill_image(rep: dict[str, Any], pixels: npt.NDArray[np.uint8]) -> None:
    import numpy as np

    scaled = pixels.astype(np.float64) / 255.0
    rep["image"].update(
        height=int(pixels.shape[1]),
        width=int(pixels.shape[2]),
        mean=round(float(scaled.mean()), 5),
        std=round(float(scaled.std()), 5),
        distinct_values=int(np.unique(pixels).size),
    )


def peak_device_mib(device_type: str) -> float | None:
    try:
        import torch

        if device_type == "cuda":
            return round(float(torch.cuda.max_memory_allocated()) / 2**20, 1)
        if device_type == "mps":  # no peak counter on MPS: the driver's allocation at the end
            return round(float(torch.mps.driver_allocated_memory()) / 2**20, 1)
    except Exception:
        return None
    return None


def conclude(rep: dict[str, Any]) -> int:
    """Set verdict and message from the checks; return the exit code (0 pass, 1 fail)."""
    failed = [c for c in rep["checks"] if not c["passed"]]
    where = f"{rep['device']} ({rep['device_name']}), {rep['dtype']}"
    what = f"{rep['mode']} {rep['resolution'][0]}x{rep['resolution'][1]}, {rep['steps']} steps"
    target = rep["target"] or "no target"
    if failed:
        rep["verdict"] = "fail"
        reasons = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
        rep["message"] = f"{target}: {len(failed)} of {len(rep['checks'])} checks failed on {where}: {reasons}"
        return 1
    rep["verdict"] = "pass"
    total = rep["timings_s"]["total"]
    timing = f" in {total:.1f} s" if isinstance(total, float) else ""
    promise = ""
    if rep["promised_device"] and rep["promised_device"] != rep["device"]:
        why = "allowed by --allow-cpu" if rep.get("allow_cpu") else "forced by --device"
        promise = f" (promised {rep['promised_device']} NOT met, {why})"
    bench = rep.get("benchmark")
    if bench:
        share = f", {bench['peak_share']:.1%} of {bench['peak_tflops']} peak" if bench["peak_share"] else ""
        kind = "compiled" if bench["compiled"] else "eager"
        what = (
            f"benchmark {kind} {bench['resolution']}px batch {bench['batch']}: {bench['it_per_s']} it/s, "
            f"{bench['ms_per_step']} ms/step, {bench['unet_tflops']} UNet TFLOP/s{share}"
        )
    rep["message"] = f"{target}: {len(rep['checks'])} checks passed on {where}, {what}{timing}{promise}"
    return 0
