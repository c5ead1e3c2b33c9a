"""`envspec diff [--base REF] [--json]`: markdown table of lockfile changes per target (for relock PR bodies)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from envspec.cli.common import Context, add_json_option, load, print_json, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="HEAD", metavar="GIT_REF", help="compare against this git ref (default HEAD)")
    parser.add_argument(
        "--target", "-t", action="append", default=[], metavar="NAME", help="only this target (repeatable)"
    )
    add_json_option(parser, "every target's package changes")


@dataclass(frozen=True)
class DiffRequest:
    base: str = "HEAD"
    targets: tuple[str, ...] = ()
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DiffRequest:
        return cls(base=args.base, targets=tuple(dict.fromkeys(args.target)), json=args.json)


def run(args: argparse.Namespace, ctx: Context) -> int:
    return diff(DiffRequest.from_args(args), ctx)


def diff(request: DiffRequest, ctx: Context) -> int:
    from envspec.lock import diff_document, resolve_base, target_diff

    project, spec = load(ctx)
    names = list(request.targets) if request.targets else list(spec.targets)
    for name in names:
        spec.resolve(name)  # unknown names are a SpecError
    base = resolve_base(project.root, request.base)  # before any git show: a bad ref is refused, exit 2
    diffs = [target_diff(project, name, base) for name in names]
    if request.json:
        print_json(diff_document(request.base, base, diffs))
    else:
        sys.stdout.write("".join(d.markdown() for d in diffs))
    if not any(d.in_base or d.in_tree for d in diffs):  # stdout stays empty (a PR body): say why on stderr
        progress(
            f"diff: no lockfiles to compare: none of {', '.join(names)} has a lockfile in the working tree or at "
            f"{request.base} (tip: `envspec lock` writes them)"
        )
    elif not any(d.changes for d in diffs):
        progress(f"diff: no lockfile changes against {request.base} ({len(diffs)} targets compared)")
    return 0
