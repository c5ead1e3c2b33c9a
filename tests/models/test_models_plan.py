"""The planner: which files of a repository listing an entry takes, and where each lands. Pure."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from envspec.models.plan import ModelsPlanError, RemoteFile, plan_files
from envspec.spec.schema import ModelEntryDocument

from .conftest import sd_like_files
from .fakehub import LFS_SUFFIXES, git_oid


def listing(files: dict[str, bytes]) -> list[RemoteFile]:
    out = []
    for path, data in files.items():
        if path.endswith(LFS_SUFFIXES):
            out.append(RemoteFile(path, len(data), sha256=hashlib.sha256(data).hexdigest()))
        else:
            out.append(RemoteFile(path, len(data), git_sha1=git_oid(data)))
    return out


SD = listing(sd_like_files(unet_size=64))


def entry(**fields: Any) -> ModelEntryDocument:
    base: dict[str, Any] = {"repo": "acme/sd", "revision": "main", "layout": "diffusers", "license": "MIT"}
    return ModelEntryDocument.model_validate({**base, **fields})


def dests(plan_entry: ModelEntryDocument, files: list[RemoteFile] = SD) -> dict[str, str]:
    return {f.path: f.dest for f in plan_files(plan_entry, files).files}


COMMON = {
    "model_index.json": "model_index.json",
    "feature_extractor/preprocessor_config.json": "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json": "safety_checker/config.json",
    "scheduler/scheduler_config.json": "scheduler/scheduler_config.json",
    "text_encoder/config.json": "text_encoder/config.json",
    "tokenizer/merges.txt": "tokenizer/merges.txt",
    "tokenizer/tokenizer_config.json": "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json": "tokenizer/vocab.json",
    "unet/config.json": "unet/config.json",
    "vae/config.json": "vae/config.json",
}


def test_fp16_takes_the_variants_safetensors_under_plain_names() -> None:
    plan = plan_files(entry(variant="fp16"), SD)
    assert {f.path: f.dest for f in plan.files} == {
        **COMMON,
        "safety_checker/model.fp16.safetensors": "safety_checker/model.safetensors",
        "text_encoder/model.fp16.safetensors": "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors": "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors": "vae/diffusion_pytorch_model.safetensors",
    }
    assert plan.load == "." and plan.notes == ()
    assert not any(f.pickle for f in plan.files)
    assert plan.size == sum(f.size for f in plan.files)
    by_path = {f.path: f for f in plan.files}
    assert by_path["unet/diffusion_pytorch_model.fp16.safetensors"].sha256 is not None
    assert by_path["unet/config.json"].git_sha1 == git_oid(b"{}\n")


def test_plain_weights_prefer_safetensors_and_fall_back_to_a_pickle() -> None:
    plan = plan_files(entry(), SD)
    chosen = {f.path: f for f in plan.files}
    assert "unet/diffusion_pytorch_model.safetensors" in chosen
    assert "unet/diffusion_pytorch_model.non_ema.safetensors" not in chosen  # another variant
    assert "text_encoder/model.safetensors" in chosen and "text_encoder/pytorch_model.bin" not in chosen
    # the safety checker has no plain .safetensors: its .bin is taken, and it is a pickle
    assert chosen["safety_checker/pytorch_model.bin"].pickle
    assert "images/sample.png" not in chosen  # a folder without a config is no component
    assert "v1-5-pruned-emaonly.safetensors" not in chosen and "README.md" not in chosen


def test_a_component_without_the_variant_takes_the_plain_weights_and_says_so() -> None:
    files = [f for f in SD if f.path != "vae/diffusion_pytorch_model.fp16.safetensors"]
    plan = plan_files(entry(variant="fp16", exclude=["safety_checker"]), files)
    assert {f.path: f.dest for f in plan.files}["vae/diffusion_pytorch_model.safetensors"] == (
        "vae/diffusion_pytorch_model.safetensors"
    )
    assert plan.notes == ("vae: no fp16 weights, taking the plain ones (safetensors)",)


def test_sharded_variant_keeps_shard_names_and_renames_the_index() -> None:
    files = listing(
        {
            "model_index.json": b"{}",
            "unet/config.json": b"{}",
            "unet/diffusion_pytorch_model.safetensors.index.json": b"{}",
            "unet/diffusion_pytorch_model-00001-of-00002.safetensors": b"a",
            "unet/diffusion_pytorch_model-00002-of-00002.safetensors": b"b",
            "unet/diffusion_pytorch_model.safetensors.index.fp16.json": b"{1}",
            "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors": b"c",
            "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors": b"d",
        }
    )
    assert dests(entry(variant="fp16"), files) == {
        "model_index.json": "model_index.json",
        "unet/config.json": "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json": (
            "unet/diffusion_pytorch_model.safetensors.index.json"
        ),
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors": (
            "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors"
        ),
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors": (
            "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors"
        ),
    }
    plain = dests(entry(), files)
    assert "unet/diffusion_pytorch_model.safetensors.index.json" in plain
    assert not any("fp16" in p for p in plain)


def test_include_and_exclude() -> None:
    chosen = dests(entry(variant="fp16", exclude=["safety_checker", "feature_extractor/*"], include=["README.md"]))
    assert "README.md" in chosen
    assert not any(p.startswith(("safety_checker/", "feature_extractor/")) for p in chosen)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"exclude": ["safety_cheker"]}, "exclude 'safety_cheker' matches no file"),
        ({"include": ["*.yaml"]}, r"include '\*.yaml' matches no file"),
        ({"exclude": ["model_index.json"]}, "removes model_index.json, which this entry needs"),
        ({"variant": "fp16", "include": ["unet/diffusion_pytorch_model.safetensors"]}, "would both land at"),
        ({"layout": "single_file", "file": "nope.safetensors"}, "no file 'nope.safetensors'"),
        (
            {"layout": "single_file", "file": "v1-5-pruned-emaonly.ckpt", "exclude": ["*.ckpt"]},
            "which this entry needs",
        ),
    ],
)
def test_an_entry_that_does_not_fit_the_repository(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelsPlanError, match=message):
        plan_files(entry(**fields), SD)


def test_single_file_takes_one_file_and_what_include_adds() -> None:
    plan = plan_files(entry(layout="single_file", file="v1-5-pruned-emaonly.ckpt", include=["tokenizer"]), SD)
    assert [f.path for f in plan.files] == [
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "v1-5-pruned-emaonly.ckpt",
    ]
    assert plan.load == "v1-5-pruned-emaonly.ckpt"
    assert [f.path for f in plan.files if f.pickle] == ["v1-5-pruned-emaonly.ckpt"]


def test_a_repository_without_model_index_is_not_a_diffusers_folder() -> None:
    with pytest.raises(ModelsPlanError, match=r"no model_index\.json .* \(use layout: single_file"):
        plan_files(entry(), [f for f in SD if f.path != "model_index.json"])


def test_a_component_with_only_foreign_weights_is_refused() -> None:
    files = listing({"model_index.json": b"{}", "unet/config.json": b"{}", "unet/flax_model.msgpack": b"x"})
    with pytest.raises(ModelsPlanError, match=r"component 'unet' has no plain \.safetensors/\.bin weights"):
        plan_files(entry(), files)


def test_top_level_licence_files_come_along() -> None:
    files = listing({"model_index.json": b"{}", "LICENSE.md": b"MIT", "licence": b"x", "NOTICE": b"n"})
    assert set(dests(entry(), files)) == {"model_index.json", "LICENSE.md", "licence"}


@pytest.mark.parametrize("bad", ["../evil.json", "/etc/passwd", "unet/../../x", "a\\b.json", "a//b", "c:/x", "a/./b"])
def test_a_hostile_listing_is_refused(bad: str) -> None:
    with pytest.raises(ModelsPlanError, match="unsafe file name"):
        plan_files(entry(), [*SD, RemoteFile(bad, 1, git_sha1="0" * 40)])


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        (RemoteFile("x.json", 1), "gives no hash"),
        (RemoteFile("x.json", 1, sha256="zz"), "malformed sha256"),
        (RemoteFile("x.json", -1, git_sha1="0" * 40), "negative size"),
        (RemoteFile("model_index.json", 1, git_sha1="0" * 40), "listed twice"),
    ],
)
def test_a_malformed_listing_is_refused(remote: RemoteFile, message: str) -> None:
    with pytest.raises(ModelsPlanError, match=message):
        plan_files(entry(), [*SD, remote])
