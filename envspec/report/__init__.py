"""Stage 8 of 8, report: report.html and report.md from every target's smoke results and lockfiles.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envspec.report.build import build_report as build_report
    from envspec.report.inputs import SMOKE_JSON as SMOKE_JSON
    from envspec.report.inputs import SMOKE_PNG as SMOKE_PNG
    from envspec.report.inputs import read_smoke_dir as read_smoke_dir
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "SMOKE_JSON": "inputs",
            "SMOKE_PNG": "inputs",
            "build_report": "build",
            "read_smoke_dir": "inputs",
        },
    )

__all__ = [
    "SMOKE_JSON",
    "SMOKE_PNG",
    "build_report",
    "read_smoke_dir",
]
