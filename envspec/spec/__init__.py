"""Stage 1 of 8, spec: the strict schema of ``envspec.yml`` and the ``ResolvedTarget`` records every later stage reads.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envspec.spec.load import ResolvedTarget as ResolvedTarget
    from envspec.spec.load import Spec as Spec
    from envspec.spec.load import load_spec as load_spec
    from envspec.spec.load import parse_spec as parse_spec
    from envspec.spec.schema import ACCELERATOR_RULES as ACCELERATOR_RULES
    from envspec.spec.schema import ModelEntryDocument as ModelEntryDocument
    from envspec.spec.schema import Name as Name
    from envspec.spec.schema import json_schema as json_schema
    from envspec.spec.schema import pip_name as pip_name
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "ACCELERATOR_RULES": "schema",
            "ModelEntryDocument": "schema",
            "Name": "schema",
            "ResolvedTarget": "load",
            "Spec": "load",
            "json_schema": "schema",
            "load_spec": "load",
            "parse_spec": "load",
            "pip_name": "schema",
        },
    )

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
