"""Stage 2 of 8, render: environment files, virtual-package specs, the JSON schema and CI workflows from the spec.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.render.context import overridden_templates as overridden_templates
    from envspec.render.files import apply as apply_render
    from envspec.render.files import drift as render_drift
    from envspec.render.files import plan_render as plan_render
    from envspec.render.init import project_name as project_name
    from envspec.render.init import starting_spec as starting_spec
    from envspec.render.init import write_new_spec as write_new_spec
    from envspec.render.workflows import REPORT_ARTIFACT as REPORT_ARTIFACT
    from envspec.render.workflows import artifact_name as artifact_name

__all__ = [
    "REPORT_ARTIFACT",
    "apply_render",
    "artifact_name",
    "overridden_templates",
    "plan_render",
    "project_name",
    "render_drift",
    "starting_spec",
    "write_new_spec",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "REPORT_ARTIFACT": ("workflows", "REPORT_ARTIFACT"),
    "apply_render": ("files", "apply"),
    "artifact_name": ("workflows", "artifact_name"),
    "overridden_templates": ("context", "overridden_templates"),
    "plan_render": ("files", "plan_render"),
    "project_name": ("init", "project_name"),
    "render_drift": ("files", "drift"),
    "starting_spec": ("init", "starting_spec"),
    "write_new_spec": ("init", "write_new_spec"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.render`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
