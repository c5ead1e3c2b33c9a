"""The target that fits this machine, for commands run without ``--target``.

``envspec install`` and ``envspec smoke`` call ``default_target(spec, probe)``; ``envspec doctor``
explains the same choice check by check. The choice itself is ``envspec.doctor.checks.recommend_target``.
"""

from __future__ import annotations

from envspec.doctor.checks import recommend_target
from envspec.doctor.machine import collect_facts
from envspec.doctor.probe import Probe, SystemProbe
from envspec.errors import PlatformMismatch
from envspec.spec.model import ResolvedTarget, Spec


def default_target(spec: Spec, probe: Probe | None = None) -> ResolvedTarget:
    """The spec's target that fits this machine best; ``PlatformMismatch`` when none is for it."""
    probe = probe or SystemProbe()
    facts = collect_facts(probe, str(spec.path.parent), hardware_only=True)
    targets = spec.resolve_all()
    best = recommend_target(facts, targets)
    if best is None:
        machine = facts.hardware_subdir or f"{facts.platform.system} {facts.platform.machine}"
        have = ", ".join(f"{t.name} ({t.subdir})" for t in targets)
        raise PlatformMismatch(
            f"{spec.path}: no target fits this machine ({machine}); targets: {have}",
            tip=f"pass --target NAME, or add a target with subdir: {machine} to envspec.yml; `envspec doctor` explains",
        )
    return best
