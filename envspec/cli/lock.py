"""`envspec lock`: pinned lockfiles for every target, solved by conda-lock (see :mod:`envspec.lock.run`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli.common import add_json_option, add_mirror_option, print_json, progress
from envspec.lock import stamp
from envspec.project import Project

if TYPE_CHECKING:  # imported when the stamp misses: pydantic, py-rattler and the lock stage cost ~0.25 s
    from envspec.spec.model import ResolvedTarget, Spec


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
    from envspec.lock.plan import parse_exclude_newer

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


def run(args: argparse.Namespace) -> int:
    mirrors = parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV))
    spec_path = Path(args.spec)
    project = Project.from_spec_path(spec_path)
    plain = not args.update and not args.verbose and args.solver is None and args.exclude_newer is None
    current = stamp.digest(project.root, spec_path, args.target, mirrors) if plain else None
    known = stamp.fresh(project.cache_dir, current)
    if known is not None:  # nothing changed since the last run that found every lockfile current
        if args.json:
            from envspec.lock.run import LockSummary, Outcome

            summary = LockSummary(outcomes=[Outcome(name, "up to date") for name in known.targets])
            print_json(summary.to_json(check=args.check, cutoffs=_cutoffs(project, known.targets)))
        elif args.check:
            print(f"all {len(known.targets)} target lockfiles are up to date")
        else:
            for name in known.targets:
                progress(f"{name}: up to date (inputs unchanged)")
            sys.stdout.write(known.table)
        return 0
    return _run(args, project, mirrors)


def _cutoffs(project: Project, names: Sequence[str]) -> dict[str, str | None]:
    """The ``--exclude-newer`` cutoff each target's lockfile records."""
    from envspec.lock.run import recorded_exclude_newer

    return {name: recorded_exclude_newer(project.explicit_file(name)) for name in names}


def _run(args: argparse.Namespace, project: Project, mirrors: dict[str, str]) -> int:
    from envspec.cli.common import load
    from envspec.lock.run import LockSummary, Outcome, lock

    _, spec = load(args)
    targets = _select(spec, args.target)
    stamp.forget(project.cache_dir)
    report = lock(
        project,
        targets,
        mirrors=mirrors,
        update=args.update,
        check=args.check,
        solver=args.solver,
        jobs=args.jobs,
        verbose=args.verbose,
        progress=progress,
        exclude_newer=args.exclude_newer,
    )
    if args.json:
        print_json(report.to_json(check=args.check, cutoffs=_cutoffs(project, [t.name for t in targets])))
    elif args.check:
        print(f"all {len(targets)} target lockfiles are up to date")
    else:
        sys.stdout.write(report.table())
    names = [t.name for t in targets]  # every selected lockfile is current now (lock raised otherwise)
    current = LockSummary(outcomes=[Outcome(name, "up to date") for name in names]).table()
    stamp.record(project.cache_dir, stamp.digest(project.root, Path(args.spec), args.target, mirrors), names, current)
    return 0
