"""The models: section of envspec.yml: strict, located one-line errors (exit 3), the shipped entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from envspec.errors import ExitCode, SpecError
from envspec.models import smoke_model_name
from envspec.spec.load import load_spec, parse_spec

P = Path("envspec.yml")
ENTRY = "    smoke: true\n"
LICENSE_LINE = (
    "    license: CreativeML OpenRAIL-M (use restrictions apply; "
    "https://huggingface.co/spaces/CompVis/stable-diffusion-license)\n"
)
SECOND = (
    "  other:\n    repo: acme/other\n    revision: v1.0\n    layout: single_file\n"
    "    file: m.safetensors\n    license: MIT\n"
)


def shipped(repo: Path) -> str:
    return (repo / "envspec.yml").read_text()


def test_the_shipped_spec_pins_sd_v1_5_fp16_for_the_smoke_test(repo: Path) -> None:
    spec = load_spec(repo / "envspec.yml")
    entry = spec.document.models["sd-v1-5"]
    assert (entry.repo, entry.revision, entry.layout, entry.variant) == (
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "main",
        "diffusers",
        "fp16",
    )
    assert entry.license.startswith("CreativeML OpenRAIL-M") and not entry.trust_pickle
    assert smoke_model_name(spec) == "sd-v1-5"


def test_models_are_optional(repo: Path) -> None:
    text = shipped(repo)
    start, end = text.index("models:\n"), text.index("targets:\n")
    spec = parse_spec(text[:start] + text[end:], P)
    assert spec.document.models == {} and smoke_model_name(spec) is None


def test_smoke_model_names_the_entry(repo: Path) -> None:
    text = shipped(repo).replace(ENTRY, "").replace("targets:\n", SECOND + "\nsmoke_model: other\ntargets:\n", 1)
    assert smoke_model_name(parse_spec(text, P)) == "other"


MUTATIONS: list[tuple[str, str, str, str]] = [
    ("unknown-key", ENTRY, ENTRY + "    varient: fp16\n", r"envspec\.yml:\d+: models\.sd-v1-5\.varient: unknown key"),
    ("bad-layout", "layout: diffusers", "layout: ckpt", r"models\.sd-v1-5\.layout: Input should be 'diffusers'"),
    ("file-on-diffusers", ENTRY, ENTRY + "    file: a.safetensors\n", r"file applies to layout 'single_file' only"),
    (
        "single-without-file",
        "layout: diffusers\n    variant: fp16\n",
        "layout: single_file\n",
        r"models\.sd-v1-5: layout 'single_file' needs file:",
    ),
    (
        "variant-on-single-file",
        "layout: diffusers",
        "layout: single_file\n    file: a.safetensors",
        r"variant applies to layout 'diffusers' only",
    ),
    (
        "misspelled-license",
        "    license: CreativeML",
        "    licence: CreativeML",
        r"models\.sd-v1-5\.licence: unknown key",
    ),
    ("missing-license", LICENSE_LINE, "", r"models\.sd-v1-5\.license: required field is missing"),
    (
        "blank-license",
        "license: CreativeML OpenRAIL-M (use",
        'license: " "\n    # (use',
        r"license: String should match",
    ),
    (
        "nested-repo",
        "repo: stable-diffusion-v1-5/stable-diffusion-v1-5",
        "repo: a/b/c",
        r"not a Hugging Face repository id",
    ),
    (
        "double-dash-repo",
        "repo: stable-diffusion-v1-5/stable",
        "repo: a--b/stable",
        r"not a Hugging Face repository id",
    ),
    (
        "climbing-revision",
        "revision: main",
        "revision: ../main",
        r"models\.sd-v1-5\.revision: .*not a branch, tag or commit",
    ),
    ("numeric-revision", "revision: main", "revision: 1.0", r"revision: Input should be a valid string"),
    ("climbing-include", ENTRY, ENTRY + "    include: ['../secrets']\n", r"include\.0: .*not a relative path"),
    ("absolute-exclude", ENTRY, ENTRY + "    exclude: ['/etc/passwd']\n", r"exclude\.0: .*not a relative path"),
    ("bad-variant", "variant: fp16", "variant: fp.16", r"variant: String should match"),
    ("smoke-not-bool", "smoke: true", "smoke: 'true'", r"smoke: Input should be a valid boolean"),
    ("bad-name", "  sd-v1-5:\n", "  SD_15:\n", r"models: String should match|models\.SD_15"),
    (
        "two-smoke-models",
        "targets:\n",
        SECOND + "    smoke: true\n\ntargets:\n",
        r"models sd-v1-5, other all say smoke: true",
    ),
    ("unknown-smoke-model", "targets:\n", "smoke_model: nope\ntargets:\n", r"smoke_model 'nope' names no entry"),
    (
        "smoke-model-disagrees",
        "targets:\n",
        SECOND + "smoke_model: other\ntargets:\n",
        r"smoke_model 'other' and smoke: true on 'sd-v1-5' disagree",
    ),
]


@pytest.mark.parametrize(("old", "new", "pattern"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_rejections_are_one_line_and_located(repo: Path, old: str, new: str, pattern: str) -> None:
    text = shipped(repo)
    assert old in text, f"mutation anchor {old!r} missing from envspec.yml"
    with pytest.raises(SpecError) as info:
        parse_spec(text.replace(old, new, 1), P)
    line = info.value.one_line()
    assert "\n" not in line and line.startswith("error: envspec.yml")
    assert re.search(pattern, line), line
    assert info.value.exit_code == ExitCode.SPEC_INVALID


def test_the_error_points_at_the_line_of_the_field(repo: Path) -> None:
    text = shipped(repo).replace("layout: diffusers", "layout: ckpt", 1)
    lineno = text.splitlines().index("    layout: ckpt") + 1
    with pytest.raises(SpecError, match=rf"envspec\.yml:{lineno}: models\.sd-v1-5\.layout"):
        parse_spec(text, P)
