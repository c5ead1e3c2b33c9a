from __future__ import annotations

import re
from pathlib import Path

import pytest

from envspec.errors import ExitCode, SpecError
from envspec.spec.load import load_spec, parse_spec
from envspec.spec.schema import ACCELERATOR_RULES

P = Path("envspec.yml")


def shipped_text(repo: Path) -> str:
    return (repo / "envspec.yml").read_text()


def test_shipped_spec_has_five_targets(repo: Path) -> None:
    spec = load_spec(repo / "envspec.yml")
    assert list(spec.targets) == ["osx-arm64", "osx-64", "linux-cuda", "linux-cpu", "win-cuda"]
    assert spec.channels == ["conda-forge"]


def test_cuda_targets_pin_cuda_builds_and_toolkit(repo: Path) -> None:
    spec = load_spec(repo / "envspec.yml")
    for name in ("linux-cuda", "win-cuda"):
        t = spec.resolve(name)
        assert t.accelerator == "cuda"
        assert t.torch_spec.startswith("pytorch=") and t.torch_spec.endswith("=cuda*")
        assert t.cuda_version is not None
        assert f"cuda-version={t.cuda_version}" in t.dependencies
        # cuda-version 12.x constrains __cuda >=12 (CUDA minor-version compatibility): same major
        assert t.virtual_packages["__cuda"].split(".")[0] == t.cuda_version.split(".")[0]


def test_mps_target_has_fallback_and_recent_osx(repo: Path) -> None:
    t = load_spec(repo / "envspec.yml").resolve("osx-arm64")
    assert t.variables["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    assert t.cuda_version is None
    assert "__cuda" not in t.virtual_packages
    assert float(t.virtual_packages["__osx"]) >= 14


def test_resolved_variables_carry_the_promise(repo: Path) -> None:
    t = load_spec(repo / "envspec.yml").resolve("linux-cuda")
    assert t.variables["ENVSPEC_TARGET"] == "linux-cuda"
    assert t.variables["ENVSPEC_DEVICE"] == "cuda"


def test_unknown_target_is_a_spec_error(repo: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(repo / "envspec.yml").resolve("nope")
    assert "no target named 'nope'" in info.value.one_line()
    assert "choose one of: osx-arm64, osx-64, linux-cuda, linux-cpu, win-cuda" in info.value.one_line()


def test_fifth_target_is_an_edit_of_data_only(repo: Path) -> None:
    text = shipped_text(repo) + (
        "  linux-cpu-old:\n"
        "    subdir: linux-64\n"
        "    accelerator: cpu\n"
        "    virtual_packages: {__unix: '0', __glibc: '2.28'}\n"
        "    torch: ['pytorch=*=cpu*']\n"
        "    runner: ubuntu-latest\n"
        "    smoke_device: cpu\n"
    )
    spec = parse_spec(text, P)
    assert spec.resolve("linux-cpu-old").subdir == "linux-64"


MUTATIONS: list[tuple[str, str, str, str]] = [
    # (id, old, new, expected message regex)
    ("bad-yaml", "channels:\n  - conda-forge", "channels: [conda-forge", r"envspec\.yml:\d+: not valid YAML"),
    ("unknown-top-key", "version: 1\n", "version: 1\nchanels: [x]\n", r"envspec\.yml:\d+: chanels: unknown key"),
    (
        "unknown-target-key",
        "    runner: macos-15\n",
        "    runner: macos-15\n    runer: x\n",
        r"envspec\.yml:\d+: targets\.osx-arm64\.runer: unknown key",
    ),
    (
        "unknown-subdir",
        "subdir: osx-arm64",
        "subdir: osx-arm128",
        r"targets\.osx-arm64\.subdir: Input should be 'linux-64'",
    ),
    (
        "invalid-match-spec",
        "  - tqdm\n",
        "  - tqdm>>=[1\n",
        r"dependencies\.\d+: invalid conda match spec 'tqdm>>=\[1'",
    ),
    ("duplicate-target", "  win-cuda:\n", "  osx-64:\n", r"envspec\.yml:\d+: targets: duplicate key 'osx-64'"),
    ("missing-field", "    runner: ubuntu-latest\n", "", r"targets\.linux-cuda\.runner: required field is missing"),
    (
        "wrong-type",
        'PYTORCH_ENABLE_MPS_FALLBACK: "1"',
        "PYTORCH_ENABLE_MPS_FALLBACK: 1",
        r"targets\.osx-arm64\.variables\.PYTORCH_ENABLE_MPS_FALLBACK: Input should be a valid string",
    ),
    (
        "unquoted-vpkg-version",
        '__cuda: "12.9"',
        "__cuda: 12.9",
        r"virtual_packages\.__cuda: Input should be a valid string",
    ),
    (
        "cpu-build-could-win",
        "      - pytorch=*=cuda*\n      - cuda-version=12.9\n",
        "      - pytorch=2.7.*\n      - cuda-version=12.9\n",
        r"targets\.linux-cuda: .*build pinned to 'cuda\*'",
    ),
    (
        "cuda-without-toolkit-pin",
        "      - pytorch=*=cuda*\n      - cuda-version=12.9\n",
        "      - pytorch=2.7.*=cuda*\n",
        r"needs 'cuda-version' pinned",
    ),
    ("cuda-without-__cuda", '      __cuda: "12.9"\n', "", r"needs virtual package '__cuda'"),
    ("mps-on-old-macos", '__osx: "14.0"', '__osx: "12.0"', r"needs __osx >= 14"),
    (
        "vpkg-on-wrong-os",
        '      __win: "0"\n',
        '      __win: "0"\n      __glibc: "2.28"\n',
        r"'__glibc' does not exist on win-64",
    ),
    ("duplicate-package", "  - tqdm\n", "  - tqdm\n  - tqdm>=4\n", r"dependencies name a package twice"),
    ("top-level-list", "version: 1\n", "- version: 1\n", r"expected a mapping|not valid YAML"),
    ("bad-version", "version: 1\n", "version: 2\n", r"version: Input should be 1"),
    ("bad-env-var", "PYTORCH_ENABLE_MPS_FALLBACK:", "1BAD-NAME:", r"variables"),
    ("bad-pip", "pip:\n  - diffusers", "pip:\n  - torch==\n  - diffusers", r"pip\.0: invalid pip requirement"),
    ("misspelled-required-key", "name: stable", "nmae: stable", r"envspec\.yml:\d+: nmae: unknown key"),
    (
        "misspelled-required-target-key",
        "    runner: macos-15\n",
        "    runnr: macos-15\n",
        r"targets\.osx-arm64\.runnr: unknown key",
    ),
    (
        "smoke-device-of-another-accelerator",
        "    smoke_device: mps\n",
        "    smoke_device: cuda\n",
        r"smoke_device 'cuda'",
    ),
    (
        "reserved-variable",
        'PYTORCH_ENABLE_MPS_FALLBACK: "1"',
        'PYTORCH_ENABLE_MPS_FALLBACK: "1"\n      ENVSPEC_DEVICE: cpu',
        r"targets\.osx-arm64: variables: ENVSPEC_DEVICE is set by envspec itself",
    ),
    ("blank-runner", "runner: macos-15\n", 'runner: "  "\n', r"osx-arm64\.runner: String should match"),
    ("runner-with-newline", "runner: macos-15\n", 'runner: "macos-15\\nfoo: 1"\n', r"\.runner: contains U\+000A"),
    (
        "yaml-boolean-target-name",
        "  osx-64:\n",
        "  on:\n",
        r"envspec\.yml:\d+: targets: key 'on' is read by YAML as a boolean, not a name \(tip: quote it",
    ),
    ("yaml-number-key", "targets:\n", "1.0: x\ntargets:\n", r"key '1\.0' is read by YAML as a number"),
    ("self-alias", "targets:\n", "loop: &loop [*loop]\ntargets:\n", r"loop: unknown key"),
    ("deep-nesting", "version: 1\n", "version: 1\ndeep: " + "[" * 3000 + "]" * 3000 + "\n", r"nested too deeply"),
]


@pytest.mark.parametrize(("old", "new", "pattern"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_rejections_are_one_line_and_located(repo: Path, old: str, new: str, pattern: str) -> None:
    text = shipped_text(repo)
    assert old in text, f"mutation anchor {old!r} missing from envspec.yml"
    with pytest.raises(SpecError) as info:
        parse_spec(text.replace(old, new, 1), P)
    err = info.value
    line = err.one_line()
    assert "\n" not in line
    assert line.startswith("error: envspec.yml")
    assert re.search(pattern, line), line
    assert err.exit_code == ExitCode.SPEC_INVALID


def test_error_line_number_points_at_the_field(repo: Path) -> None:
    text = shipped_text(repo).replace("    runner: macos-15\n", "    runner: macos-15\n    runer: x\n", 1)
    lineno = text.splitlines().index("    runer: x") + 1
    with pytest.raises(SpecError, match=rf"envspec\.yml:{lineno}: "):
        parse_spec(text, P)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "envspec.yml")


def test_empty_file() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_spec("", P)


def test_every_accelerator_has_a_rule() -> None:
    assert set(ACCELERATOR_RULES) == {"cuda", "mps", "cpu"}


def test_yaml_merge_keys_share_a_target_record() -> None:
    """`<<: *anchor` is a key YAML resolves itself; the non-string-key check must let it through."""
    text = (
        "version: 1\nname: x\nchannels: [conda-forge]\ndependencies: [python]\ntargets:\n"
        "  a: &base\n    subdir: linux-64\n    accelerator: cpu\n    virtual_packages: {__unix: '0'}\n"
        "    torch: [pytorch]\n    runner: ubuntu-latest\n    smoke_device: cpu\n"
        "  b:\n    <<: *base\n    runner: ubuntu-24.04\n"
    )
    spec = parse_spec(text, P)
    assert (spec.resolve("b").subdir, spec.resolve("b").runner) == ("linux-64", "ubuntu-24.04")
