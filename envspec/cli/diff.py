"""`envspec diff [--base REF]`: markdown table of lockfile changes per target (for relock PR bodies)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from envspec.cli.common import Context, load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="HEAD", metavar="GIT_REF", help="compare against this git ref (default HEAD)")
    parser.add_argument(
        "--target", "-t", action="append", default=[], metavar="NAME", help="only this target (repeatable)"
    )


@dataclass(frozen=True)
class DiffRequest:
    base: str = "HEAD"
    targets: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DiffRequest:
        return cls(base=args.base, targets=tuple(dict.fromkeys(args.target)))


def run(args: argparse.Namespace, ctx: Context) -> int:
    return diff(DiffRequest.from_args(args), ctx)


def diff(request: DiffRequest, ctx: Context) -> int:
    from envspec.lock.diff import diff_target, resolve_base

    project, spec = load(ctx)
    names = list(request.targets) if request.targets else list(spec.targets)
    for name in names:
        spec.resolve(name)  # unknown names are a SpecError
    base = resolve_base(project.root, request.base)  # before any git show: a bad ref is refused, exit 2
    sys.stdout.write("".join(diff_target(project, name, base) for name in names))
    return 0
