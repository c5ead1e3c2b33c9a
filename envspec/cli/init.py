"""`envspec init`: write a starting envspec.yml in this folder (never over an existing one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from envspec.cli.common import Context, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        metavar="NAME",
        help="the environment's base name (default: the folder's name, made a valid conda name)",
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from envspec.render import project_name, starting_spec, write_new_spec
    from envspec.spec import parse_spec

    path = Path(ctx.settings.spec).absolute()
    text = starting_spec(args.name if args.name is not None else project_name(path.parent))
    spec = parse_spec(text, path)  # a --name the spec refuses fails here, before anything is written
    write_new_spec(path, text)
    progress(f"wrote {path}: targets {', '.join(spec.targets)}")
    progress("next: `envspec render`, then `envspec lock` (or `envspec up --prefix ./env`)")
    return 0
