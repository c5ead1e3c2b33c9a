"""`envspec lock`: pinned lockfiles for every target, solved by conda-lock (see :mod:`envspec.lock.run`)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envspec.cli.common import Context, add_json_option, add_mirror_option, print_json, progress
from envspec.lock import stamp_digest, stamp_forget, stamp_fresh, stamp_record
from envspec.project import Project
from envspec.settings import LockLimits

if TYPE_CHECKING:  # imported when the stamp misses: pydantic, py-rattler and the lock stage cost ~0.25 s
    from envspec.spec import ResolvedTarget, Spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", "-t", action="append", default=[], metavar="NAME", help="lock only this target (repeatable)"
    )
    mode = parser.add_mutually_exclusive_group()  # --check changes nothing, --update changes lockfiles
    mode.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="PKG",
        help="move only this package to its latest allowed version (repeatable)",
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1, naming the stale targets, if any lockfile does not match its inputs",
    )
    add_mirror_option(parser, "solve channel NAME from URL instead")
    parser.add_argument(
        "--solver",
        default=None,
        metavar="micromamba|mamba|conda|PATH",
        help="drive this conda-compatible executable instead of envspec's built-in py-rattler solver",
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None, metavar="N", help="targets solved at once (default: CPU count)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show conda-lock's own output")
    parser.add_argument(
        "--exclude-newer",
        type=_cutoff,
        default=None,
        metavar="DATE",
        help="solve as of DATE (RFC 3339: 2025-06-01 or 2025-06-01T12:00:00Z): ignore packages published later; "
        "recorded in the lockfiles and kept by later runs (`--exclude-newer none` drops it)",
    )
    add_json_option(parser, "each target's outcome")


def _cutoff(text: str) -> str:
    """``--exclude-newer``'s value: a normalised UTC instant, or "" for ``none`` (drop the recorded one)."""
    from envspec.lock import parse_exclude_newer

    if text.strip().lower() == "none":
        return ""
    try:
        return parse_exclude_newer(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _select(spec: Spec, names: Sequence[str]) -> list[ResolvedTarget]:
    if not names:
        return list(spec.resolve_all())
    return [spec.resolve(n) for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class LockRequest:
    targets: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    check: bool = False
    mirrors: tuple[str, ...] = ()
    solver: str | None = None
    jobs: int | None = None
    verbose: bool = False
    exclude_newer: str | None = None  # a normalised cutoff, "" to drop the recorded one, None to keep it
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LockRequest:
        return cls(
            targets=tuple(args.target),
            update=tuple(args.update),
            check=bool(args.check),
            mirrors=tuple(args.mirror),
            solver=args.solver,
            jobs=args.jobs,
            verbose=bool(args.verbose),
            exclude_newer=args.exclude_newer,
            json=bool(args.json),
        )


def run(args: argparse.Namespace, ctx: Context) -> int:
    return lock(LockRequest.from_args(args), ctx)


def lock(request: LockRequest, ctx: Context) -> int:
    # a bad ENVSPEC_LOCK_TIMEOUT (_MEMORY, a download limit) fails before anything starts; --check solves nothing
    limits = LockLimits() if request.check else ctx.settings.lock_limits()
    mirrors = ctx.mirrors(request.mirrors)
    spec_path = ctx.settings.spec
    project = ctx.project
    plain = not request.update and not request.verbose and request.solver is None and request.exclude_newer is None
    current = stamp_digest(project.root, spec_path, request.targets, mirrors) if plain else None
    known = stamp_fresh(project.cache_dir, current)
    if known is not None:  # nothing changed since the last run that found every lockfile current
        if request.json:
            from envspec.lock import LockSummary, Outcome

            summary = LockSummary(outcomes=[Outcome(name, "up to date") for name in known.targets])
            print_json(summary.to_json(check=request.check, cutoffs=_cutoffs(project, known.targets)))
        elif request.check:
            print(f"all {len(known.targets)} target lockfiles are up to date")
        else:
            for name in known.targets:
                progress(f"{name}: up to date (inputs unchanged)")
            sys.stdout.write(known.table)
        return 0
    return _run(request, ctx, project, mirrors, limits)


def _cutoffs(project: Project, names: Sequence[str]) -> dict[str, str | None]:
    """The ``--exclude-newer`` cutoff each target's lockfile records."""
    from envspec.lock import recorded_exclude_newer

    return {name: recorded_exclude_newer(project.explicit_file(name)) for name in names}


def _run(request: LockRequest, ctx: Context, project: Project, mirrors: dict[str, str], limits: LockLimits) -> int:
    from envspec.lock import prestart

    # conda-lock's import (and the solver process's start) overlap loading the spec and planning
    plain = not request.update and not request.exclude_newer  # a target without lockfiles: solved as rendered
    with (
        contextlib.nullcontext()
        if request.check
        else prestart(
            project,
            request.solver,
            targets=request.targets,
            mirrors=mirrors if plain else None,
            update=bool(request.update),
            spec_path=ctx.settings.spec,
        )
    ) as early:
        from envspec.cli.common import load
        from envspec.lock import LockOptions
        from envspec.lock import lock as lock_targets

        _, spec = load(ctx)
        targets = _select(spec, request.targets)
        stamp_forget(project.cache_dir)
        options = LockOptions(
            mirrors=mirrors,
            update=tuple(request.update),
            check=request.check,
            solver=request.solver,
            jobs=request.jobs,
            verbose=request.verbose,
            exclude_newer=request.exclude_newer,
            early=early,
            limits=limits,
        )
        report = lock_targets(project, targets, options, progress=progress)
    from envspec.lock import LockSummary, Outcome

    if request.json:
        print_json(report.to_json(check=request.check, cutoffs=_cutoffs(project, [t.name for t in targets])))
    elif request.check:
        print(f"all {len(targets)} target lockfiles are up to date")
    else:
        sys.stdout.write(report.table())
    names = [t.name for t in targets]  # every selected lockfile is current now (lock raised otherwise)
    current = LockSummary(outcomes=[Outcome(name, "up to date") for name in names]).table()
    digest = stamp_digest(project.root, ctx.settings.spec, request.targets, mirrors)
    stamp_record(project.cache_dir, digest, names, current)
    return 0
