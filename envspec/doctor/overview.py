"""The doctor's report on one target, and its text table: shared by ``envspec doctor`` and ``envspec up``."""

from __future__ import annotations

from pathlib import Path

from envspec.channels import printable
from envspec.doctor.check import DOCTOR_ADVICE, Advice, Status
from envspec.doctor.diagnosis import Diagnosis, diagnose
from envspec.doctor.machine import MachineFacts
from envspec.doctor.recommend import recommend_target
from envspec.doctor.resources import estimate_env_bytes, models_need
from envspec.doctor.tools import install_commands
from envspec.fsutil import read_regular_text
from envspec.project import Project
from envspec.spec import ResolvedTarget, Spec


def read_lock_data(path: Path) -> str | None:
    """The conda-lock.yml's text, or None when it is missing, unreadable or no regular file of a sane
    size (a FIFO, /dev/zero: the estimate falls back)."""
    try:
        return read_regular_text(path)
    except (OSError, UnicodeDecodeError):
        return None


def examine(
    project: Project,
    spec: Spec,
    facts: MachineFacts,
    chosen: ResolvedTarget | None,
    *,
    advice: Advice | None = None,
    with_models: bool = True,
) -> Diagnosis:
    """The doctor's report on ``chosen`` (default: the target recommended for ``facts``), shared by
    ``envspec doctor`` and the first step of ``envspec up``."""

    targets = spec.resolve_all()
    target = chosen or recommend_target(facts, targets)
    estimate = None
    if target is not None:
        estimate = estimate_env_bytes(read_lock_data(project.conda_lock_file(target.name)), target)
    return diagnose(
        facts,
        targets,
        chosen=chosen,
        estimate=estimate,
        project_root=str(project.root),
        advice=advice or DOCTOR_ADVICE,
        models=models_need(project, spec) if with_models else None,
    )


def _target_line(label: str, target: ResolvedTarget | None) -> str:
    if target is None:
        return f"{label}: none"
    about = f" - {target.description}" if target.description else ""
    return f"{label}: {target.name} ({target.subdir}, {target.accelerator}){about}"


def render_text(report: Diagnosis, project: Project, *, install_line: bool = True) -> str:
    """The doctor's table; ``install_line``: end with how to install the target (``envspec up``, which
    installs it itself into its own prefix, leaves it out)."""

    f = report.facts
    gpu = f.nvidia.best
    rosetta = " under Rosetta" if f.rosetta else ""
    hardware = [f"{f.platform.system} {f.platform.machine}", f"Python {f.platform.python_version}{rosetta}"]
    if f.macos_version:
        hardware.append(f"macOS {f.macos_version}")
    if f.distro:
        hardware.append(f.distro.name or f.distro.id)
    if gpu:
        hardware.append(f"{gpu.name} (driver {gpu.driver})")
    lines = [f"machine: {', '.join(hardware)}", _target_line("recommended target", report.recommended)]
    if report.target is not None and report.target is not report.recommended:
        lines.append(_target_line("checked target", report.target))
    lines.append("")
    width = max((len(c.name) for c in report.checks), default=5)
    lines.append(f"{'STATUS':<6}  {'CHECK':<{width}}  REASON")
    for check in report.checks:
        lines.append(f"{check.status.value:<6}  {check.name:<{width}}  {check.reason}")
        if check.fix and check.status is not Status.PASS:
            lines.append(f"{'':<6}  {'':<{width}}  fix: {check.fix}")
    lines.append("")
    if report.target is not None and install_line:
        commands = install_commands(f, report.target)
        lines.append(f"install: {commands[0]}")
    counts = report.counts()
    verdict = "FAILED" if report.failed else "ok"
    lines.append(f"doctor: {verdict} ({counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['PASS']} PASS)")
    # GPU names, the distribution's name and tools' messages come from the machine's files and tools:
    # a control sequence or bidi override in them is shown escaped, never sent to the terminal
    return "\n".join(printable(line) for line in lines)
