"""Stage 1 of 8, spec: the strict schema of ``envspec.yml`` and the ``ResolvedTarget`` records every later stage reads.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.spec.schema import ACCELERATOR_RULES as ACCELERATOR_RULES
    from envspec.spec.schema import ModelEntryDocument as ModelEntryDocument
    from envspec.spec.schema import Name as Name
    from envspec.spec.schema import ResolvedTarget as ResolvedTarget
    from envspec.spec.schema import Spec as Spec
    from envspec.spec.schema import json_schema as json_schema
    from envspec.spec.schema import load_spec as load_spec
    from envspec.spec.schema import parse_spec as parse_spec
    from envspec.spec.schema import pip_name as pip_name

__all__ = [
    "ACCELERATOR_RULES",
    "ModelEntryDocument",
    "Name",
    "ResolvedTarget",
    "Spec",
    "json_schema",
    "load_spec",
    "parse_spec",
    "pip_name",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "ACCELERATOR_RULES": ("schema", "ACCELERATOR_RULES"),
    "ModelEntryDocument": ("schema", "ModelEntryDocument"),
    "Name": ("schema", "Name"),
    "ResolvedTarget": ("schema", "ResolvedTarget"),
    "Spec": ("schema", "Spec"),
    "json_schema": ("schema", "json_schema"),
    "load_spec": ("schema", "load_spec"),
    "parse_spec": ("schema", "parse_spec"),
    "pip_name": ("schema", "pip_name"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.spec`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
