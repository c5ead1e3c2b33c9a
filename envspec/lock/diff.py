"""``envspec diff [--base GIT_REF]``: what changed in each target's lock, as markdown tables.

Compares ``lockfiles/<target>.conda-lock.yml`` in the working tree with the same file at
``GIT_REF`` (default ``HEAD``): packages added, removed, and changed (version and/or build).
``GIT_REF`` must name a commit (it is resolved with ``git rev-parse --verify`` first; a ref that
starts with ``-`` or names no commit is a usage error, exit 2). A lockfile absent at the base shows
every package as added; git failing to read it is ``ToolFailed`` (exit 6), never "absent".
Prints nothing on stdout when nothing changed, so a CI step can paste the output into a pull request
body (the command says why on stderr: no changes, or no lockfiles on either side).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envspec.errors import EnvspecError, ExitCode, ToolFailed
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


class BadBaseRef(EnvspecError):
    """``--base`` is not a commit of this repository: a command-line usage error (exit 2)."""

    exit_code = ExitCode.USAGE


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ToolFailed("git is not installed", tip="install git; `envspec diff` compares against a git ref") from None


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    return " ".join(proc.stderr.decode("utf-8", errors="replace").split()) or f"exit status {proc.returncode}"


def resolve_base(root: Path, ref: str) -> str:
    """The full commit id ``ref`` names. Anything that is not a commit is refused before git sees it
    as more than a revision: ``--base=--output=DIR`` would otherwise be an option of ``git show``."""
    if not ref or ref.startswith("-") or any(not ch.isprintable() for ch in ref):
        raise BadBaseRef(f"--base {ref!r} is not a git ref", tip="pass a branch, tag or commit, e.g. --base HEAD~1")
    proc = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    commit = proc.stdout.decode("ascii", errors="replace").strip()
    if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        return commit
    if proc.returncode == 1:  # --verify --quiet: not a commit, and nothing else went wrong
        raise BadBaseRef(
            f"--base {ref!r} is not a commit of this repository", tip="pass a branch, tag or commit, e.g. --base HEAD~1"
        )
    raise ToolFailed(f"git rev-parse {ref} failed: {_stderr(proc)}", tip="run envspec diff inside the git repository")


def git_show(root: Path, commit: str, rel_path: str) -> str | None:
    """The file ``rel_path`` (relative to ``root``) at ``commit`` (a full id from ``resolve_base``);
    None when it did not exist there. Any other git failure is ``ToolFailed`` (exit 6), never "absent"."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise BadBaseRef(f"{commit!r} is not a resolved commit id", tip="resolve it with resolve_base() first")
    found = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:./{rel_path}")
    if found.returncode == 1:
        return None  # the commit exists (resolved before): the path does not exist in it
    blob = found.stdout.decode("ascii", errors="replace").strip()
    if found.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", blob):
        raise ToolFailed(f"git rev-parse {commit[:12]}:{rel_path} failed: {_stderr(found)}")
    proc = _git(root, "cat-file", "blob", blob)
    if proc.returncode != 0:
        raise ToolFailed(
            f"git cat-file blob {blob[:12]} ({commit[:12]}:{rel_path}) failed: {_stderr(proc)}",
            tip="is the repository damaged or a shallow/partial clone? try `git fsck`",
        )
    return proc.stdout.decode("utf-8", errors="replace")


DIFF_SCHEMA = "envspec.diff/1"


@dataclass(frozen=True)
class TargetDiff:
    """One target's lockfile at the base commit and in the working tree, and what changed."""

    target: str
    lockfile: str  # relative to the project
    in_base: bool
    in_tree: bool
    changes: list[Change]

    def markdown(self) -> str:
        return markdown(self.target, self.changes)

    def to_json(self) -> dict[str, Any]:
        def side(value: tuple[str, str] | None) -> dict[str, str] | None:
            return None if value is None else {"version": value[0], "build": value[1]}

        return {
            "target": self.target,
            "lockfile": self.lockfile,
            "in_base": self.in_base,
            "in_tree": self.in_tree,
            "changes": [
                {"name": c.name, "kind": c.kind, "before": side(c.before), "after": side(c.after)} for c in self.changes
            ],
        }


def diff_document(base_ref: str, base: str, diffs: list[TargetDiff]) -> dict[str, Any]:
    """The ``envspec diff --json`` document (schema ``envspec.diff/1``, docs/json.md)."""
    return {"schema": DIFF_SCHEMA, "base_ref": base_ref, "base": base, "targets": [d.to_json() for d in diffs]}


def target_diff(project: Project, target: str, base: str) -> TargetDiff:
    """One target's lockfile changes since ``base``, a ref resolved to a commit first."""
    path = project.conda_lock_file(target)
    after = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
    rel = project.relative(path)
    commit = resolve_base(project.root, base)
    before = git_show(project.root, commit, rel)
    old, new = packages_of(before, f"{base}:{rel}"), packages_of(after, rel)
    old.update(diff_entries(before, f"{base}:{rel}"))  # the PyPI packages, as "NAME (pypi)"
    new.update(diff_entries(after, rel))
    return TargetDiff(target, rel, before is not None, after is not None, diff_packages(old, new))


def diff_target(project: Project, target: str, base: str) -> str:
    """The markdown table of one target's lockfile changes since ``base`` (empty when none)."""
    return target_diff(project, target, base).markdown()
