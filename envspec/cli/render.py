"""`envspec render [--check]`: write (or check) every file generated from envspec.yml."""

from __future__ import annotations

import argparse
import sys

from envspec.cli.common import load, progress
from envspec.render import files as render
from envspec.render.context import overridden_templates


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a unified diff when committed files differ from what the source renders",
    )


def run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    plan = render.plan_render(spec, project)
    for name in overridden_templates(project.templates_dir):
        progress(f"template {project.relative(project.templates_dir / name)} replaces envspec's {name}")
    if args.check:
        diff = render.drift(project, plan)
        if diff:
            sys.stdout.write(diff)
            progress("error: generated files are out of date with envspec.yml (tip: run `envspec render` and commit)")
            return 1
        progress(f"ok: {len(plan)} generated files match {project.relative(spec.path)}")
        return 0
    result = render.apply(project, plan)
    for path in result.written:
        progress(f"wrote    {project.relative(path)}")
    for path in result.removed:
        progress(f"removed  {project.relative(path)} (no longer produced)")
    progress(f"render: {len(result.written)} written, {len(result.unchanged)} unchanged, {len(result.removed)} removed")
    return 0
