"""`envspec report RESULTS_DIR [--out DIR]`: one page showing every target's smoke result and lockfile."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli.common import add_mirror_option, load, progress
from envspec.errors import SpecError
from envspec.render import workflows as ci
from envspec.report import build as report


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
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise SpecError(
            f"{results_dir}: no such folder",
            tip="pass the folder `envspec smoke --out` wrote into (one <target>/ folder per target)",
        )
    targets = spec.resolve_all()
    results = report.read_results(results_dir)
    progress(f"report: {len(results)} smoke result(s) in {results_dir}, {len(targets)} target(s) in the spec")
    mirrors = parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV)) or None  # None: is_fresh's own default
    locks = {t.name: report.read_lock(project, t, mirrors) for t in targets}
    model = report.build_report(targets, results, locks, report.github_context(os.environ))
    hint = (
        f"Images: report.html in the `{ci.REPORT_ARTIFACT}` artifact; each target's smoke.png in its "
        f"`{ci.artifact_name('<target>')}` artifact."
        if os.environ.get("GITHUB_ACTIONS") == "true"
        else f"Images: see {Path(args.out) / 'report.html'}."
    )
    written = report.write_report(model, Path(args.out), image_hint=hint)
    for row in model.rows:
        progress(f"  {row.target:<24} {row.status:<8} lock {row.lock.state}")
    progress(f"report: {model.headline}")
    print(written.html)
    print(written.markdown)
    return 0
