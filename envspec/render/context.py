"""What every renderer shares: the Jinja2 environment with YAML-safe filters, and the render context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from envspec.project import Project
from envspec.spec.model import ResolvedTarget, Spec


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


def make_environment(templates_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
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
