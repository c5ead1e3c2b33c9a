"""Room for the environment: free disk for the packages (and an SD-1 checkpoint), and RAM.

The environment's size comes from its ``conda-lock.yml``, read by ``envspec.lock.condalock`` (the
one reader of that format), when the packages carry sizes; otherwise a measured default per
accelerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from envspec.doctor.check import Check, GiB, Status, gib
from envspec.doctor.checkpoint import CHECKPOINT_BYTES, CHECKPOINT_SUSPICIOUS_BELOW
from envspec.doctor.machine import MachineFacts
from envspec.errors import SpecError
from envspec.lock import read_conda_lock
from envspec.models import lockfile_path as models_lockfile
from envspec.models import models_size
from envspec.project import Project
from envspec.spec import ResolvedTarget, Spec

#: Host RAM (on Apple silicon it is also the GPU's memory).
RAM_FAIL_BELOW: Final = 4 * GiB
RAM_WARN_BELOW: Final = 8 * GiB

#: Environment size when the lockfile has no package sizes: conda-forge torch environments measured
#: as download + extracted (CUDA pulls cuDNN, cuBLAS, NCCL... a few GiB compressed).
ENV_DEFAULT_BYTES: Final[dict[str, int]] = {"cuda": 12 * GiB, "mps": 4 * GiB, "cpu": 4 * GiB}
#: Download sizes -> disk: the package cache keeps the archive and its extracted copy, the
#: environment hardlinks the extracted files; extracted is ~3x the compressed size.
DOWNLOAD_TO_DISK_FACTOR: Final = 4.0
#: Free space less than this times the need is a WARN: the estimate is rough.
DISK_HEADROOM: Final = 1.25


@dataclass(frozen=True)
class EnvEstimate:
    bytes: int
    source: str  # for people: where the figure comes from


def estimate_env_bytes(lock_text: str | None, target: ResolvedTarget) -> EnvEstimate:
    """Disk an environment needs, from the text of its ``conda-lock.yml`` when the packages carry sizes.

    conda-lock's own format has no sizes; a lockfile that does (a ``size`` per package, as rattler
    lockfiles and FETCH records have) gives a figure for this environment. Otherwise (no lockfile,
    one that is not a conda-lock v1 file, or packages without sizes) a documented default per
    accelerator.
    """
    default = EnvEstimate(ENV_DEFAULT_BYTES[target.accelerator], f"default for a {target.accelerator} environment")
    if lock_text is None:
        return default
    try:
        packages = read_conda_lock(lock_text, "conda-lock.yml", target.subdir)
    except (SpecError, RecursionError):
        return EnvEstimate(default.bytes, f"{default.source}; the lockfile is not a readable conda-lock.yml")
    known = [p.size for p in packages if p.size is not None]
    if not packages or len(known) < len(packages):
        return EnvEstimate(default.bytes, f"{default.source}; the lockfile ({len(packages)} packages) has no sizes")
    download = sum(known)
    return EnvEstimate(
        int(download * DOWNLOAD_TO_DISK_FACTOR),
        f"{len(packages)} packages, {gib(download)} to download (x{DOWNLOAD_TO_DISK_FACTOR:g} for cache + environment)",
    )


@dataclass(frozen=True)
class ModelsNeed:
    """What pulling the spec's locked models still writes (``envspec.models.models_size``)."""

    bytes: int
    source: str


def models_need(project: Project, spec: Spec) -> ModelsNeed | None:
    """The locked models' bytes not yet in place; None without models or a models lockfile (then the
    disk check counts one SD-1 checkpoint instead)."""
    if not spec.document.models or not models_lockfile(project).is_file():
        return None
    missing = models_size(project, missing_only=True)
    return ModelsNeed(missing, f"{project.relative(models_lockfile(project))}, files not pulled yet")


def check_disk(
    facts: MachineFacts, estimate: EnvEstimate, project_root: str, models: ModelsNeed | None = None
) -> Check:
    if models is not None:
        extra, extra_text = models.bytes, f"models ~{gib(models.bytes)} ({models.source})"
    else:
        has_checkpoint = facts.checkpoint_size is not None and facts.checkpoint_size >= CHECKPOINT_SUSPICIOUS_BELOW
        extra = 0 if has_checkpoint else CHECKPOINT_BYTES
        extra_text = f"{gib(extra)} for an SD-1 checkpoint"
    need = estimate.bytes + extra
    parts = f"environment ~{gib(estimate.bytes)} ({estimate.source})"
    if extra:
        parts += f" + {extra_text}"
    free = facts.disk_free
    if free is None:
        return Check("disk", Status.WARN, f"free space unknown ({facts.notes.get('disk', 'no answer')}); need {parts}")
    fix = (
        "free some space, or put the environment and package cache on a bigger disk "
        "(--prefix, CONDA_PKGS_DIRS / RATTLER_CACHE_DIR)"
    )
    if free < need:
        return Check("disk", Status.FAIL, f"{gib(free)} free at {project_root}, need ~{gib(need)}: {parts}", fix)
    if free < need * DISK_HEADROOM:
        return Check(
            "disk",
            Status.WARN,
            f"{gib(free)} free at {project_root}, just above the ~{gib(need)} needed: {parts}",
            fix,
        )
    return Check("disk", Status.PASS, f"{gib(free)} free, need ~{gib(need)}: {parts}")


def check_memory(facts: MachineFacts, target: ResolvedTarget | None) -> Check:
    total = facts.memory_total
    shared = " (shared with the GPU)" if target is not None and target.accelerator == "mps" else ""
    if total is None:
        return Check("memory", Status.WARN, f"RAM unknown ({facts.notes.get('memory', 'no answer')})", None)
    if total < RAM_FAIL_BELOW:
        return Check(
            "memory",
            Status.FAIL,
            f"{gib(total)} RAM{shared}: SD-1 needs >= {gib(RAM_FAIL_BELOW)} to load",
            "use a machine with >= 8 GiB",
        )
    if total < RAM_WARN_BELOW:
        return Check(
            "memory",
            Status.WARN,
            f"{gib(total)} RAM{shared}: loading SD-1 will swap below {gib(RAM_WARN_BELOW)}",
            "close other programs; expect slow loading",
        )
    return Check("memory", Status.PASS, f"{gib(total)} RAM{shared}")
