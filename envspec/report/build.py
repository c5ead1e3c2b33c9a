"""The report stage: smoke results + lockfiles of every target -> one table -> ``report.html`` and ``report.md``.

Three layers, one way: *reading* (``inputs``: ``read_results``, ``read_lock``: disk in, plain
records out, never raising on bad input), *planning* (``matrix``: ``build_table``, pure, the table
model the tests check), *rendering* (``pages``: ``render_html``, ``render_markdown``: text out, every
input string escaped). Only ``write_report`` here touches the output folder, atomically;
``build_report`` is the stage's entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envspec.channels import printable
from envspec.errors import SpecError
from envspec.fsutil import atomic_write_text
from envspec.project import Project
from envspec.render import REPORT_ARTIFACT, artifact_name
from envspec.report.inputs import read_lock, read_results
from envspec.report.matrix import ResultTable, build_table
from envspec.report.pages import render_html, render_markdown
from envspec.spec import ResolvedTarget


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path


def write_report(report: ResultTable, out_dir: Path, image_hint: str = "") -> Written:
    """Write ``report.html`` and ``report.md`` into ``out_dir``, each atomically, after both rendered."""
    html_path = out_dir / "report.html"
    md_path = out_dir / "report.md"
    html_text = render_html(report)
    md_text = render_markdown(report, image_hint)
    atomic_write_text(html_path, html_text)
    atomic_write_text(md_path, md_text)
    return Written(html=html_path, markdown=md_path)


@dataclass(frozen=True)
class ReportOptions:
    """What to report on and where: ``results_dir`` holds one ``<target>/`` folder of smoke results
    per target, ``out_dir`` gets report.html and report.md. ``mirrors``: those lockfile freshness is
    judged with, as ``envspec lock`` would (None: none); ``environ``: the GitHub context and the title
    come from it; ``title`` None: ``report_title(environ)``."""

    results_dir: Path
    out_dir: Path
    mirrors: Mapping[str, str] | None = None
    environ: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None


def build_report(
    project: Project, targets: Sequence[ResolvedTarget], options: ReportOptions, *, progress: Callable[[str], None]
) -> tuple[ResultTable, Written]:
    """The report stage's entry point: read every result and lockfile, build the table, write both files."""
    results_dir, out_dir, environ = options.results_dir, options.out_dir, options.environ
    mirrors, title = options.mirrors, options.title
    if not results_dir.is_dir():
        raise SpecError(
            f"{results_dir}: no such folder",
            tip="pass the folder `envspec smoke --out` wrote into (one <target>/ folder per target)",
        )
    results = read_results(results_dir)
    progress(f"report: {len(results)} smoke result(s) in {results_dir}, {len(targets)} target(s) in the spec")
    locks = {t.name: read_lock(project, t, mirrors) for t in targets}
    table = build_table(targets, results, locks, github_context(environ), title or report_title(environ))
    hint = (
        f"Images: report.html in the `{REPORT_ARTIFACT}` artifact; each target's smoke.png in its "
        f"`{artifact_name('<target>')}` artifact."
        if environ.get("GITHUB_ACTIONS") == "true"
        else f"Images: see {out_dir / 'report.html'}."
    )
    written = write_report(table, out_dir, image_hint=hint)
    for row in table.rows:  # a results folder's name comes from an artifact: escaped for the terminal
        progress(f"  {printable(row.target):<24} {row.status:<8} lock {row.lock.state}")
    progress(f"report: {table.headline}")
    return table, written


def report_title(env: Mapping[str, str]) -> str:
    """ "envspec <workflow>" inside a GitHub Actions workflow (the verify workflow: "envspec verify"),
    else "envspec report" (a local ``envspec report`` or ``envspec up``)."""
    workflow = " ".join(env.get("GITHUB_WORKFLOW", "").split()) if env.get("GITHUB_ACTIONS") == "true" else ""
    return f"envspec {workflow}" if workflow else "envspec report"


def github_context(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Where the results came from, when run in GitHub Actions (from its standard variables)."""
    context: list[tuple[str, str]] = []
    if env.get("GITHUB_REPOSITORY"):
        context.append(("repository", env["GITHUB_REPOSITORY"]))
    if env.get("GITHUB_REF_NAME"):
        context.append(("ref", env["GITHUB_REF_NAME"]))
    if env.get("GITHUB_SHA"):
        context.append(("commit", env["GITHUB_SHA"][:12]))
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        context.append(("run", f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"))
    return context
