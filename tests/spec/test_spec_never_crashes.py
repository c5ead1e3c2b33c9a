"""Property test: any mutated or random YAML gives a Spec or a clean one-line SpecError, never a crash."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec.errors import SpecError
from envspec.spec.load import parse_spec

pytestmark = pytest.mark.fuzz  # asserts "never crashes": left out of mutation runs (docs/mutation.md)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "envspec.yml").read_text()
SHIPPED_DATA = yaml.safe_load(SHIPPED)

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = [p for p in _paths(SHIPPED_DATA) if p]


def _assert_clean(text: str) -> None:
    try:
        parse_spec(text, Path("envspec.yml"))
    except SpecError as err:
        line = err.one_line()
        assert "\n" not in line and line.startswith("error: envspec.yml")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(path=st.sampled_from(PATHS), value=JUNK, delete=st.booleans())
def test_mutated_spec_never_crashes(path: tuple[object, ...], value: object, delete: bool) -> None:
    data = copy.deepcopy(SHIPPED_DATA)  # what yaml.safe_load(SHIPPED) gives, without parsing it again (4 ms)
    node = data
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    _assert_clean(yaml.safe_dump(data))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text: str) -> None:
    _assert_clean(text)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(SHIPPED)), junk=st.text(max_size=10))
def test_spliced_text_never_crashes(cut: int, junk: str) -> None:
    _assert_clean(SHIPPED[:cut] + junk + SHIPPED[cut:])
