"""Stage 7 of 8, smoke: the smoke test that runs inside a provisioned environment (``python -m envspec.smoke``).

Only the standard library, torch, diffusers, transformers, numpy and pillow may be imported by
this package (and ``envspec/__init__.py``): envspec itself and its other dependencies are not
installed in the environments it checks. ``envspec smoke`` copies just this package there.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

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

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "SMOKE_IMAGE_FILE": ("report", "IMAGE_FILE"),
    "SMOKE_REPORT_FILE": ("report", "REPORT_FILE"),
    "SMOKE_SCHEMA": ("report", "SCHEMA"),
    "SmokeOptions": ("host", "SmokeOptions"),
    "activation_vars": ("host", "activation_vars"),
    "add_smoke_arguments": ("cli", "add_arguments"),
    "model_argv": ("host", "model_argv"),
    "run_in_prefix": ("host", "run_in_prefix"),
    "smoke": ("host", "smoke"),
    "smoke_argv": ("cli", "to_argv"),
    "smoke_main": ("cli", "main"),
    "smoke_plan": ("host", "plan"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.smoke`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
