"""Which of the spec's targets fits this machine best, and the default for commands run without ``--target``.

The recommended target is chosen from the spec's targets as data, never by name: first the
targets whose ``subdir`` is the hardware's own (``osx-arm64`` on an M1 even when Python runs under
Rosetta), then those the hardware can emulate (``osx-64`` on Apple silicon); among them the one
whose accelerator the machine has, preferring cuda > mps > cpu (a GPU with a too-old driver still
gets its CUDA target, whose FAIL names the driver it needs), then the fewest FAILs, then the fewest WARNs,
then the newest CUDA. A GPU-less Linux box (a laptop, every hosted CI runner)
therefore gets the shipped ``linux-cpu`` target; a spec without a CPU target for Linux gives it
``linux-cuda`` with a FAIL that says there is no NVIDIA GPU and how to go on (add a CPU target, or
accept CPU with ``envspec smoke --allow-cpu``).

``envspec install`` and ``envspec smoke`` call ``default_target(spec, probe)``; ``envspec doctor``
explains the same choice check by check (``envspec.doctor.diagnosis``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from envspec.doctor.check import DOCTOR_ADVICE, Advice, Check, Status
from envspec.doctor.gpu import accelerator_present, cuda_checks, target_cuda
from envspec.doctor.machine import MachineFacts, collect_facts
from envspec.doctor.platform import EMULATED_SUBDIRS, system_checks
from envspec.doctor.probe import Probe, SystemProbe
from envspec.errors import PlatformMismatch, SpecError
from envspec.spec import ResolvedTarget, Spec
from envspec.versions import version_tuple

#: Preference among accelerators the machine has (lower is better).
ACCELERATOR_PREFERENCE: Final[dict[str, int]] = {"cuda": 0, "mps": 1, "cpu": 2}


def fit_checks(
    facts: MachineFacts,
    target: ResolvedTarget,
    targets: Sequence[ResolvedTarget],
    advice: Advice = DOCTOR_ADVICE,
) -> list[Check]:
    """What the machine says about a target beyond its platform: OS, C library, conda subdir, GPU.

    Ranking counts their FAILs and WARNs; the diagnosis shows them after the platform check.
    """
    checks = system_checks(facts, target)
    if target.accelerator == "cuda":
        checks.extend(cuda_checks(facts, target, targets, advice))
    return checks


@dataclass(frozen=True)
class Fit:
    target: ResolvedTarget
    tier: int  # 0 native subdir, 1 emulated
    present: bool  # the machine has the target's accelerator
    fails: int
    warns: int

    def key(self, order: int) -> tuple[Any, ...]:
        cuda = target_cuda(self.target)
        newest_cuda = tuple(-n for n in version_tuple(cuda)) if cuda else ()
        return (
            self.tier,
            not self.present,
            # a GPU the machine has beats the CPU even with a FAIL (an old driver): its FAIL names the
            # driver it needs, where recommending the CPU target would hide the GPU ("torch silently on the CPU")
            ACCELERATOR_PREFERENCE.get(self.target.accelerator, 9),
            self.fails,
            self.warns,
            newest_cuda,
            order,
        )


def rank_targets(facts: MachineFacts, targets: Sequence[ResolvedTarget]) -> list[Fit]:
    """The targets this machine can run, best first (empty when none is for its platform)."""
    hw = facts.hardware_subdir
    if hw is None:
        return []
    tiers = {hw: 0, **dict.fromkeys(EMULATED_SUBDIRS.get(hw, ()), 1)}
    fits = [(order, _fit(facts, t, tiers[t.subdir])) for order, t in enumerate(targets) if t.subdir in tiers]
    return [fit for _, fit in sorted(fits, key=lambda pair: pair[1].key(pair[0]))]


def _fit(facts: MachineFacts, target: ResolvedTarget, tier: int) -> Fit:
    checks = fit_checks(facts, target, ())
    return Fit(
        target=target,
        tier=tier,
        present=accelerator_present(facts, target.accelerator),
        fails=sum(c.status is Status.FAIL for c in checks),
        warns=sum(c.status is Status.WARN for c in checks),
    )


def recommend_target(facts: MachineFacts, targets: Sequence[ResolvedTarget]) -> ResolvedTarget | None:
    """The target the doctor recommends. With ``$ENVSPEC_HOST_SUBDIR`` (``facts.forced_subdir``) the
    machine is taken to be that subdir: its single target (the best ranked of several), as
    :func:`choose_target` picks for install, smoke and up."""
    if facts.forced_subdir:
        matches = [t for t in targets if t.subdir == facts.forced_subdir]
        if len(matches) == 1:
            return matches[0]
        ranked = [f for f in rank_targets(facts, matches) if f.target.subdir == facts.forced_subdir]
        return ranked[0].target if ranked else (matches[0] if matches else None)
    ranked = rank_targets(facts, targets)
    return ranked[0].target if ranked else None


def default_target(spec: Spec, probe: Probe | None = None) -> ResolvedTarget:
    """The spec's target that fits this machine best (probing its hardware); see :func:`choose_target`."""
    facts = collect_facts(probe or SystemProbe(), str(spec.path.parent), hardware_only=True)
    return choose_target(spec, facts)


def choose_target(spec: Spec, facts: MachineFacts) -> ResolvedTarget:
    """The spec's target that fits this machine best; ``PlatformMismatch`` when none is for it.

    The one default for every command run without a target (install, smoke, up, doctor). With
    ``$ENVSPEC_HOST_SUBDIR`` set, the machine is taken to be that subdir: its single target, or, when
    the spec has several for it (``linux-cuda`` and ``linux-cpu``), the one this machine's GPU fits.
    """
    targets = spec.resolve_all()
    if facts.forced_subdir:
        if not any(t.subdir == facts.forced_subdir for t in targets):
            return single_target_for_subdir(targets, facts.forced_subdir)  # raises, naming the targets
        chosen = recommend_target(facts, targets)  # its single target, or the one this machine's GPU fits
        return chosen if chosen is not None else single_target_for_subdir(targets, facts.forced_subdir)
    best = recommend_target(facts, targets)
    if best is None:
        machine = facts.hardware_subdir or f"{facts.platform.system} {facts.platform.machine}"
        have = ", ".join(f"{t.name} ({t.subdir})" for t in targets)
        raise PlatformMismatch(
            f"{spec.path}: no target fits this machine ({machine}); targets: {have}",
            tip=f"pass --target NAME, or add a target with subdir: {machine} to envspec.yml; `envspec doctor` explains",
        )
    return best


def single_target_for_subdir(targets: Sequence[ResolvedTarget], subdir: str) -> ResolvedTarget:
    """The one target built for ``subdir``; an error naming the candidates otherwise."""
    matches = [t for t in targets if t.subdir == subdir]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise PlatformMismatch(
            f"no target of the spec is for this machine ({subdir}); targets: "
            + ", ".join(f"{t.name} ({t.subdir})" for t in targets),
            tip="name a target, e.g. `envspec install TARGET --prefix ./env`",
        )
    names = [t.name for t in matches]
    raise SpecError(
        f"several targets are for {subdir} ({', '.join(names)}); name the one to install",
        tip=f"e.g. `envspec install {names[0]} --prefix ./env`",
    )


def host_of(facts: MachineFacts) -> str:
    """The subdir this machine installs (``$ENVSPEC_HOST_SUBDIR`` wins); ``PlatformMismatch`` when unknown."""
    from envspec.errors import PlatformMismatch

    subdir = facts.install_subdir
    if subdir is None:
        plat = facts.platform
        raise PlatformMismatch(f"no conda subdir is known for this machine ({plat.system} {plat.machine})")
    return subdir
