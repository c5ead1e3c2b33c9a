"""`envspec diff [--base REF]`: markdown table of lockfile changes per target (for relock PR bodies)."""

from __future__ import annotations

import argparse
import sys

from envspec.cli.common import load
from envspec.lock.diff import diff_target, resolve_base


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="HEAD", metavar="GIT_REF", help="compare against this git ref (default HEAD)")
    parser.add_argument(
        "--target", "-t", action="append", default=[], metavar="NAME", help="only this target (repeatable)"
    )


def run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    names = list(dict.fromkeys(args.target)) if args.target else list(spec.targets)
    for name in names:
        spec.resolve(name)  # unknown names are a SpecError
    base = resolve_base(project.root, args.base)  # before any git show: a bad ref is refused, exit 2
    sys.stdout.write("".join(diff_target(project, name, base) for name in names))
    return 0
