"""The ``--json`` documents of envspec, checked against the JSON schemas the package ships
(``envspec/schemas/<name>.schema.json``, documented in docs/json.md)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema

SCHEMAS = ("error", "lock", "diff", "install", "up", "models-lock", "models-pull")


def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((resources.files("envspec") / "schemas" / f"{name}.schema.json").read_text())
    return data


def only_document(stdout: str, name: str) -> dict[str, Any]:
    """``stdout`` must be exactly one JSON document (one line) valid against schema ``name``."""
    lines = stdout.splitlines()
    assert len(lines) == 1, f"stdout is not one JSON document: {stdout!r}"
    document: dict[str, Any] = json.loads(lines[0])
    jsonschema.validate(document, schema(name), cls=jsonschema.Draft202012Validator)
    assert document["schema"] == schema(name)["properties"]["schema"]["const"]
    return document
