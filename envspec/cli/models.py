"""`envspec models lock [--check] [--update [NAME ...]]` and `envspec models pull [NAME] [--dest DIR] [--trust-pickle]`.

Thin: parse, call ``envspec.models``, print. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.cli.common import Context, add_json_option, load, print_json, progress, table

if TYPE_CHECKING:
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    lock_help = (
        "pin each model's revision to a commit and record its files' sizes and hashes (lockfiles/models.lock.yml)"
    )
    lock = sub.add_parser("lock", help=lock_help, description=lock_help)
    mode = lock.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming models whose entry changed (stale) or whose branch moved (moved)",
    )
    mode.add_argument(
        "--update",
        nargs="*",
        metavar="NAME",
        default=None,
        help="move these models (all without NAME) to the commit their revision points at now",
    )
    add_json_option(lock, "every model's pin")
    pull_help = "fetch the locked files, check each size and hash, and place them in models/<name>/"
    pull = sub.add_parser("pull", help=pull_help, description=pull_help)
    pull.add_argument("name", nargs="?", metavar="NAME", help="one model (default: every model of envspec.yml)")
    pull.add_argument("--dest", metavar="DIR", help="put model folders in DIR/<name>/ instead of models/<name>/")
    pull.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow pickled files (.ckpt/.bin/.pt/.pth): loading one can run arbitrary code",
    )
    pull.add_argument(
        "--verify",
        action="store_true",
        help="hash every file already in place (default: trust those whose size and time are as pulled)",
    )
    add_json_option(pull, "every pulled model")


@dataclass(frozen=True)
class ModelsLockRequest:
    check: bool = False
    update: bool | tuple[str, ...] = False  # True: every model; names: these
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelsLockRequest:
        update: bool | tuple[str, ...] = False if args.update is None else (tuple(args.update) or True)
        return cls(check=bool(args.check), update=update, json=bool(args.json))


@dataclass(frozen=True)
class ModelsPullRequest:
    name: str | None = None
    dest: Path | None = None
    trust_pickle: bool = False
    verify: bool = False
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelsPullRequest:
        dest = Path(args.dest).expanduser() if args.dest else None
        return cls(
            name=args.name,
            dest=dest,
            trust_pickle=bool(args.trust_pickle),
            verify=bool(args.verify),
            json=bool(args.json),
        )


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.models_command == "lock":
        return _lock(ModelsLockRequest.from_args(args), ctx)
    return _pull(ModelsPullRequest.from_args(args), ctx)


def _lock(request: ModelsLockRequest, ctx: Context) -> int:
    from envspec.models import lock_models
    from envspec.units import human_bytes

    project, spec = load(ctx)
    update = request.update if isinstance(request.update, bool) else list(request.update)
    report = lock_models(project, spec, check=request.check, update=update, progress=progress)
    where = project.relative(report.path)
    if request.json:
        print_json(report.to_json(lockfile=where, check=request.check))
    if request.check:
        if request.json:
            return 0
        moved = "" if report.moved_checked else " (moved revisions not checked: HF_HUB_OFFLINE is set)"
        print(f"{where}: {len(report.models)} models up to date{moved}")
        return 0
    for result in report.models:
        for note in result.notes:
            progress(f"{result.name}: note: {note}")
        if result.pickles:
            progress(
                f"{result.name}: note: pickled files {', '.join(result.pickles)}: pull refuses them "
                "unless the entry says trust_pickle: true"
            )
    for name in report.dropped:
        progress(f"{name}: dropped (no longer in envspec.yml)")
    rows = [
        [
            r.name,
            r.status,
            f"{r.repo}@{r.revision}",
            r.commit[:12] + (f" (was {r.previous_commit[:12]})" if r.status == "updated" and r.previous_commit else ""),
            str(r.files),
            human_bytes(r.size),
        ]
        for r in report.models
    ]
    if rows and not request.json:
        print(table(["MODEL", "STATUS", "REVISION", "COMMIT", "FILES", "SIZE"], rows))
    progress(f"{'wrote' if report.written else 'unchanged:'} {where}")
    return 0


def _pull(request: ModelsPullRequest, ctx: Context) -> int:
    from envspec.models import PullOptions, PullProgress, pull_document, pull_models
    from envspec.units import human_bytes

    retries = ctx.settings.hub_retries()  # a bad ENVSPEC_HUB_RETRIES fails before anything starts
    project, spec = load(ctx)
    from envspec.channels import printable

    results = pull_models(
        project,
        spec,
        request.name,
        request.dest,
        PullOptions(trust_pickle=request.trust_pickle, verify=request.verify, retries=retries),
        progress=PullProgress(sys.stderr),
    )
    if not results:
        progress("no models in envspec.yml")
    if request.json:
        print_json(pull_document(results, project.relative))
        return 0
    for r in results:
        print(  # a path from --dest may hold undecodable bytes: shown escaped, never a UnicodeEncodeError
            f"{r.name}: {printable(str(project.relative(r.load_path)))} at {r.commit[:12]} "
            f"({r.fetched} fetched, {r.kept} already in place, {human_bytes(r.received)} downloaded"
            + (f", {len(r.removed)} left-over files removed" if r.removed else "")
            + ")"
        )
    return 0
