"""Find and load the model to smoke-test, offline: the tiny one, a diffusers folder, or one file.

A pickled ``.ckpt`` is never unpickled unless the user passed ``--trust-pickle``; it is then
converted once to a ``.safetensors`` file beside it, and that file is what gets loaded.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from envspec.smoke.atomic import atomic_open
from envspec.smoke.errors import SmokeSetupError

if TYPE_CHECKING:
    import torch

CONFIG_DIR: Final = Path(__file__).parent / "configs" / "sd-v1"
OLD_GUIDE_CHECKPOINT: Final = Path("models/ldm/stable-diffusion-v1/model.ckpt")
CLIP_TOKENIZER_REPO: Final = "openai/clip-vit-large-patch14"
MIN_CLIP_VOCAB: Final = 49000  # CLIP ViT-L/14 has 49408 tokens
PICKLE_SUFFIXES: Final = (".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelSource:
    kind: Literal["folder", "single_file"]
    path: Path  # the folder, or the .safetensors file that will be loaded
    given: Path  # what the user named (the .ckpt when it was converted)
    note: str
    config: Path = CONFIG_DIR  # diffusers-layout config folder for a single file


def locate(model: str | None, cwd: Path) -> Path | None:
    """``--model PATH``, else the old guide's checkpoint under ``cwd`` if present, else None (tiny)."""
    if model is not None:
        path = Path(model).expanduser()
        if not path.exists():
            raise SmokeSetupError(f"--model {model}: no such file or folder")
        return path
    default = cwd / OLD_GUIDE_CHECKPOINT
    return default if default.is_file() else None


def prepare(path: Path, trust_pickle: bool, config: str | None = None) -> ModelSource:
    """Decide how ``path`` loads; convert a trusted pickle to safetensors (once)."""
    source = _prepare(path, trust_pickle)
    if config is None or source.kind == "folder":
        return source
    folder = Path(config)
    if not (folder / "model_index.json").is_file():
        raise SmokeSetupError(f"--config {config}: no model_index.json there (a diffusers-layout config folder)")
    return ModelSource(source.kind, source.path, source.given, f"{source.note}, config {folder}", folder)


def _prepare(path: Path, trust_pickle: bool) -> ModelSource:
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise SmokeSetupError(
                f"{path} is a folder without model_index.json",
                tip="pass a diffusers pipeline folder, or a .safetensors/.ckpt file",
            )
        return ModelSource("folder", path, path, "diffusers folder")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return ModelSource("single_file", path, path, "single-file safetensors")
    if suffix in PICKLE_SUFFIXES:
        converted = path.with_suffix(".safetensors")
        if converted.is_file() and converted.stat().st_mtime >= path.stat().st_mtime:
            return ModelSource("single_file", converted, path, f"using {converted.name} converted earlier")
        if not trust_pickle:
            raise SmokeSetupError(
                f"{path.name} is a pickle: loading it can run arbitrary code, so it is refused",
                tip=f"if you trust its source, pass --trust-pickle to convert it once to {converted.name}",
            )
        count = convert_pickle(path, converted)
        return ModelSource(
            "single_file", converted, path, f"converted {path.name} to {converted.name} ({count} tensors)"
        )
    raise SmokeSetupError(
        f"{path}: unknown model format {suffix or '(no suffix)'}",
        tip="pass a diffusers folder, a .safetensors file or a .ckpt file",
    )


_SAFETENSORS_DTYPES: Final = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write the safetensors format (8-byte header size, JSON header, raw little-endian data) atomically.

    Written here with the standard library and torch only, because the smoke test may import
    nothing but torch, diffusers, transformers, numpy and pillow.
    """
    import sys

    if sys.byteorder != "little":
        raise SmokeSetupError("safetensors conversion needs a little-endian machine")
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    ordered = sorted(tensors)
    for name in ordered:
        tensor = tensors[name]
        kind = str(tensor.dtype).removeprefix("torch.")
        if kind not in _SAFETENSORS_DTYPES:
            raise SmokeSetupError(f"tensor {name} has dtype {kind}, which safetensors cannot store")
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[kind],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        handle.write(len(raw).to_bytes(8, "little"))
        handle.write(raw)
        for name in ordered:
            tensor = tensors[name].detach().to("cpu").contiguous()
            if tensor.numel():
                handle.write(tensor.reshape(-1).view(_byte_dtype()).numpy().tobytes())


def _byte_dtype() -> torch.dtype:
    import torch

    return torch.uint8


def convert_pickle(source: Path, target: Path) -> int:
    """Unpickle ``source`` (the user trusted it) and write its tensors to ``target``; return the count."""
    import torch

    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception:
        try:  # the user passed --trust-pickle: full unpickling is what they allowed
            obj = torch.load(source, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise SmokeSetupError(f"cannot read {source}: {type(exc).__name__}: {exc}") from None
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise SmokeSetupError(f"{source} holds a {type(obj).__name__}, not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise SmokeSetupError(f"{source} holds no tensors")
    write_safetensors(target, tensors, {"format": "pt", "converted_from": source.name})
    return len(tensors)


@functools.lru_cache(maxsize=4)
def find_tokenizer(checkpoint: Path, explicit: str | None) -> Any:
    """The CLIP tokenizer for a single-file checkpoint (its vocabulary is not shipped by envspec)."""
    from transformers import CLIPTokenizer

    candidates = [Path(explicit)] if explicit else [checkpoint.parent / "tokenizer"]
    for folder in candidates:
        if (folder / "vocab.json").is_file() or (folder / "tokenizer.json").is_file():
            return CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
        if explicit:
            raise SmokeSetupError(f"--tokenizer {explicit}: no vocab.json or tokenizer.json there")
    try:
        cached = CLIPTokenizer.from_pretrained(CLIP_TOKENIZER_REPO, local_files_only=True)
    except Exception:
        cached = None
    # transformers 5 returns an empty tokenizer (3 special tokens) instead of failing when not cached
    if cached is not None and len(cached) > MIN_CLIP_VOCAB:
        return cached
    raise SmokeSetupError(
        f"no CLIP tokenizer for {checkpoint.name}: none beside it and {CLIP_TOKENIZER_REPO} "
        "is not in the local Hugging Face cache (envspec does not ship the CLIP vocabulary)",
        tip=f"put vocab.json and merges.txt of {CLIP_TOKENIZER_REPO} in "
        f"{checkpoint.parent / 'tokenizer'}, or pass --tokenizer DIR",
    )


def load_pipeline(source: ModelSource, torch_dtype: torch.dtype, tokenizer_dir: str | None) -> Any:
    """Load a StableDiffusionPipeline offline with a DDIM scheduler (the old guide's sampler)."""
    import warnings

    from diffusers import DDIMScheduler, StableDiffusionPipeline

    quiet_progress()
    with warnings.catch_warnings():
        # diffusers >= 0.4x renamed torch_dtype to dtype; older ones in conda envs know only torch_dtype
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        pipe = _load(source, torch_dtype, tokenizer_dir, StableDiffusionPipeline)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def quiet_progress() -> None:
    """No tqdm bars from the libraries: the smoke test's output is its one-line verdict."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _load(source: ModelSource, torch_dtype: torch.dtype, tokenizer_dir: str | None, pipeline_class: Any) -> Any:
    import importlib.util

    StableDiffusionPipeline = pipeline_class
    if source.kind == "folder":
        # without accelerate diffusers warns and falls back to this anyway
        low_mem = {} if importlib.util.find_spec("accelerate") else {"low_cpu_mem_usage": False}
        pipe = StableDiffusionPipeline.from_pretrained(
            str(source.path),
            torch_dtype=torch_dtype,
            **low_mem,
            local_files_only=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    else:
        tokenizer = find_tokenizer(source.given, tokenizer_dir)
        pipe = StableDiffusionPipeline.from_single_file(
            str(source.path),
            config=str(source.config),
            local_files_only=True,
            torch_dtype=torch_dtype,
            tokenizer=tokenizer,
            safety_checker=None,
            feature_extractor=None,
        )
    return pipe


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header (reads only the header, not the data)."""
    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if not 0 < size < 100_000_000:
            raise SmokeSetupError(f"{path} is not a safetensors file (header size {size})")
        header = json.loads(handle.read(size))
    return {name: list(info["shape"]) for name, info in header.items() if name != "__metadata__"}


def single_file_missing(path: Path, config: Path) -> list[str] | None:
    """Weights the components need that the single-file checkpoint lacks (None: cannot tell).

    ``from_single_file`` does not warn about a missing weight: without accelerate the layer keeps
    its random initialisation silently. So the checkpoint's keys are put through diffusers' own
    LDM-to-diffusers conversion on the meta device (shapes only, no data) and compared with
    what each component built from ``config`` expects.
    """
    import torch

    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from diffusers.loaders.single_file_utils import (
            convert_ldm_clip_checkpoint,
            convert_ldm_unet_checkpoint,
            convert_ldm_vae_checkpoint,
        )
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError:  # another diffusers layout: the load warnings are all there is
        return None
    shapes = safetensors_shapes(path)
    with torch.device("meta"):
        checkpoint = {name: torch.empty(shape) for name, shape in shapes.items()}
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(config / "vae")))
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / "text_encoder")))
    missing: list[str] = []
    try:
        converted = {
            "unet": set(convert_ldm_unet_checkpoint(checkpoint, unet.config)),
            "vae": set(convert_ldm_vae_checkpoint(checkpoint, vae.config)),
            "text_encoder": {k.removeprefix("text_model.") for k in convert_ldm_clip_checkpoint(checkpoint)},
        }
    except (KeyError, IndexError, ValueError) as exc:
        return [f"checkpoint does not convert as SD-v1 ({type(exc).__name__}: {exc})"]
    for name, module in (("unet", unet), ("vae", vae), ("text_encoder", text)):
        wanted = {k.removeprefix("text_model.") for k in module.state_dict()}
        missing += [f"{name}.{key}" for key in sorted(wanted - converted[name])]
    return missing
