"""Stage 2 of 8, render: environment files, virtual-package specs, the JSON schema and CI workflows from the spec.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "REPORT_ARTIFACT": "workflows",
            "apply_render": "files:apply",
            "artifact_name": "workflows",
            "overridden_templates": "context",
            "plan_render": "files",
            "project_name": "init",
            "render_drift": "files:drift",
            "starting_spec": "init",
            "write_new_spec": "init",
        },
    )

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
