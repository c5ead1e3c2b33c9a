"""Before an install: is the target's lockfile there and current, and what to do if not.

As ``pixi install`` and ``uv sync`` do, ``envspec install`` and ``envspec up`` solve a missing or
stale lockfile first (saying so) and then install it; ``--locked`` refuses a missing or stale
lockfile (CI uses it: what is installed is what was committed); ``--frozen`` installs the lockfile
as it is, without checking it against ``envspec.yml``. :func:`lock_action` is the pure policy;
:func:`ensure_lockfile` carries it out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum, StrEnum

from envspec.errors import CheckFailed, SpecError
from envspec.lock.jobs import ProjectLike, TargetLike
from envspec.lock.run import LockOptions, is_fresh, lock
from envspec.settings import LockLimits

Progress = Callable[[str], None]


class LockMode(StrEnum):
    AUTO = "auto"  # solve a missing or stale lockfile, then install (the default)
    LOCKED = "locked"  # refuse a missing or stale lockfile
    FROZEN = "frozen"  # install the lockfile as it is, unchecked


class LockAction(Enum):
    USE = "use"  # the lockfile matches its inputs
    RELOCK = "relock"  # missing or stale: solve it now
    STOP = "stop"  # missing or stale under --locked
    UNCHECKED = "unchecked"  # --frozen: use whatever is there


def lock_action(fresh: bool, mode: LockMode) -> LockAction:
    if mode is LockMode.FROZEN:
        return LockAction.UNCHECKED
    if fresh:
        return LockAction.USE
    return LockAction.STOP if mode is LockMode.LOCKED else LockAction.RELOCK


def not_rendered_error(target: str) -> SpecError:
    return SpecError(
        f"lock: {target}: its environment file or virtual-package spec is missing",
        tip="run `envspec render` first",
    )


def stale_error(target: str, lockfile: str, missing: bool) -> CheckFailed:
    what = "does not exist" if missing else "does not match envspec.yml / the rendered files"
    return CheckFailed(
        f"lock: {lockfile} {what} and --locked was given; nothing was installed",
        tip=f"run `envspec lock --target {target}` and commit lockfiles/, or drop --locked to solve it now",
    )


def ensure_lockfile(
    project: ProjectLike,
    target: TargetLike,
    *,
    mirrors: Mapping[str, str],
    mode: LockMode,
    progress: Progress,
    limits: LockLimits | None = None,
) -> tuple[bool, str]:
    """Make sure ``target`` has a lockfile to install, per ``mode``: (re-locked?, one-line detail).
    ``limits``: the lock's, when it solves (None: the defaults)."""
    explicit = project.explicit_file(target.name)
    rel = explicit.relative_to(project.root).as_posix() if explicit.is_relative_to(project.root) else str(explicit)
    if mode is LockMode.FROZEN:
        if not explicit.is_file():
            raise CheckFailed(
                f"lock: {rel} does not exist (--frozen installs an existing lockfile as it is)",
                tip=f"drop --frozen to solve it now, or run `envspec lock --target {target.name}`",
            )
        return False, f"{rel} used as it is (--frozen: not checked against envspec.yml)"
    fresh = is_fresh(project, target, mirrors)
    if fresh is None:
        raise not_rendered_error(target.name)
    action = lock_action(fresh, mode)
    if action is LockAction.USE:
        return False, f"{rel} is up to date"
    missing = not explicit.is_file()
    if action is LockAction.STOP:
        raise stale_error(target.name, rel, missing=missing)
    progress(f"lock: {rel} {'does not exist' if missing else 'is stale'}; solving {target.name} first")
    summary = lock(project, [target], LockOptions(mirrors=mirrors, limits=limits or LockLimits()), progress=progress)
    (outcome,) = summary.outcomes
    if outcome.packages is None:  # an interrupted commit was completed: nothing left to solve
        return True, f"{rel} is up to date ({outcome.status})"
    return True, f"locked {rel}: {outcome.packages} packages, torch {outcome.torch}"
