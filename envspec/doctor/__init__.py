"""Stage 5 of 8, doctor: probe this machine, recommend a target, and check what stands in the way.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.doctor.check import UP_ADVICE as UP_ADVICE
    from envspec.doctor.check import Check as Check
    from envspec.doctor.check import Status as Status
    from envspec.doctor.machine import MachineFacts as MachineFacts
    from envspec.doctor.machine import collect_facts as collect_facts
    from envspec.doctor.overview import examine as examine
    from envspec.doctor.overview import render_text as doctor_text
    from envspec.doctor.probe import Probe as Probe
    from envspec.doctor.probe import SystemProbe as SystemProbe
    from envspec.doctor.recommend import choose_target as choose_target
    from envspec.doctor.recommend import host_of as host_of

__all__ = [
    "UP_ADVICE",
    "Check",
    "MachineFacts",
    "Probe",
    "Status",
    "SystemProbe",
    "choose_target",
    "collect_facts",
    "doctor_text",
    "examine",
    "host_of",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "Check": ("check", "Check"),
    "MachineFacts": ("machine", "MachineFacts"),
    "Probe": ("probe", "Probe"),
    "Status": ("check", "Status"),
    "SystemProbe": ("probe", "SystemProbe"),
    "UP_ADVICE": ("check", "UP_ADVICE"),
    "choose_target": ("recommend", "choose_target"),
    "collect_facts": ("machine", "collect_facts"),
    "doctor_text": ("overview", "render_text"),
    "examine": ("overview", "examine"),
    "host_of": ("recommend", "host_of"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.doctor`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
