"""`envspec render [--check]`: write (or check) every file generated from envspec.yml."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from envspec.cli import fastpath
from envspec.cli.common import Context, load, progress
from envspec.project import Project

#: The generated files render owns (as ``envspec.render.files.OWNED_GLOBS``, kept equal by a test)
#: and what their content depends on besides envspec.yml and templates/.
OWNED_GLOBS: Final = ("environment-*.yml", "lockfiles/*.virtual-packages.yml", "ci/*.yml", ".github/workflows/*.yml")
CODE: Final = ("spec", "render", "templates", "channels.py", "versions.py", "project.py", "cli/render.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a unified diff when committed files differ from what the source renders",
    )


@dataclass(frozen=True)
class RenderRequest:
    check: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RenderRequest:
        return cls(check=bool(args.check))


def run(args: argparse.Namespace, ctx: Context) -> int:
    return render(RenderRequest.from_args(args), ctx)


def inputs_digest(project: Project, spec_path: Path) -> str | None:
    """The digest of everything ``render --check``'s answer depends on."""
    files = [spec_path]
    files += sorted(p for p in project.templates_dir.rglob("*") if p.is_file())
    for pattern in OWNED_GLOBS:
        files += sorted(project.root.glob(pattern))
    return fastpath.digest(files, CODE, extra=str(spec_path.resolve()))


def render(request: RenderRequest, ctx: Context) -> int:
    project = ctx.project
    spec_path = ctx.settings.spec
    current = inputs_digest(project, spec_path) if request.check else None  # before reading: no race
    if request.check:
        known = fastpath.recall(project.cache_dir, "render", current)
        if isinstance(known, str):  # nothing changed since a run that found every file current
            progress(known)
            return 0
    from envspec.render import apply_render, overridden_templates, plan_render, render_drift

    project, spec = load(ctx)
    plan = plan_render(spec, project)
    overrides = [
        f"template {project.relative(project.templates_dir / name)} replaces envspec's {name}"
        for name in overridden_templates(project.templates_dir)
    ]
    for line in overrides:
        progress(line)
    if request.check:
        diff = render_drift(project, plan)
        if diff:
            sys.stdout.write(diff)
            progress("error: generated files are out of date with envspec.yml (tip: run `envspec render` and commit)")
            return 1
        ok = f"ok: {len(plan)} generated files match {project.relative(spec.path)}"
        fastpath.remember(project.cache_dir, "render", current, "\n".join([*overrides, ok]))
        progress(ok)
        return 0
    result = apply_render(project, plan)
    for path in result.written:
        progress(f"wrote    {project.relative(path)}")
    for path in result.removed:
        progress(f"removed  {project.relative(path)} (no longer produced)")
    progress(f"render: {len(result.written)} written, {len(result.unchanged)} unchanged, {len(result.removed)} removed")
    return 0
