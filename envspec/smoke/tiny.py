"""A tiny SD-v1-shaped pipeline with random weights, written to disk fully offline.

Same classes and wiring as Stable Diffusion v1 (UNet2DConditionModel with cross-attention,
AutoencoderKL with an 8x latent factor, CLIPTextModel, a byte-level BPE CLIPTokenizer, DDIM),
only narrow. It is saved with ``save_pretrained`` and read back by the real loading path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

PROMPT: Final = "a photograph of an astronaut riding a horse"
_TINY_WORDS: Final = [*PROMPT.split(), "on", "mars", "painting", "of", "the", "moon"]
TINY_RESOLUTION: Final = 128
TINY_STEPS: Final = 8
TEXT_VOCAB: Final = 1000


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable-character table (the alphabet of byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def tokenizer_files(words: list[str] = _TINY_WORDS) -> dict[str, str]:
    """vocab.json, merges.txt and tokenizer_config.json of a small byte-level BPE CLIP tokenizer.

    The alphabet covers every byte (so any prompt encodes); the merges build whole tokens for a
    few words, as a real BPE vocabulary does.
    """
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet]
    merges: list[str] = []
    for word in dict.fromkeys(words):
        parts = list(word)
        parts[-1] += "</w>"
        while len(parts) > 1:
            merge = f"{parts[0]} {parts[1]}"
            joined = parts[0] + parts[1]
            if merge not in merges:
                merges.append(merge)
            if joined not in tokens:
                tokens.append(joined)
            parts = [joined, *parts[2:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) > TEXT_VOCAB:
        raise ValueError(f"tiny vocabulary has {len(vocab)} tokens, more than {TEXT_VOCAB}")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "tokenizer_config.json": json.dumps(config, indent=2),
    }


def write_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline with seeded random weights and ``save_pretrained`` it to ``directory``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from envspec.smoke.loader import quiet_progress

    quiet_progress()
    directory.mkdir(parents=True, exist_ok=True)
    tok_dir = directory / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    for name, text in tokenizer_files().items():
        (tok_dir / name).write_text(text, encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        sample_size=TINY_RESOLUTION,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 32, 64, 64),  # four blocks: 8x down-sampling as in SD-v1
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=32,
        scaling_factor=0.18215,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=TEXT_VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_act="quick_gelu",
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
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
    pipe.save_pretrained(str(directory))
    for path in tok_dir.iterdir():
        path.unlink()
    tok_dir.rmdir()
    return directory
