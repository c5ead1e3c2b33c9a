"""Fixtures of the models tests: a fake Hub on 127.0.0.1, a scratch project, and the CLI in a child process.

huggingface_hub reads HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE and its time-outs when it is imported,
so every command against the fake Hub runs as ``python -m envspec`` in a child process with those
set (tests doing that are marked ``integration``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fakehub import FakeHub

REPO_ID = "acme/tiny-sd"

BASE_SPEC = """\
version: 1
name: sd
channels: [conda-forge]
dependencies: [python=3.12]
targets:
  linux-cpu:
    subdir: linux-64
    accelerator: cpu
    virtual_packages: {__unix: "0", __glibc: "2.28"}
    torch: ["pytorch=*=cpu*"]
    runner: ubuntu-latest
    smoke_device: cpu
"""


#: Files shaped like stable-diffusion-v1-5 (plain, fp16 and non_ema weights; pickles; a single file).
#: Weights are random bytes: locking and pulling never look inside them.
def sd_like_files(unet_size: int = 3 * 1024 * 1024) -> dict[str, bytes]:
    def blob(n: int) -> bytes:
        return os.urandom(n)

    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"---\nlicense: creativeml-openrail-m\n---\n# tiny sd\n",
        "model_index.json": b'{"_class_name": "StableDiffusionPipeline"}\n',
        "feature_extractor/preprocessor_config.json": b"{}\n",
        "safety_checker/config.json": b"{}\n",
        "safety_checker/model.fp16.safetensors": blob(3000),
        "safety_checker/pytorch_model.bin": blob(5000),
        "scheduler/scheduler_config.json": b'{"_class_name": "PNDMScheduler"}\n',
        "text_encoder/config.json": b"{}\n",
        "text_encoder/model.safetensors": blob(4000),
        "text_encoder/model.fp16.safetensors": blob(2000),
        "text_encoder/pytorch_model.bin": blob(4000),
        "tokenizer/merges.txt": b"#version: 0.2\n",
        "tokenizer/tokenizer_config.json": b"{}\n",
        "tokenizer/vocab.json": b"{}\n",
        "unet/config.json": b"{}\n",
        "unet/diffusion_pytorch_model.safetensors": blob(unet_size),
        "unet/diffusion_pytorch_model.fp16.safetensors": blob(unet_size // 2),
        "unet/diffusion_pytorch_model.non_ema.safetensors": blob(1000),
        "unet/diffusion_pytorch_model.fp16.bin": blob(1000),
        "vae/config.json": b"{}\n",
        "vae/diffusion_pytorch_model.safetensors": blob(6000),
        "vae/diffusion_pytorch_model.fp16.safetensors": blob(3000),
        "images/sample.png": blob(100),
        "v1-5-pruned-emaonly.safetensors": blob(7000),
        "v1-5-pruned-emaonly.ckpt": blob(7000),
    }


def spec_text(models_yaml: str, smoke_model: str | None = None) -> str:
    extra = f"smoke_model: {smoke_model}\n" if smoke_model else ""
    return BASE_SPEC + extra + "models:\n" + models_yaml


def entry_yaml(name: str = "tiny", repo: str = REPO_ID, revision: str = "main", **fields: str) -> str:
    lines = [f"  {name}:", f"    repo: {repo}", f"    revision: {revision}"]
    fields.setdefault("layout", "diffusers")
    fields.setdefault("license", "CreativeML OpenRAIL-M")
    lines += [f"    {key}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    code: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Project:
    root: Path
    hf_home: Path
    hub: FakeHub

    @property
    def spec(self) -> Path:
        return self.root / "envspec.yml"

    @property
    def lockfile(self) -> Path:
        return self.root / "lockfiles" / "models.lock.yml"

    def write_spec(self, models_yaml: str, smoke_model: str | None = None) -> None:
        self.spec.write_text(spec_text(models_yaml, smoke_model))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
        env.update(
            HF_ENDPOINT=self.hub.endpoint,
            HF_HOME=str(self.hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            # Generous: a loaded machine must not turn a good transfer into a stall (envspec's stall
            # window is this time-out); the tests of stalls set their own short one.
            HF_HUB_DOWNLOAD_TIMEOUT="60",
            HF_HUB_ETAG_TIMEOUT="60",
            NO_PROXY="127.0.0.1,localhost",
        )
        env.pop("TRANSFORMERS_OFFLINE", None)
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 600, **env: str) -> Result:  # timeout: a hang guard
        import time

        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "envspec", "--spec", str(self.spec), "models", *args],
            cwd=self.root,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


@pytest.fixture
def fakehub(tmp_path: Path) -> Iterator[FakeHub]:
    hub = FakeHub(tmp_path / "hub-store").start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def project(tmp_path: Path, fakehub: FakeHub) -> Project:
    root = tmp_path / "proj"
    root.mkdir()
    return Project(root=root, hf_home=tmp_path / "hf-home", hub=fakehub)


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke test's tiny SD-v1 pipeline, saved with save_pretrained, plus fp16 copies of its weights
    under diffusers' variant names (as stable-diffusion-v1-5 ships them)."""
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from safetensors.torch import load_file, save_file

    from envspec.smoke.tiny import write_tiny_model

    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-pipeline") / "model")
    for weights in sorted(folder.glob("*/*.safetensors")):
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
        save_file(tensors, str(weights.with_name(weights.stem + ".fp16.safetensors")), metadata={"format": "pt"})
    return folder
