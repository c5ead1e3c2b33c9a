"""Stage 5 of 8, doctor: probe this machine, recommend a target, and check what stands in the way.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "Check": "check",
            "MachineFacts": "machine",
            "Probe": "probe",
            "Status": "check",
            "SystemProbe": "probe",
            "UP_ADVICE": "check",
            "choose_target": "recommend",
            "collect_facts": "machine",
            "doctor_text": "overview:render_text",
            "examine": "overview",
            "host_of": "recommend",
        },
    )

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
