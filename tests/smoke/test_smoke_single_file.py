"""Single-file checkpoints (the old guide's model.ckpt): conversion, loading with a config folder, coverage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from envspec.smoke import loader

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from ldm_format import ldm_state_dict  # noqa: E402  (tests/smoke is on sys.path via its conftest)

Smoke = Callable[..., tuple[int, dict[str, Any], Path]]
FAST = ("--resolution", "64", "--steps", "2")


@pytest.fixture(scope="module")
def tiny_ldm(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pipe = loader.load_pipeline(loader.ModelSource("folder", tiny_model_dir, tiny_model_dir, ""), torch.float32, None)
    return ldm_state_dict(pipe)


def single_file_args(config: Path) -> tuple[str, ...]:
    return ("--config", str(config), "--tokenizer", str(config / "tokenizer"), *FAST)


def test_trusted_ckpt_loads_as_single_file_and_matches_the_folder(
    smoke: Smoke, tiny_model_dir: Path, tiny_ldm: dict[str, Any], tmp_path: Path
) -> None:
    ckpt = tmp_path / "models" / "model.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": tiny_ldm, "global_step": 470000}, ckpt)
    code, data, out = smoke("--model", str(ckpt), "--trust-pickle", *single_file_args(tiny_model_dir))
    assert code == 0, data["message"]
    assert data["mode"] == "model" and data["model"] == str(ckpt)
    assert (tmp_path / "models" / "model.safetensors").is_file()
    code, _, folder_out = smoke("--model", str(tiny_model_dir), *FAST)
    assert code == 0
    assert (out / "smoke.png").read_bytes() == (folder_out / "smoke.png").read_bytes()  # same weights, same pixels


@pytest.mark.parametrize(
    "dropped",
    [
        "model.diffusion_model.out.2.weight",
        "first_stage_model.decoder.conv_out.weight",
        "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
    ],
)
def test_weight_missing_from_a_single_file_fails(
    smoke: Smoke, tiny_model_dir: Path, tiny_ldm: dict[str, Any], tmp_path: Path, dropped: str
) -> None:
    """from_single_file never warns about a missing weight; the coverage check must catch it."""
    path = tmp_path / "sd.safetensors"
    loader.write_safetensors(path, {k: v for k, v in tiny_ldm.items() if k != dropped}, {})
    code, data, out = smoke("--model", str(path), *single_file_args(tiny_model_dir))
    assert code == 1 and [c["name"] for c in data["checks"] if not c["passed"]] == ["weights_loaded"]
    assert "missing from the checkpoint" in data["message"]
    assert not (out / "smoke.png").exists()


def test_config_folder_must_be_a_diffusers_layout(smoke: Smoke, tiny_ldm: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "sd.safetensors"
    loader.write_safetensors(path, {"w": torch.ones(1)}, {})
    code, data, _ = smoke("--model", str(path), "--config", str(tmp_path))
    assert code == 10 and "--config" in data["message"]


def test_shipped_sd_v1_config_matches_the_original_checkpoint_layout(tmp_path: Path) -> None:
    """The shipped config against the full-size SD-v1 key layout (built on the meta device, no data)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = loader.CONFIG_DIR
    with torch.device("meta"):
        parts = SimpleNamespace(
            unet=UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config / "unet"))),
            vae=AutoencoderKL.from_config(AutoencoderKL.load_config(str(config / "vae"))),
            text_encoder=CLIPTextModel(CLIPTextConfig.from_pretrained(str(config / "text_encoder"))),
        )
        layout = ldm_state_dict(parts)
    shapes = {k: list(v.shape) for k, v in layout.items()}
    # names and shapes every original SD-v1.x checkpoint has
    assert shapes["model.diffusion_model.output_blocks.11.0.skip_connection.weight"] == [320, 640, 1, 1]
    assert shapes["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == [320, 768]
    assert shapes["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] == [49408, 768]
    assert shapes["first_stage_model.encoder.down.0.block.0.norm1.weight"] == [128]
    assert shapes["first_stage_model.decoder.mid.attn_1.q.weight"] == [512, 512, 1, 1]
    assert len([k for k in shapes if k.startswith("model.diffusion_model.")]) == 686
    header = {k: {"dtype": "F16", "shape": s, "data_offsets": [0, 0]} for k, s in shapes.items()}
    raw = json.dumps(header).encode()
    path = tmp_path / "header-only.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    assert loader.single_file_missing(path, config) == []
    del header["model.diffusion_model.out.2.weight"]
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    assert loader.single_file_missing(path, config) == ["unet.conv_out.weight"]
