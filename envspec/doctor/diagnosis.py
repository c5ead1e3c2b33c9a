"""Everything the doctor found for one target: the checks of every family, in the order people read them.

``diagnose`` puts the families together: the platform, then what the machine says about the target
(``recommend.fit_checks``: OS, C library, conda subdir, GPU), then room and tools (Xcode, disk,
memory, installer, checkpoint). ``Diagnosis`` holds the result, and its ``as_json`` is the
``envspec doctor --json`` document (``"schema": "envspec-doctor/1"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from envspec.doctor.check import DOCTOR_ADVICE, Advice, Check, Status
from envspec.doctor.checkpoint import check_checkpoint
from envspec.doctor.machine import MachineFacts
from envspec.doctor.platform import check_platform
from envspec.doctor.recommend import fit_checks, recommend_target
from envspec.doctor.resources import EnvEstimate, ModelsNeed, check_disk, check_memory, estimate_env_bytes
from envspec.doctor.tools import check_installer, check_long_paths, check_xcode, install_commands
from envspec.spec import ResolvedTarget

SCHEMA: Final = "envspec-doctor/1"


@dataclass(frozen=True)
class Diagnosis:
    """The machine's facts, the recommended and the checked target, and the checks for the latter."""

    facts: MachineFacts
    recommended: ResolvedTarget | None
    target: ResolvedTarget | None
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(c.status is s for c in self.checks) for s in Status}

    def as_json(self, spec_path: str) -> dict[str, Any]:
        f = self.facts
        return {
            "schema": SCHEMA,
            "spec": spec_path,
            "recommended": self.recommended.name if self.recommended else None,
            "target": self.target.name if self.target else None,
            "ok": not self.failed,
            "summary": self.counts(),
            "machine": {
                "system": f.platform.system,
                "machine": f.platform.machine,
                "python": f.platform.python_version,
                "python_subdir": f.python_subdir,
                "hardware_subdir": f.hardware_subdir,
                "rosetta": f.rosetta,
                "macos": f.macos_version,
                "distro": None if f.distro is None else {"id": f.distro.id, "version": f.distro.version},
                "glibc": f.glibc,
                "nvidia": {
                    "status": f.nvidia.status,
                    "driver": f.nvidia.best.driver if f.nvidia.best else f.nvidia.driver,
                    "gpus": [
                        {"name": g.name, "memory_mib": g.memory_mib, "compute_cap": g.compute_cap}
                        for g in f.nvidia.gpus
                    ],
                },
                "memory_total": f.memory_total,
                "disk_free": f.disk_free,
                "conda_tools": [
                    {"name": t.name, "version": t.version, "platform": t.platform, "path": t.path}
                    for t in f.conda_tools
                ],
            },
            "install_commands": install_commands(f, self.target),
            "checks": [c.as_json() for c in self.checks],
        }


def diagnose(
    facts: MachineFacts,
    targets: Sequence[ResolvedTarget],
    *,
    chosen: ResolvedTarget | None = None,
    estimate: EnvEstimate | None = None,
    project_root: str = ".",
    advice: Advice = DOCTOR_ADVICE,
    models: ModelsNeed | None = None,
) -> Diagnosis:
    """All checks for ``chosen`` (default: the recommended target), fixes worded for ``advice``'s command."""
    recommended = recommend_target(facts, targets)
    target = chosen or recommended
    checks: list[Check] = []
    if target is None:
        hw = facts.hardware_subdir or f"{facts.platform.system} {facts.platform.machine}"
        have = ", ".join(sorted({t.subdir for t in targets})) or "none"
        checks.append(
            Check(
                "platform",
                Status.FAIL,
                f"no target in the spec is for this machine ({hw}); targets are for: {have}",
                f"add a target with subdir: {hw} to envspec.yml (`envspec targets` lists the spec's targets)",
            )
        )
    else:
        checks.append(check_platform(facts, target, recommended, advice))
        checks.extend(fit_checks(facts, target, targets, advice))
        if estimate is None:
            estimate = estimate_env_bytes(None, target)
    checks.extend(resource_checks(facts, target, estimate, project_root, models, advice=advice))
    return Diagnosis(facts=facts, recommended=recommended, target=target, checks=tuple(checks))


def resource_checks(
    facts: MachineFacts,
    target: ResolvedTarget | None,
    estimate: EnvEstimate | None,
    project_root: str,
    models: ModelsNeed | None = None,
    *,
    advice: Advice = DOCTOR_ADVICE,
) -> list[Check]:
    """Room and tools: Xcode (macOS), long paths (Windows), disk (when there is a target), memory,
    installer, checkpoint."""
    checks = []
    if facts.platform.system == "Darwin":
        checks.append(check_xcode(facts, target))
    if facts.platform.system == "Windows":
        checks.append(check_long_paths(facts))
    if target is not None and estimate is not None:
        checks.append(check_disk(facts, estimate, project_root, models))
    checks.append(check_memory(facts, target))
    checks.append(check_installer(facts, target, advice))
    checks.append(check_checkpoint(facts.checkpoint_path, facts.checkpoint_size))
    return checks
