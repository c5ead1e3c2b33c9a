"""`envspec diff [--base REF] [--json]`: markdown table of lockfile changes per target (for relock PR bodies)."""

from __future__ import annotations

import argparse
import sys

from envspec.cli.common import add_json_option, load, print_json, progress
from envspec.lock.diff import diff_document, resolve_base, target_diff


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", default="HEAD", metavar="GIT_REF", help="compare against this git ref (default HEAD)")
    parser.add_argument(
        "--target", "-t", action="append", default=[], metavar="NAME", help="only this target (repeatable)"
    )
    add_json_option(parser, "every target's package changes")


def run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    names = list(dict.fromkeys(args.target)) if args.target else list(spec.targets)
    for name in names:
        spec.resolve(name)  # unknown names are a SpecError
    base = resolve_base(project.root, args.base)  # before any git show: a bad ref is refused, exit 2
    diffs = [target_diff(project, name, base) for name in names]
    if args.json:
        print_json(diff_document(args.base, base, diffs))
    else:
        sys.stdout.write("".join(d.markdown() for d in diffs))
    if not any(d.in_base or d.in_tree for d in diffs):  # stdout stays empty (a PR body): say why on stderr
        progress(
            f"diff: no lockfiles to compare: none of {', '.join(names)} has a lockfile in the working tree or at "
            f"{args.base} (tip: `envspec lock` writes them)"
        )
    elif not any(d.changes for d in diffs):
        progress(f"diff: no lockfile changes against {args.base} ({len(diffs)} targets compared)")
    return 0
