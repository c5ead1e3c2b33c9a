"""spec/model.py word for word: every refusal's one-line message and tip, the thresholds of the
accelerator rules, what a target resolves to, and the JSON schema's header.

Written against the survivors of `nox -s mutants -- "envspec.spec.schema.*"` (docs/mutation.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.errors import ExitCode, SpecError
from envspec.spec.load import ResolvedTarget, _match_version, _unsafe_character, load_spec, parse_spec
from envspec.spec.schema import json_schema, pip_name

P = Path("envspec.yml")
BASE = """version: 1
name: sd
channels: [conda-forge]
dependencies: [python=3.12, tqdm]
targets:
  gpu:
    subdir: linux-64
    accelerator: cuda
    virtual_packages: {__unix: "0", __glibc: "2.28", __cuda: "12.9"}
    torch: [pytorch=*=cuda*, cuda-version=12.9]
    runner: ubuntu-latest
    smoke_device: cuda
  mac:
    subdir: osx-arm64
    accelerator: mps
    virtual_packages: {__unix: "0", __osx: "14.0"}
    torch: [pytorch>=2.9]
    runner: macos-15
    smoke_device: mps
"""
SCHEMA_TIP = "see envspec.schema.json for the expected form"
MODEL = "{repo: o/a, revision: main, layout: diffusers, license: MIT"


def edit(*pairs: str) -> str:
    text = BASE
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def refusal(text: str) -> tuple[str, str | None]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, P)
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    return info.value.message, info.value.tip


REFUSALS: list[tuple[str, tuple[str, ...], str, str]] = [
    # (id, edits, message, tip)
    (
        "unknown-virtual-package",
        ('__glibc: "2.28"', '__glibc: "2.28", __foo: "1"'),
        (
            "envspec.yml:6: targets.gpu: unknown virtual package '__foo'; expected one of __archspec, __cuda, __glibc, "
            "__linux, __osx, __unix, __win"
        ),
        SCHEMA_TIP,
    ),
    (
        "virtual-package-of-another-os",
        ('__osx: "14.0"}', '__osx: "14.0", __win: "0"}'),
        "envspec.yml:13: targets.mac: virtual package '__win' does not exist on osx-arm64",
        SCHEMA_TIP,
    ),
    (
        "smoke-device-of-another-accelerator",
        ("smoke_device: mps", "smoke_device: cuda"),
        (
            "envspec.yml:13: targets.mac: smoke_device 'cuda' cannot be seen on a 'mps' target; expected 'mps' (or "
            "'cpu' to promise less)"
        ),
        SCHEMA_TIP,
    ),
    (
        "reserved-variables",
        ("smoke_device: mps", "smoke_device: mps\n    variables: {ENVSPEC_X: a, ENVSPEC_A: b, OK: c, XENVSPEC_: d}"),
        (
            "envspec.yml:13: targets.mac: variables: ENVSPEC_A, ENVSPEC_X is set by envspec itself (names starting "
            "with ENVSPEC_ carry the target and the promised device to the smoke test)"
        ),
        SCHEMA_TIP,
    ),
    (
        "cuda-without-__cuda",
        (', __cuda: "12.9"', ""),
        "envspec.yml:6: targets.gpu: accelerator 'cuda' needs virtual package '__cuda'",
        SCHEMA_TIP,
    ),
    (
        "mps-on-macos-13.9",
        ('__osx: "14.0"', '__osx: "13.9"'),
        "envspec.yml:13: targets.mac: accelerator 'mps' needs __osx >= 14",
        SCHEMA_TIP,
    ),
    (
        "no-pytorch",
        ("torch: [pytorch>=2.9]", "torch: [numpy]"),
        "envspec.yml:13: targets.mac: torch must contain exactly one 'pytorch' match spec",
        SCHEMA_TIP,
    ),
    (
        "two-pytorch",
        ("torch: [pytorch>=2.9]", "torch: [pytorch>=2.9, pytorch<3]"),
        "envspec.yml:13: targets.mac: torch must contain exactly one 'pytorch' match spec",
        SCHEMA_TIP,
    ),
    (
        "cuda-torch-without-build",
        ("pytorch=*=cuda*", "pytorch>=2.9"),
        (
            "envspec.yml:6: targets.gpu: accelerator 'cuda' needs the pytorch build pinned to 'cuda*' (e.g. "
            "'pytorch=*=cuda*'), or a CPU build can win the solve"
        ),
        SCHEMA_TIP,
    ),
    (
        "cuda-torch-with-cpu-build",
        ("pytorch=*=cuda*", "pytorch=*=cpu*"),
        (
            "envspec.yml:6: targets.gpu: accelerator 'cuda' needs the pytorch build pinned to 'cuda*' (e.g. "
            "'pytorch=*=cuda*'), or a CPU build can win the solve"
        ),
        SCHEMA_TIP,
    ),
    (
        "cuda-without-cuda-version",
        ("torch: [pytorch=*=cuda*, cuda-version=12.9]", "torch: [pytorch=*=cuda*]"),
        (
            "envspec.yml:6: targets.gpu: accelerator 'cuda' needs 'cuda-version' pinned in torch (e.g. "
            "'cuda-version=12.9')"
        ),
        SCHEMA_TIP,
    ),
    (
        "dependency-twice",
        ("dependencies: [python=3.12, tqdm]", "dependencies: [python=3.12, tqdm, Python>=3]"),
        "envspec.yml:1: (top level): dependencies name a package twice",
        SCHEMA_TIP,
    ),
    (
        "target-package-also-common",
        ("torch: [pytorch>=2.9]", "torch: [pytorch>=2.9]\n    packages: [tqdm>=4]"),
        "envspec.yml:1: (top level): target 'mac': package 'tqdm' is given twice ('tqdm' and 'tqdm>=4')",
        SCHEMA_TIP,
    ),
    (
        "pip-package-twice",
        (
            "targets:",
            "pip: [Pillow>=10]\ntargets:",
            "torch: [pytorch>=2.9]",
            "torch: [pytorch>=2.9]\n    pip: ['pillow[x]']",
        ),
        "envspec.yml:1: (top level): target 'mac': pip package 'pillow' is given twice ('Pillow>=10' and 'pillow[x]')",
        SCHEMA_TIP,
    ),
    (
        "pip-direct-reference",
        ("targets:", "pip: ['foo @ https://x/foo.whl']\ntargets:"),
        (
            "envspec.yml:5: pip.0: pip requirement 'foo @ https://x/foo.whl' is a direct reference (NAME @ URL); "
            "envspec locks PyPI packages from the index only (write NAME==VERSION, or serve the file from an index: "
            "--mirror pypi=URL)"
        ),
        SCHEMA_TIP,
    ),
    (
        "pip-sdist-name",
        ("targets:", "pip_allow_sdist: ['-x-']\ntargets:"),
        "envspec.yml:5: pip_allow_sdist.0: '-x-' is not a PyPI project name",
        SCHEMA_TIP,
    ),
    (
        "two-smoke-models",
        ("targets:", f"models:\n  a: {MODEL}, smoke: true}}\n  b: {MODEL}, smoke: true}}\ntargets:"),
        "envspec.yml:1: (top level): models a, b all say smoke: true; the smoke test uses one",
        SCHEMA_TIP,
    ),
    (
        "smoke-model-not-a-model",
        ("targets:", f"smoke_model: c\nmodels:\n  a: {MODEL}}}\n  b: {MODEL}}}\ntargets:"),
        "envspec.yml:1: (top level): smoke_model 'c' names no entry of models: (have: a, b)",
        SCHEMA_TIP,
    ),
    (
        "smoke-model-without-models",
        ("targets:", "smoke_model: c\ntargets:"),
        "envspec.yml:1: (top level): smoke_model 'c' names no entry of models: (have: none)",
        SCHEMA_TIP,
    ),
    (
        "smoke-model-disagrees",
        ("targets:", f"smoke_model: b\nmodels:\n  a: {MODEL}, smoke: true}}\n  b: {MODEL}}}\ntargets:"),
        "envspec.yml:1: (top level): smoke_model 'b' and smoke: true on 'a' disagree; keep one",
        SCHEMA_TIP,
    ),
    (
        "single-file-without-file",
        ("targets:", "models:\n  a: {repo: o/a, revision: main, layout: single_file, license: MIT}\ntargets:"),
        "envspec.yml:6: models.a: layout 'single_file' needs file: (the checkpoint's path in the repository)",
        SCHEMA_TIP,
    ),
    (
        "single-file-with-variant",
        (
            "targets:",
            (
                "models:\n  a: {repo: o/a, revision: main, layout: single_file, file: m.ckpt, variant: fp16, "
                "license: MIT}\ntargets:"
            ),
        ),
        "envspec.yml:6: models.a: variant applies to layout 'diffusers' only; a single file is named by file:",
        SCHEMA_TIP,
    ),
    (
        "diffusers-with-file",
        ("targets:", f"models:\n  a: {MODEL}, file: m.ckpt}}\ntargets:"),
        "envspec.yml:6: models.a: file applies to layout 'single_file' only; a diffusers folder is taken whole",
        SCHEMA_TIP,
    ),
    (
        "hub-repo-with-double-dash",
        ("targets:", "models:\n  a: {repo: o--a/b, revision: main, layout: diffusers, license: MIT}\ntargets:"),
        (
            "envspec.yml:6: models.a.repo: 'o--a/b' is not a Hugging Face repository id ('namespace/name': letters, "
            "digits, '-', '_', '.'; no '--' or '..')"
        ),
        SCHEMA_TIP,
    ),
    (
        "hub-revision-ending-in-slash",
        ("targets:", "models:\n  a: {repo: o/a, revision: main/, layout: diffusers, license: MIT}\ntargets:"),
        (
            "envspec.yml:6: models.a.revision: 'main/' is not a branch, tag or commit (e.g. 'main', 'v1.0', or 40 hex "
            "digits)"
        ),
        SCHEMA_TIP,
    ),
    (
        "repo-path-climbing-out",
        ("targets:", f"models:\n  a: {MODEL}, include: [a/../b]}}\ntargets:"),
        (
            "envspec.yml:6: models.a.include.0: 'a/../b' is not a relative path inside the repository (no leading '/', "
            "'..' or backslash)"
        ),
        SCHEMA_TIP,
    ),
    (
        "unknown-key",
        ("name: sd", "name: sd\nnmae: x"),
        "envspec.yml:3: nmae: unknown key",
        "remove it or fix its spelling; allowed keys are in envspec.schema.json",
    ),
    (
        "missing-field",
        ("    runner: macos-15\n", ""),
        "envspec.yml:13: targets.mac.runner: required field is missing",
        "add it; see envspec.schema.json",
    ),
    (
        "not-one-of-the-values",
        ("accelerator: mps", "accelerator: rocm"),
        "envspec.yml:15: targets.mac.accelerator: Input should be 'cuda', 'mps' or 'cpu'",
        "use one of the values listed",
    ),
    (
        "out-of-range",
        ("smoke_device: mps", "smoke_device: mps\n    smoke_steps: 0"),
        "envspec.yml:20: targets.mac.smoke_steps: Input should be greater than or equal to 1",
        SCHEMA_TIP,
    ),
    (
        "duplicate-key",
        ("name: sd", "name: sd\nname: x"),
        "envspec.yml:3: (top level): duplicate key 'name'",
        "each key (and each target name) may appear once",
    ),
    (
        "boolean-key",
        ("  mac:", "  on:"),
        "envspec.yml:13: targets: key 'on' is read by YAML as a boolean, not a name",
        'quote it: "on":',
    ),
    (
        "not-yaml",
        ("channels: [conda-forge]", "channels: [conda-forge"),
        "envspec.yml:4: not valid YAML: expected ',' or ']', but got ':'",
        "fix the YAML syntax",
    ),
    (
        "tab-in-a-value",
        ("runner: macos-15", 'runner: "mac\\tos"'),
        (
            "envspec.yml:18: targets.mac.runner: contains U+0009 (control character); every text field is one line of "
            "printable characters"
        ),
        "remove the character (envspec writes these fields into YAML files and environment variables)",
    ),
    (
        "line-separator-in-a-key",
        ("  mac:", '  "m\\u2028ac":'),
        (
            "envspec.yml:13: targets.m\u2028ac: contains U+2028 (line separator); every text field is one line of "
            "printable characters"
        ),
        "remove the character (envspec writes these fields into YAML files and environment variables)",
    ),
    (
        "control-character-in-a-list",
        ("dependencies: [python=3.12, tqdm]", 'dependencies: [python=3.12, "tq\\x7fdm"]'),
        (
            "envspec.yml:4: dependencies.1: contains U+007F (control character); every text field is one line of "
            "printable characters"
        ),
        "remove the character (envspec writes these fields into YAML files and environment variables)",
    ),
    (
        "nested-too-deeply",
        ("version: 1\n", "version: 1\ndeep: " + "[" * 3000 + "]" * 3000 + "\n"),
        "envspec.yml: YAML nested too deeply, or an alias (*name) that contains itself",
        "envspec.yml needs only a few levels of nesting; remove the self-referring anchor",
    ),
]


@pytest.mark.parametrize(("edits", "message", "tip"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusal_word_for_word(edits: tuple[str, ...], message: str, tip: str) -> None:
    assert refusal(edit(*edits)) == (message, tip)


def test_the_base_spec_and_the_thresholds_it_sits_on_are_valid() -> None:
    parse_spec(BASE, P)
    # __osx exactly at the MPS minimum (with a build string) passes.
    assert parse_spec(edit('__osx: "14.0"', '__osx: "14 0"'), P).resolve("mac").virtual_packages["__osx"] == "14 0"
    # A name merely containing the reserved prefix is not reserved.
    spec = parse_spec(edit("smoke_device: mps", "smoke_device: mps\n    variables: {XENVSPEC_: d}"), P)
    assert spec.resolve("mac").variables["XENVSPEC_"] == "d"


@pytest.mark.parametrize(
    ("text", "message", "tip"),
    [
        ("", "envspec.yml: expected a mapping at the top level, got nothing", "see envspec.schema.json"),
        ("- a\n", "envspec.yml: expected a mapping at the top level, got a list", "see envspec.schema.json"),
        ("x\n", "envspec.yml: expected a mapping at the top level, got a string", "see envspec.schema.json"),
        ("3\n", "envspec.yml: expected a mapping at the top level, got int", "see envspec.schema.json"),
        (
            "a: [b\n",
            "envspec.yml:2: not valid YAML: expected ',' or ']', but got '<stream end>'",
            "fix the YAML syntax",
        ),
        (
            "\ta: 1\n",
            "envspec.yml:1: not valid YAML: found character '\\t' that cannot start any token",
            "fix the YAML syntax",
        ),
        (
            "version: 1\n1.0: x\n",
            "envspec.yml:2: (top level): key '1.0' is read by YAML as a number, not a name",
            'quote it: "1.0":',
        ),
        (
            "loop: &loop [*loop]\n",
            "envspec.yml:1: loop: unknown key",
            "remove it or fix its spelling; allowed keys are in envspec.schema.json",
        ),
    ],
)
def test_top_level_refusals(text: str, message: str, tip: str) -> None:
    assert refusal(text) == (message, tip)


def test_load_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "envspec.yml")
    assert (info.value.message, info.value.tip) == (
        f"{tmp_path / 'envspec.yml'}: file not found",
        "run from the repository root or pass --spec PATH",
    )
    bad = tmp_path / "latin1.yml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert info.value.message.startswith(f"{bad}: cannot read: 'utf-8' codec can't decode byte 0xe9")
    assert info.value.tip == "check the file's permissions and encoding"
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert info.value.message.startswith(f"{tmp_path}: cannot read: ")
    good = tmp_path / "good.yml"
    good.write_text(BASE, encoding="utf-8")
    assert load_spec(good).path == good


def test_resolve_folds_the_common_parts_into_the_target() -> None:
    spec = parse_spec(
        edit(
            "targets:",
            "pip: [requests]\npip_allow_sdist: [Foo_Bar]\ntargets:",
            "    smoke_device: cuda\n",
            "    smoke_device: cuda\n    description: big\n    packages: [make]\n    pip: [rich]\n"
            "    variables: {A: b, ENVSPEC: c}\n    runner_has_accelerator: true\n    smoke_with_model: false\n"
            "    smoke_steps: 20\n    smoke_resolution: 256\n",
        ),
        P,
    )
    assert spec.name == "sd" and spec.channels == ["conda-forge"] and list(spec.targets) == ["gpu", "mac"]
    assert spec.resolve("gpu") == ResolvedTarget(
        name="gpu",
        description="big",
        subdir="linux-64",
        accelerator="cuda",
        channels=("conda-forge",),
        dependencies=("python=3.12", "tqdm", "pytorch=*=cuda*", "cuda-version=12.9", "make"),
        pip=("requests", "rich"),
        virtual_packages={"__unix": "0", "__glibc": "2.28", "__cuda": "12.9"},
        variables={"ENVSPEC_TARGET": "gpu", "ENVSPEC_DEVICE": "cuda", "A": "b", "ENVSPEC": "c"},
        runner="ubuntu-latest",
        runner_has_accelerator=True,
        smoke_device="cuda",
        torch_spec="pytorch=*=cuda*",
        cuda_version="12.9",
        env_name="sd-gpu",
        smoke_with_model=False,
        smoke_steps=20,
        smoke_resolution=256,
        pip_allow_sdist=("foo-bar",),
        common_dependencies=("python=3.12", "tqdm"),
    )
    mac = spec.resolve("mac")
    assert (mac.cuda_version, mac.torch_spec, mac.smoke_with_model, mac.smoke_steps, mac.smoke_resolution) == (
        None,
        "pytorch>=2.9",
        True,
        None,
        None,
    )
    assert (mac.description, mac.runner_has_accelerator, mac.platform_family) == ("", False, "osx")
    assert [t.name for t in spec.resolve_all()] == ["gpu", "mac"]


def test_resolving_an_unknown_target() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(BASE, P).resolve("win")
    assert (info.value.message, info.value.tip) == ("envspec.yml: no target named 'win'", "choose one of: gpu, mac")


@pytest.mark.parametrize(
    ("spec", "version"),
    [
        ("cuda-version=12.9", "12.9"),
        ("cuda-version==12.9", "12.9"),
        ("cuda-version 12.*", "12"),
        ("cuda-version=12.6.*", "12.6"),
        ("cuda-version", "*"),
        ("cuda-version>=12", ">=12"),
    ],
)
def test_match_version(spec: str, version: str) -> None:
    assert _match_version(spec) == version


def test_pip_name_and_unsafe_characters() -> None:
    assert pip_name("Pillow[x]>=10") == "pillow"
    assert pip_name("Foo_Bar.baz==1") == "foo-bar-baz"
    assert _unsafe_character("plain text, é and ✓") is None
    assert _unsafe_character("a\x00b\nc") == "\x00"
    assert _unsafe_character("a\u2029") == "\u2029"
    assert _unsafe_character("\ud800") == "\ud800"


def test_json_schema_header() -> None:
    schema = json_schema()
    assert list(schema)[:2] == ["$schema", "$comment"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$comment"] == "GENERATED by `envspec render` from envspec/spec.py; do not edit."
    assert schema["title"] == "envspec.yml"  # not pydantic's "SpecDocument"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["version", "name", "channels", "dependencies", "targets"]


BAD_PATH = "is not a relative path inside the repository (no leading '/', '..' or backslash)"
BAD_REVISION = "is not a branch, tag or commit (e.g. 'main', 'v1.0', or 40 hex digits)"


def _model(fields: str) -> tuple[str, str]:
    return (
        "targets:",
        f"models:\n  a: {{repo: o/a, revision: main, layout: diffusers, license: MIT{fields}}}\ntargets:",
    )


def _revision(rev: str) -> tuple[str, str]:
    return ("targets:", f"models:\n  a: {{repo: o/a, revision: {rev}, layout: diffusers, license: MIT}}\ntargets:")


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            ('__glibc: "2.28"', '__glibc: "two"'),
            (
                "envspec.yml:9: targets.gpu.virtual_packages.__glibc: 'two' is not 'VERSION' or 'VERSION BUILD' (e.g. "
                '"12.9" or "1 x86_64")'
            ),
        ),
        (
            ("targets:", "pip: ['foo==']\ntargets:"),
            (
                "envspec.yml:5: pip.0: invalid pip requirement 'foo==': Expected semicolon (after name with no version "
                "specifier) or end foo== ^"
            ),
        ),
        (
            ("targets:", "models:\n  a: {repo: o/a..b, revision: main, layout: diffusers, license: MIT}\ntargets:"),
            (
                "envspec.yml:6: models.a.repo: 'o/a..b' is not a Hugging Face repository id ('namespace/name': "
                "letters, digits, '-', '_', '.'; no '--' or '..')"
            ),
        ),
        (_revision("v1..2"), f"envspec.yml:6: models.a.revision: 'v1..2' {BAD_REVISION}"),
        (_revision("v1."), f"envspec.yml:6: models.a.revision: 'v1.' {BAD_REVISION}"),
        (_revision("-x"), f"envspec.yml:6: models.a.revision: '-x' {BAD_REVISION}"),
        (_model(", include: [a//b]"), f"envspec.yml:6: models.a.include.0: 'a//b' {BAD_PATH}"),
        (_model(", include: [./a]"), f"envspec.yml:6: models.a.include.0: './a' {BAD_PATH}"),
        (_model(", include: ['~x']"), f"envspec.yml:6: models.a.include.0: '~x' {BAD_PATH}"),
        (_model(", include: ['a\\b']"), f"envspec.yml:6: models.a.include.0: {'a' + chr(92) + 'b'!r} {BAD_PATH}"),
        (
            (
                "targets:",
                ("models:\n  a: {repo: o/a, revision: main, layout: single_file, file: ../x, license: MIT}\ntargets:"),
            ),
            f"envspec.yml:6: models.a.file: '../x' {BAD_PATH}",  # no validator name in the field path
        ),
        (
            ("smoke_device: mps", "smoke_device: mps\n    variables: {1BAD: x}"),
            "envspec.yml:20: targets.mac.variables.1BAD: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        ),
    ],
)
def test_field_refusals_word_for_word(edits: tuple[str, ...], message: str) -> None:
    assert refusal(edit(*edits)) == (message, SCHEMA_TIP)


def test_what_the_model_fields_accept() -> None:
    ok = edit(*_revision("V1.0_rc/2"))
    assert parse_spec(ok, P).document.models["a"].revision == "V1.0_rc/2"
    spec = parse_spec(edit(*_model(", include: ['a~', 'x/y*', 'b.c']")), P)
    assert spec.document.models["a"].include == ["a~", "x/y*", "b.c"]
