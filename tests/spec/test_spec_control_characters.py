"""Control characters in any text of the spec are refused where they are written (issue #11, case 10)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from envspec.errors import ExitCode, SpecError
from envspec.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "envspec.yml").read_text(encoding="utf-8")


def _with(path: tuple[str, ...], value: object) -> str:
    data = yaml.safe_load(SHIPPED)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return yaml.safe_dump(data, sort_keys=False)


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_nul_in_a_description_is_refused_at_its_line() -> None:
    text = _with(("targets", "linux-cuda", "description"), "Linux\x00GPU")
    with pytest.raises(SpecError) as info:
        parse_spec(text, Path("envspec.yml"))
    line = _line_of(text, "Linux\\0GPU")
    assert info.value.message.startswith(
        f"envspec.yml:{line}: targets.linux-cuda.description: contains U+0000 (control character)"
    )
    assert info.value.exit_code == ExitCode.SPEC_INVALID and "\n" not in info.value.one_line()


def test_a_nul_in_a_variable_value_is_refused() -> None:
    text = _with(("targets", "linux-cuda", "variables"), {"FOO": "a\x00b"})
    with pytest.raises(SpecError, match=r"^envspec\.yml:\d+: targets\.linux-cuda\.variables\.FOO: contains U\+0000"):
        parse_spec(text, Path("envspec.yml"))


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\t", "U+0009"),
        ("\n", "U+000A"),
        ("\x1b", "U+001B"),
        ("\x7f", "U+007F"),
        ("\x85", "U+0085"),
        ("\u2028", "U+2028 (line separator)"),
        ("\ud800", "U+D800 (surrogate)"),
    ],
)
def test_control_characters_and_line_breaks_are_refused(char: str, shown: str) -> None:
    text = _with(("targets", "osx-64", "description"), f"Intel{char}Mac")
    with pytest.raises(
        SpecError, match=r"^envspec\.yml:\d+: targets\.osx-64\.description: contains " + re.escape(shown)
    ):
        parse_spec(text, Path("envspec.yml"))


def test_a_control_character_in_a_key_is_refused() -> None:
    # "\x01" would fail the variable name pattern too; here the one message names the character.
    text = _with(("targets", "osx-64", "variables"), {"A\x01": "1"})
    with pytest.raises(SpecError, match=r"^envspec\.yml:\d+: targets\.osx-64\.variables\.A\x01: contains U\+0001"):
        parse_spec(text, Path("envspec.yml"))


def test_printable_unicode_is_fine() -> None:
    text = _with(("targets", "osx-64", "description"), "Intel Mac — ünïcödé\u00a0ok")
    assert parse_spec(text, Path("envspec.yml")).resolve("osx-64").description == "Intel Mac — ünïcödé\u00a0ok"
