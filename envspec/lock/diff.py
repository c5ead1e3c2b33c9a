"""``envspec diff [--base GIT_REF]``: what changed in each target's lock, as markdown tables.

Compares ``lockfiles/<target>.conda-lock.yml`` in the working tree with the same file at
``GIT_REF`` (default ``HEAD``): packages added, removed, and changed (version and/or build).
Prints nothing when nothing changed, so a CI step can paste the output into a pull request body.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from envspec.errors import ToolFailed
from envspec.lock.condalock import read_conda_lock
from envspec.lock.pypi import diff_entries
from envspec.project import Project

Packages = dict[str, tuple[str, str]]  # name -> (version, build)


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # "added" | "removed" | "changed"
    before: tuple[str, str] | None
    after: tuple[str, str] | None


def packages_of(conda_lock_text: str | None, source: str = "conda-lock.yml") -> Packages:
    """``{name: (version, build)}`` of the conda packages of a conda-lock.yml (empty for None).

    A file that is not a conda-lock.yml is a ``SpecError`` naming ``source``, never a traceback."""
    if not conda_lock_text:
        return {}
    return {p.name: (p.version, p.build or "") for p in read_conda_lock(conda_lock_text, source)}


def diff_packages(before: Packages, after: Packages) -> list[Change]:
    """Changes sorted by name (pure)."""
    changes = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        kind = "added" if old is None else "removed" if new is None else "changed"
        changes.append(Change(name, kind, old, new))
    return changes


def _cell(value: tuple[str, str] | None) -> str:
    return f"{value[0]} `{value[1]}`" if value else ""


def markdown(target: str, changes: list[Change]) -> str:
    """One markdown section per target; empty string when nothing changed."""
    if not changes:
        return ""
    counts = {k: sum(c.kind == k for c in changes) for k in ("added", "removed", "changed")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    lines = [
        f"### {target} ({summary})",
        "",
        "| package | change | before | after |",
        "| --- | --- | --- | --- |",
        *(f"| {c.name} | {c.kind} | {_cell(c.before)} | {_cell(c.after)} |" for c in changes),
        "",
    ]
    return "\n".join(lines) + "\n"


def git_show(root: Path, ref: str, rel_path: str) -> str | None:
    """The file at ``ref`` (None when it did not exist there)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "show", f"{ref}:./{rel_path}"],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except FileNotFoundError:
        raise ToolFailed("git is not installed", tip="install git; `envspec diff` compares against a git ref") from None
    if proc.returncode == 0:
        return proc.stdout
    err = proc.stderr
    if "does not exist in" in err or "exists on disk, but not in" in err:
        return None
    raise ToolFailed(
        f"git show {ref}:{rel_path} failed: {err.strip()}", tip="is --base a valid ref of this repository?"
    )


def diff_target(project: Project, target: str, base: str) -> str:
    """The markdown table of one target's lockfile changes since ``base`` (empty when none)."""
    path = project.conda_lock_file(target)
    after = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    rel = project.relative(path)
    before = git_show(project.root, base, rel)
    old, new = packages_of(before, f"{base}:{rel}"), packages_of(after, rel)
    old.update(diff_entries(before, f"{base}:{rel}"))  # the PyPI packages, as "NAME (pypi)"
    new.update(diff_entries(after, rel))
    return markdown(target, diff_packages(old, new))
