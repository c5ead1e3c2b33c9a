"""`envspec report RESULTS_DIR [--out DIR]`: one page showing every target's smoke result and lockfile."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli.common import add_mirror_option, load, progress
from envspec.report.build import build_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help="folder holding <target>/smoke.json and <target>/smoke.png per target (as `envspec smoke --out` writes)",
    )
    parser.add_argument(
        "--out",
        default="outputs/report",
        metavar="DIR",
        help="where report.html and report.md are written (default: outputs/report)",
    )
    add_mirror_option(parser, "the mirrors the lockfiles were solved with, for their freshness")


def run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    _, written = build_report(
        project,
        spec.resolve_all(),
        Path(args.results_dir),
        Path(args.out),
        mirrors=parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV)) or None,  # None: is_fresh's own default
        environ=os.environ,
        progress=progress,
    )
    print(written.html)
    print(written.markdown)
    return 0
