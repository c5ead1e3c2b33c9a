"""What every renderer shares: the Jinja2 environment with YAML-safe filters, and the render context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from envspec.project import Project
from envspec.spec import ResolvedTarget, Spec


def yaml_scalar(value: object) -> str:
    """A YAML scalar that reads back as exactly ``value`` (quoted only when needed)."""
    text = _dump(value)
    if not text.isprintable() or yaml.safe_load(text) != value:
        text = _double_quoted(value)
    return text


def _double_quoted(value: object) -> str:
    """YAML's own double-quoted form: escapes every character YAML cannot carry raw."""
    return _dump(value, default_style='"')


def _dump(value: object, **options: Any) -> str:
    """One YAML scalar on one line, without the document-end marker. No ``strip()``: it would eat
    meaningful Unicode spaces such as U+00A0."""
    text: str = yaml.safe_dump(value, default_flow_style=True, width=2**31, allow_unicode=True, **options)
    return text.removesuffix("\n").removesuffix("\n...")


def yaml_string(value: object) -> str:
    """Always a quoted YAML string (virtual-package versions like "0" must stay strings)."""
    return _double_quoted(str(value))


def one_line_comment(value: object) -> str:
    """Text for a YAML ``#`` comment: one line, and every character YAML cannot carry raw (a NUL, a
    control character) written as its escape. The spec refuses those; this keeps the file valid YAML anyway."""
    text = " ".join(str(value).split())
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


#: The templates envspec ships (package data): what renders a project without a ``templates/`` of its own.
PACKAGE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def template_dirs(project_templates: Path | None) -> list[Path]:
    """Where templates are looked up, first match wins: the project's own ``templates/`` (when it has
    one), then envspec's. A project overrides one file (``templates/ci/verify.yml.j2``) and keeps the rest."""
    dirs = [project_templates] if project_templates is not None and project_templates.is_dir() else []
    return [*dirs, PACKAGE_TEMPLATES]


def overridden_templates(project_templates: Path) -> list[str]:
    """The project's templates that replace one of envspec's (relative names, sorted)."""
    if not project_templates.is_dir():
        return []
    own = {p.relative_to(project_templates).as_posix() for p in project_templates.rglob("*.j2") if p.is_file()}
    shipped = {p.relative_to(PACKAGE_TEMPLATES).as_posix() for p in PACKAGE_TEMPLATES.rglob("*.j2")}
    return sorted(own & shipped)


def make_environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """``templates_dir``: the project's own templates, searched before envspec's (None: envspec's only)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(templates_dir)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml"] = yaml_scalar
    env.filters["yaml_str"] = yaml_string
    env.filters["comment"] = one_line_comment
    return env


@dataclass(frozen=True)
class RenderContext:
    spec: Spec
    project: Project
    targets: list[ResolvedTarget]
    jinja: jinja2.Environment

    @property
    def source(self) -> str:
        return self.project.relative(self.spec.path)
