"""Write a diffusers SD-v1 pipeline as an original (CompVis/LDM) single-file state dict.

Test support only: the exact inverse of diffusers' own ``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint`` and ``convert_ldm_clip_checkpoint``, so that the single-file
loading path (``from_single_file`` with a local config folder) runs on a tiny model offline.
"""

from __future__ import annotations

from typing import Any

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTENTION = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _first(key: str, pairs: tuple[tuple[str, str], ...]) -> str:
    head, _, tail = key.partition(".")
    for new, old in pairs:
        if key.startswith(new + "."):
            return old + key[len(new) :]
    return f"{head}.{tail}" if tail else head


def unet_key(key: str, config: Any) -> str:
    per_down = int(config["layers_per_block"]) + 1
    parts = key.split(".")
    for new, old in _UNET_FIXED.items():
        if key.startswith(new + "."):
            return old + key[len(new) :]
    if parts[0] == "down_blocks":
        block, kind, rest = int(parts[1]), parts[2], parts[3:]
        if kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.w -> input_blocks.i.0.op.w
            return f"input_blocks.{1 + block * per_down + per_down - 1}.0.op." + ".".join(rest[2:])
        layer = int(rest[0])
        index = 1 + block * per_down + layer
        inner = ".".join(rest[1:])
        if kind == "resnets":
            return f"input_blocks.{index}.0." + _first(inner, _UNET_RESNET)
        return f"input_blocks.{index}.1." + inner
    if parts[0] == "mid_block":
        kind, layer, inner = parts[1], int(parts[2]), ".".join(parts[3:])
        if kind == "resnets":
            return f"middle_block.{layer * 2}." + _first(inner, _UNET_RESNET)
        return "middle_block.1." + inner
    if parts[0] == "up_blocks":
        block, kind, rest = int(parts[1]), parts[2], parts[3:]
        if kind == "upsamplers":
            index = block * per_down + per_down - 1
            slot = 2 if block_has_attentions(config, block) else 1
            return f"output_blocks.{index}.{slot}.conv." + ".".join(rest[2:])
        layer = int(rest[0])
        index = block * per_down + layer
        inner = ".".join(rest[1:])
        if kind == "resnets":
            return f"output_blocks.{index}.0." + _first(inner, _UNET_RESNET)
        return f"output_blocks.{index}.1." + inner
    raise KeyError(key)


def block_has_attentions(config: Any, up_block: int) -> bool:
    return "CrossAttn" in str(config["up_block_types"][up_block])


def vae_key(key: str, config: Any) -> str:
    parts = key.split(".")
    side = parts[0]
    if side in ("quant_conv", "post_quant_conv"):
        return key
    rest = parts[1:]
    if rest[0] in ("conv_in", "conv_out"):
        return key
    if rest[0] == "conv_norm_out":
        return f"{side}.norm_out." + ".".join(rest[1:])
    if rest[0] == "mid_block":
        kind, layer, inner = rest[1], int(rest[2]), ".".join(rest[3:])
        if kind == "resnets":
            return f"{side}.mid.block_{layer + 1}." + inner.replace("conv_shortcut", "nin_shortcut")
        return f"{side}.mid.attn_1." + _first(inner, _VAE_ATTENTION)
    if rest[0] == "down_blocks":
        block, kind = int(rest[1]), rest[2]
        if kind == "downsamplers":
            return f"{side}.down.{block}.downsample." + ".".join(rest[4:])
        return f"{side}.down.{block}.block.{rest[3]}." + ".".join(rest[4:]).replace("conv_shortcut", "nin_shortcut")
    if rest[0] == "up_blocks":
        block = len(config["up_block_types"]) - 1 - int(rest[1])
        kind = rest[2]
        if kind == "upsamplers":
            return f"{side}.up.{block}.upsample." + ".".join(rest[4:])
        return f"{side}.up.{block}.block.{rest[3]}." + ".".join(rest[4:]).replace("conv_shortcut", "nin_shortcut")
    raise KeyError(key)


def ldm_state_dict(pipe: Any) -> dict[str, Any]:
    """The original single-file state dict of an SD-v1-layout diffusers pipeline."""
    import torch

    out: dict[str, Any] = {}
    for key, value in pipe.unet.state_dict().items():
        out[UNET_PREFIX + unet_key(key, pipe.unet.config)] = value
    for key, value in pipe.vae.state_dict().items():
        as_conv = value.ndim == 2 and ".mid_block.attentions." in key and "group_norm" not in key
        # LDM keeps the VAE's attention projections as 1x1 convolutions
        out[VAE_PREFIX + vae_key(key, pipe.vae.config)] = value[:, :, None, None] if as_conv else value
    for key, value in pipe.text_encoder.state_dict().items():
        out[CLIP_PREFIX + key.removeprefix("text_model.")] = value
    positions = int(pipe.text_encoder.config.max_position_embeddings)
    out.setdefault(CLIP_PREFIX + "embeddings.position_ids", torch.arange(positions)[None])
    return out
