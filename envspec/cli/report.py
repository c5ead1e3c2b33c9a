"""`envspec report RESULTS_DIR [--out DIR]`: one page showing every target's smoke result and lockfile."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from envspec.cli.common import Context, add_mirror_option, load, progress


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


@dataclass(frozen=True)
class ReportRequest:
    results_dir: Path
    out: Path = Path("outputs/report")
    mirrors: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ReportRequest:
        return cls(results_dir=Path(args.results_dir), out=Path(args.out), mirrors=tuple(args.mirror))


def run(args: argparse.Namespace, ctx: Context) -> int:
    return report(ReportRequest.from_args(args), ctx)


def report(request: ReportRequest, ctx: Context) -> int:
    from envspec.report import build_report

    project, spec = load(ctx)
    _, written = build_report(
        project,
        spec.resolve_all(),
        request.results_dir,
        request.out,
        mirrors=ctx.mirrors(request.mirrors),
        environ=ctx.settings.environ,
        progress=progress,
    )
    print(written.html)
    print(written.markdown)
    return 0
