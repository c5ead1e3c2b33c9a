"""Stage 7 of 8, smoke: the smoke test that runs inside a provisioned environment (``python -m envspec.smoke``).

Only the standard library, torch, diffusers, transformers, numpy and pillow may be imported by
this package (and ``envspec/__init__.py``): envspec itself and its other dependencies are not
installed in the environments it checks. ``envspec smoke`` copies just this package there.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envspec.smoke.cli import add_arguments as add_smoke_arguments
    from envspec.smoke.cli import main as smoke_main
    from envspec.smoke.cli import to_argv as smoke_argv
    from envspec.smoke.host import SmokeOptions as SmokeOptions
    from envspec.smoke.host import activation_vars as activation_vars
    from envspec.smoke.host import model_argv as model_argv
    from envspec.smoke.host import plan as smoke_plan
    from envspec.smoke.host import run_in_prefix as run_in_prefix
    from envspec.smoke.host import smoke as smoke
    from envspec.smoke.report import IMAGE_FILE as SMOKE_IMAGE_FILE
    from envspec.smoke.report import REPORT_FILE as SMOKE_REPORT_FILE
    from envspec.smoke.report import SCHEMA as SMOKE_SCHEMA
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "SMOKE_IMAGE_FILE": "report:IMAGE_FILE",
            "SMOKE_REPORT_FILE": "report:REPORT_FILE",
            "SMOKE_SCHEMA": "report:SCHEMA",
            "SmokeOptions": "host",
            "activation_vars": "host",
            "add_smoke_arguments": "cli:add_arguments",
            "model_argv": "host",
            "run_in_prefix": "host",
            "smoke": "host",
            "smoke_argv": "cli:to_argv",
            "smoke_main": "cli:main",
            "smoke_plan": "host:plan",
        },
    )

__all__ = [
    "SMOKE_IMAGE_FILE",
    "SMOKE_REPORT_FILE",
    "SMOKE_SCHEMA",
    "SmokeOptions",
    "activation_vars",
    "add_smoke_arguments",
    "model_argv",
    "run_in_prefix",
    "smoke",
    "smoke_argv",
    "smoke_main",
    "smoke_plan",
]
