"""Stage 8 of 8, report: report.html and report.md from every target's smoke results and lockfiles.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.report.build import SMOKE_JSON as SMOKE_JSON
    from envspec.report.build import SMOKE_PNG as SMOKE_PNG
    from envspec.report.build import build_report as build_report
    from envspec.report.build import read_smoke_dir as read_smoke_dir

__all__ = [
    "SMOKE_JSON",
    "SMOKE_PNG",
    "build_report",
    "read_smoke_dir",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "SMOKE_JSON": ("build", "SMOKE_JSON"),
    "SMOKE_PNG": ("build", "SMOKE_PNG"),
    "build_report": ("build", "build_report"),
    "read_smoke_dir": ("build", "read_smoke_dir"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.report`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
