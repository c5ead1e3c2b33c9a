"""``lock_models``: pin every model's revision to a commit and record its files' sizes and hashes.

Only the Hub's metadata is read (no file is downloaded). Incremental like ``envspec lock``: an
entry whose spec fields are unchanged keeps its pin unless ``update`` names it (or is True), so
adding a model never moves another. ``check=True`` writes nothing and fails (exit 1) naming every
entry that is *stale* (the spec changed, or it is not locked) or *moved* (its branch or tag now
points at another commit: the revision is resolved again; skipped under ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from envspec.errors import CheckFailed, SpecError
from envspec.fsutil import run_lock
from envspec.models import local, lockfile
from envspec.models.lockfile import LockedModel, ModelsLock
from envspec.models.plan import ModelsPlanError, plan_files
from envspec.project import Project
from envspec.spec import ModelEntryDocument, Spec

Progress = Callable[[str], None]
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
MODELS_LOCK_SCHEMA: Final = "envspec.models.lock/1"


@dataclass(frozen=True)
class ModelLockResult:
    name: str
    status: Literal["locked", "updated", "unchanged", "up to date"]
    repo: str
    revision: str
    commit: str
    files: int
    size: int
    previous_commit: str | None = None
    pickles: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class ModelsLockSummary:
    path: Path
    models: list[ModelLockResult] = field(default_factory=list)
    written: bool = False
    dropped: list[str] = field(default_factory=list)  # locked before, no longer in envspec.yml
    moved_checked: bool = True  # False when --check could not resolve revisions (offline)

    def to_json(self, *, lockfile: str, check: bool) -> dict[str, Any]:
        """The ``envspec models lock --json`` document (schema ``envspec.models.lock/1``, docs/json.md)."""
        return {
            "schema": MODELS_LOCK_SCHEMA,
            "lockfile": lockfile,
            "check": check,
            "written": self.written,
            "moved_checked": self.moved_checked,
            "dropped": list(self.dropped),
            "models": [
                {
                    "name": m.name,
                    "status": m.status,
                    "repo": m.repo,
                    "revision": m.revision,
                    "commit": m.commit,
                    "previous_commit": m.previous_commit,
                    "files": m.files,
                    "size": m.size,
                    "pickles": list(m.pickles),
                    "notes": list(m.notes),
                }
                for m in self.models
            ],
        }


def _quiet(message: str) -> None:
    return None


def lock_models(
    project: Project,
    spec: Spec,
    *,
    check: bool = False,
    update: bool | Sequence[str] = False,
    progress: Progress = _quiet,
) -> ModelsLockSummary:
    """Write (or, with ``check``, verify) ``lockfiles/models.lock.yml`` for the spec's ``models:``.

    ``update``: True re-resolves every entry, a list re-resolves those named; otherwise unchanged
    entries keep their pins. Raises CheckFailed (1), SpecError (3), ChannelUnreachable (5),
    AccessDenied (11), BusyError (8).
    """
    entries = dict(spec.document.models)
    path = local.lockfile_path(project)
    if not isinstance(update, bool):
        unknown = sorted(set(update) - set(entries))
        if unknown:
            raise SpecError(
                f"{spec.path}: --update {', '.join(unknown)}: no such entry in models:",
                tip=f"choose from: {', '.join(entries) or '(none)'}",
            )
    if check:
        return _check(project, spec, path)
    try:
        existing = lockfile.read(path)
    except SpecError as exc:
        progress(f"warning: {exc.message}; writing it anew")
        existing = None
    report = ModelsLockSummary(path=path)
    models: dict[str, LockedModel] = {}
    with run_lock(project.cache_dir / "models.lock", "locking or pulling models"):
        for name, entry in entries.items():
            previous = existing.models.get(name) if existing else None
            wanted = update is True or (not isinstance(update, bool) and name in update)
            if previous is not None and previous.input_hash == lockfile.entry_hash(entry) and not wanted:
                models[name] = previous
                report.models.append(_result(name, previous, "unchanged"))
                progress(f"{name}: unchanged ({entry.repo}@{previous.commit[:12]})")
                continue
            progress(f"{name}: resolving {entry.repo}@{entry.revision}")
            locked, notes = _lock_one(spec, name, entry)
            models[name] = locked
            if previous is None or previous.input_hash != locked.input_hash:
                status: Literal["locked", "updated", "unchanged"] = "locked"
            else:
                status = "updated" if previous.commit != locked.commit else "unchanged"
            report.models.append(
                _result(name, locked, status, previous.commit if previous else None, notes=tuple(notes))
            )
        report.dropped = sorted(set(existing.models) - set(entries)) if existing else []
        new = lockfile.build(models)
        if existing is None or lockfile.render(existing) != lockfile.render(new):
            lockfile.write(path, new)
            report.written = True
    return report


def _lock_one(spec: Spec, name: str, entry: ModelEntryDocument) -> tuple[LockedModel, list[str]]:
    from envspec.models import hub

    with hub.session():
        resolved = hub.resolve(entry.repo, entry.revision, with_files=True)
    try:
        plan = plan_files(entry, resolved.files)
    except ModelsPlanError as exc:
        raise SpecError(
            f"{spec.path}: models.{name}: {exc} ({entry.repo}@{resolved.commit[:12]})",
            tip="fix the entry in envspec.yml (docs/models.md says what each layout takes)",
        ) from None
    notes = list(plan.notes)
    if resolved.gated:
        notes.append(f"gated: pulling needs a token and the licence accepted at {hub.repo_url(entry.repo)}")
    return lockfile.locked_model(entry, resolved.commit, plan), notes


def _result(
    name: str,
    locked: LockedModel,
    status: Literal["locked", "updated", "unchanged", "up to date"],
    previous_commit: str | None = None,
    notes: tuple[str, ...] = (),
) -> ModelLockResult:
    from envspec.models.plan import is_pickle

    return ModelLockResult(
        name=name,
        status=status,
        repo=locked.repo,
        revision=locked.revision,
        commit=locked.commit,
        files=len(locked.files),
        size=locked.size,
        previous_commit=previous_commit,
        pickles=tuple(f.path for f in locked.files if is_pickle(f.path)),
        notes=notes,
    )


def stale_entries(spec: Spec, lock: ModelsLock | None) -> list[str]:
    """``name (why)`` for every entry the lockfile does not match; pure."""
    entries = spec.document.models
    if lock is None:
        return [f"{name} (not locked)" for name in entries]
    stale = []
    for name, entry in entries.items():
        locked = lock.models.get(name)
        if locked is None:
            stale.append(f"{name} (not locked)")
        elif locked.input_hash != lockfile.entry_hash(entry):
            stale.append(f"{name} (envspec.yml changed)")
    stale += [f"{name} (no longer in envspec.yml)" for name in lock.models if name not in entries]
    return stale


def _check(project: Project, spec: Spec, path: Path) -> ModelsLockSummary:
    lock = lockfile.read(path)
    report = ModelsLockSummary(path=path)
    if lock is None:
        if not spec.document.models:
            return report
        raise CheckFailed(
            f"{project.relative(path)}: no models lockfile for models {', '.join(spec.document.models)}",
            tip="run `envspec models lock` and commit lockfiles/",
        )
    stale = stale_entries(spec, lock)
    stale_names = {s.split(" ", 1)[0] for s in stale}
    moved: list[str] = []
    from envspec.models import hub

    report.moved_checked = not hub.offline()
    with hub.session():
        for name, locked in lock.models.items():
            if name in stale_names:
                continue
            status: Literal["up to date"] = "up to date"
            if report.moved_checked and not _COMMIT.match(locked.revision):
                now = hub.resolve(locked.repo, locked.revision, with_files=False).commit
                if now != locked.commit:
                    moved.append(f"{name} ({locked.revision} is now at {now[:12]}, locked {locked.commit[:12]})")
            report.models.append(_result(name, locked, status))
    if stale or moved:
        parts = []
        if stale:
            parts.append("stale: " + "; ".join(stale))
        if moved:
            parts.append("moved: " + "; ".join(moved))
        tips = []
        if stale:
            tips.append("`envspec models lock` for stale entries")
        if moved:
            names = " ".join(m.split(" ", 1)[0] for m in moved)
            tips.append(f"`envspec models lock --update {names}` to follow moved revisions")
        raise CheckFailed(
            f"{project.relative(path)} is out of date: " + "; ".join(parts),
            tip=", ".join(tips) + ", then commit lockfiles/",
        )
    return report
