"""Fixtures of the doctor's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.spec.load import Spec, load_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spec() -> Spec:
    """The shipped envspec.yml (a test file may define its own)."""
    return load_spec(REPO / "envspec.yml")
