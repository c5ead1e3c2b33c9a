"""`envspec doctor [--target T] [--json]`: which target fits this machine, and what stands in the way.

Exit 0 when no check fails, 1 when one does. ``--json`` prints the same report as data
(``"schema": "envspec-doctor/1"``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envspec.cli.common import Context, load, progress

if TYPE_CHECKING:
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="T", help="check this target instead of the recommended one")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (schema envspec-doctor/1)")


@dataclass(frozen=True)
class DoctorRequest:
    target: str | None = None
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DoctorRequest:
        return cls(target=args.target, json=bool(args.json))


def run(args: argparse.Namespace, ctx: Context) -> int:
    return doctor(DoctorRequest.from_args(args), ctx)


def doctor(request: DoctorRequest, ctx: Context) -> int:
    from envspec.doctor import collect_facts, doctor_text, examine
    from envspec.errors import ExitCode

    project, spec = load(ctx)
    chosen = spec.resolve(request.target) if request.target else None
    progress("doctor: probing this machine...")
    facts = collect_facts(ctx.machine(), str(project.root))
    report = examine(project, spec, facts, chosen)
    if request.json:
        print(json.dumps(report.as_json(project.relative(spec.path)), indent=2))
    else:
        print(doctor_text(report, project))
    return int(ExitCode.CHECK_FAILED) if report.failed else int(ExitCode.OK)
