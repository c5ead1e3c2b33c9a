"""CI workflows rendered from the targets: ``ci/verify.yml``, ``ci/relock.yml`` and GitHub's copies.

A producer for ``render.PRODUCERS``. The matrix is planned by a pure function from the resolved
targets (one job per target, on the target's own runner label), so adding a target to envspec.yml
adds a CI job with no other edit. GitHub only reads ``.github/workflows/`` and does not follow
symlinks reliably, so the same bytes are written there too; ``envspec render --check`` checks both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from envspec.render.context import RenderContext
from envspec.spec import ResolvedTarget

#: Workflows envspec renders, by file name (template ``templates/ci/<name>.j2``).
WORKFLOWS: Final = ("verify.yml", "relock.yml")

#: Python that runs envspec itself on the runners (the environments bring their own).
CI_PYTHON: Final = "3.11"

#: Where the verify workflow puts smoke results, and the artifact names it uploads.
RESULTS_DIR: Final = "results"
REPORT_DIR: Final = "report"
REPORT_ARTIFACT: Final = "envspec-report"


def artifact_name(target: str) -> str:
    """Name of the artifact holding ``results/<target>/`` (smoke.png, smoke.json)."""
    return f"smoke-{target}"


def github_expr(expression: str) -> str:
    """``${{ expression }}`` for GitHub, written from Jinja without fighting its delimiters."""
    return "${{ " + expression + " }}"


def allow_cpu(target: ResolvedTarget) -> bool:
    """Whether CI runs the target's smoke test with ``--allow-cpu``: the target promises a GPU and its
    runner does not have one (the spec says so per target: ``runner_has_accelerator``; GitHub-hosted
    runners have no NVIDIA GPU and no usable MPS). Data, never a guess from the label's name."""
    return target.smoke_device != "cpu" and not target.runner_has_accelerator


@dataclass(frozen=True)
class MatrixEntry:
    """One verify job. Field names are the ``matrix.*`` keys the workflow uses."""

    target: str
    runner: str
    subdir: str
    accelerator: str
    smoke_device: str
    allow_cpu: bool
    artifact: str


def plan_matrix(targets: Iterable[ResolvedTarget]) -> list[MatrixEntry]:
    """Pure: one matrix entry per target, in spec order."""
    return [
        MatrixEntry(
            target=t.name,
            runner=t.runner,
            subdir=t.subdir,
            accelerator=t.accelerator,
            smoke_device=t.smoke_device,
            allow_cpu=allow_cpu(t),
            artifact=artifact_name(t.name),
        )
        for t in targets
    ]


def workflow_files(ctx: RenderContext) -> dict[Path, str]:
    """Producer: each workflow in ``ci/`` and its identical copy in ``.github/workflows/``."""
    project = ctx.project
    matrix = plan_matrix(ctx.targets)
    values = {
        "gh": github_expr,
        "source": ctx.source,
        "matrix": matrix,
        "targets": ctx.targets,
        "python": CI_PYTHON,
        "results_dir": RESULTS_DIR,
        "report_dir": REPORT_DIR,
        "report_artifact": REPORT_ARTIFACT,
        "lockfiles": [
            path
            for t in ctx.targets
            for path in (
                project.relative(project.conda_lock_file(t.name)),
                project.relative(project.explicit_file(t.name)),
            )
        ],
    }
    out: dict[Path, str] = {}
    for name in WORKFLOWS:
        text = ctx.jinja.get_template(f"ci/{name}.j2").render(name=name, **values)
        out[project.ci_dir / name] = text
        out[project.workflows_dir / name] = text
    return out
