"""``pull_models``: fetch the locked files of each model, verify each, and place it atomically.

Per file: already at its destination with the locked size and hash, it is kept; otherwise
``hf_hub_download`` brings it into the Hugging Face cache at the locked *commit* (resuming a broken
transfer with ``Range``; with ``HF_HUB_OFFLINE=1`` only the cache is used), it is hard-linked (or
copied, across file systems) to a temporary name beside its destination, its size and hash are
checked against the lockfile, and only then ``os.replace`` makes it visible. A file that fails the
check is removed from the cache too, and nothing appears at the destination (exit 7).

Pickled files (.ckpt, .bin, .pt, .pth, .pkl) are refused before anything is downloaded unless the
entry says ``trust_pickle: true`` or the caller passes ``PullOptions(trust_pickle=True)`` (exit 10).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from envspec.errors import CheckFailed, IntegrityError, SpecError, ToolFailed, UntrustedPickle
from envspec.fsutil import run_lock
from envspec.models import local, lockfile
from envspec.models.local import TEMP_MARK, Manifest, ManifestFile
from envspec.models.lockfile import LockedFile, LockedModel
from envspec.models.plan import is_pickle
from envspec.project import Project
from envspec.settings import HUB_RETRIES
from envspec.spec import Spec
from envspec.units import human_bytes

CHUNK = 1 << 20


@dataclass(frozen=True)
class PullEvent:
    """Progress for the command to show. ``kind``: model (starting one), file (fetching one),
    bytes (``done`` of ``total`` so far), kept (already in place), removed (left over from an older pull)."""

    kind: Literal["model", "file", "bytes", "kept", "removed"]
    model: str
    path: str = ""
    done: int = 0
    total: int = 0
    index: int = 0
    count: int = 0
    note: str = ""  # model: its licence


PullProgress = Callable[[PullEvent], None]


@dataclass(frozen=True)
class PullOptions:
    """How :func:`pull_models` pulls: ``trust_pickle`` fetches pickled files nothing marked trusted;
    ``verify`` hashes every file already in place (and replaces any that differs) instead of trusting
    the manifest's size and time; each file is tried again at most ``retries`` times after a failed
    connection, a break or a stall (``ENVSPEC_HUB_RETRIES``)."""

    trust_pickle: bool = False
    verify: bool = False
    retries: int = HUB_RETRIES


MODELS_PULL_SCHEMA: Final = "envspec.models.pull/1"


@dataclass
class ModelPullResult:
    name: str
    folder: Path
    load_path: Path  # what a pipeline loads: the folder, or the single file in it
    commit: str
    fetched: int = 0  # files placed by this pull
    kept: int = 0  # files already in place
    removed: list[str] = field(default_factory=list)
    received: int = 0  # bytes that came over the network (0 when the cache had everything)

    def to_json(self, relative: Callable[[Path], str] = str) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": relative(self.folder),
            "load_path": relative(self.load_path),
            "commit": self.commit,
            "fetched": self.fetched,
            "kept": self.kept,
            "removed": list(self.removed),
            "received_bytes": self.received,
        }


def pull_document(results: Sequence[ModelPullResult], relative: Callable[[Path], str] = str) -> dict[str, Any]:
    """The ``envspec models pull --json`` document (schema ``envspec.models.pull/1``, docs/json.md)."""
    return {"schema": MODELS_PULL_SCHEMA, "models": [r.to_json(relative) for r in results]}


def _ignore(event: PullEvent) -> None:
    return None


def pull_models(
    project: Project,
    spec: Spec,
    name: str | None = None,
    dest: Path | None = None,
    options: PullOptions | None = None,
    *,
    progress: PullProgress = _ignore,
) -> list[ModelPullResult]:
    """Pull model ``name`` (default: every model of the spec) into ``<dest or models/>/<name>/``.

    A file already in place is trusted when its size and modification time are as the folder's
    manifest recorded; ``options.verify`` hashes every one instead (:class:`PullOptions`).

    Raises CheckFailed (1: no lockfile, or stale for the model), SpecError (3), ChannelUnreachable (5),
    ToolFailed (6: disk), IntegrityError (7), BusyError (8), UntrustedPickle (10), AccessDenied (11).
    """
    options = options or PullOptions()
    entries = spec.document.models
    if name is not None and name not in entries:
        raise SpecError(
            f"{spec.path}: no model named {name!r} in models:", tip=f"choose one of: {', '.join(entries) or '(none)'}"
        )
    names = [name] if name is not None else list(entries)
    if not names:
        return []
    lock = local.read_lock(project)
    rel = project.relative(local.lockfile_path(project))
    if lock is None:
        raise CheckFailed(f"{rel}: no models lockfile", tip="run `envspec models lock` first")
    for n in names:
        locked = lock.models.get(n)
        if locked is None or locked.input_hash != lockfile.entry_hash(entries[n]):
            raise CheckFailed(
                f"{rel} is stale for {n} (envspec.yml changed since it was locked)",
                tip="run `envspec models lock`, then pull",
            )
    untrusted = [
        f"{n}: {f.path}"
        for n in names
        if not (options.trust_pickle or entries[n].trust_pickle)
        for f in lock.models[n].files
        if is_pickle(f.path)
    ]
    if untrusted:
        raise UntrustedPickle(
            f"refusing pickled files (loading one can run arbitrary code): {', '.join(untrusted)}",
            tip="prefer a .safetensors file or variant; if you trust the source, set trust_pickle: true on the "
            "entry or pass --trust-pickle",
        )
    from envspec.models import hub

    with run_lock(project.cache_dir / "models.lock", "locking or pulling models"), hub.session():
        _check_space([(lock.models[n], local.model_dir(project, n, dest)) for n in names], hub.cache_dir())
        results = []
        for i, n in enumerate(names, 1):
            locked = lock.models[n]
            event = PullEvent(
                "model", n, locked.repo, total=locked.size, index=i, count=len(names), note=locked.license
            )
            progress(event)
            results.append(_pull_one(n, locked, local.model_dir(project, n, dest), progress, options))
        return results


def _pull_one(
    name: str, locked: LockedModel, folder: Path, progress: PullProgress, options: PullOptions
) -> ModelPullResult:
    from envspec.models import hub

    folder.mkdir(parents=True, exist_ok=True)
    _remove_temps(folder)
    previous = local.read_manifest(folder)
    records: dict[str, ManifestFile] = dict(previous.files) if previous else {}

    def save(complete: bool) -> None:
        local.write_manifest(
            folder,
            Manifest(name, locked.repo, locked.commit if complete else "", locked.load, dict(records)),
        )

    save(complete=False)  # from here until the end, the folder is not a pulled model
    load_path = folder if locked.load == "." else folder / locked.load
    result = ModelPullResult(name=name, folder=folder, load_path=load_path, commit=locked.commit)
    for index, f in enumerate(locked.files, 1):
        target = _inside(folder, f.target)
        kept = _already_there(target, f, None if options.verify else records.get(f.target))
        if kept is not None:
            records[f.target] = kept
            result.kept += 1
            progress(PullEvent("kept", name, f.target, f.size, f.size, index, len(locked.files)))
            continue
        progress(PullEvent("file", name, f.target, 0, f.size, index, len(locked.files)))
        received = [0]

        def on_bytes(n: int, f: LockedFile = f, at: int = index, got: list[int] = received) -> None:
            got[0] += n
            progress(PullEvent("bytes", name, f.target, got[0], f.size, at, len(locked.files)))

        cached = hub.fetch(locked.repo, f.path, locked.commit, on_bytes, size=f.size, retries=options.retries)
        try:
            _place(cached, target, f)
        except IntegrityError:
            hub.forget(cached)
            if received[0]:  # it came over the network just now: the source is wrong
                raise
            # the cached copy was damaged (or edited through a hard link): download it once more
            cached = hub.fetch(locked.repo, f.path, locked.commit, on_bytes, size=f.size, retries=options.retries)
            try:
                _place(cached, target, f)
            except IntegrityError:
                hub.forget(cached)
                raise
        records[f.target] = ManifestFile(f.target, f.size, f.digest, target.stat().st_mtime_ns)
        result.fetched += 1
        result.received += max(received[0], 0)
        save(complete=False)
    wanted = {f.target for f in locked.files}
    for stale in sorted(set(records) - wanted):
        path = local.inside(folder, stale)
        if path is None:  # read_manifest drops such entries; never delete outside the folder anyway
            del records[stale]
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        _prune_empty(path.parent, folder)
        del records[stale]
        result.removed.append(stale)
        progress(PullEvent("removed", name, stale))
    save(complete=True)
    return result


def _inside(folder: Path, dest: str) -> Path:
    """Where a locked file goes: ``folder/dest``, refused when a folder on the way is a link out of the
    model's folder (one a checkout or someone else put there: the pull would write through it)."""
    path = local.inside(folder, dest)
    if path is None:
        raise IntegrityError(
            f"{folder / dest}: a folder on its way is a link out of the model's folder; refused "
            "(nothing is written outside it)",
            tip=f"remove the link from {folder} (or pull elsewhere with --dest DIR)",
        )
    return path


def file_digest(path: Path, f: LockedFile) -> str:
    """``sha256:…`` of the content (LFS files) or ``git-sha1:…`` of the git blob (files kept in git)."""
    if f.sha256 is not None:
        h = hashlib.sha256()
        prefix = "sha256:"
    else:
        h = hashlib.sha1(usedforsecurity=False)
        h.update(b"blob %d\0" % path.stat().st_size)
        prefix = "git-sha1:"
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            h.update(chunk)
    return prefix + h.hexdigest()


def _already_there(target: Path, f: LockedFile, record: ManifestFile | None) -> ManifestFile | None:
    """The file's record if ``target`` already holds it: trusted from the manifest when its size and
    modification time are as recorded, otherwise hashed."""
    try:
        stat = target.stat()
    except OSError:
        return None
    if not target.is_file() or stat.st_size != f.size:
        return None
    if (
        record is not None
        and record.digest == f.digest
        and record.size == f.size
        and record.mtime_ns == stat.st_mtime_ns
    ):
        return record
    if file_digest(target, f) != f.digest:
        return None
    return ManifestFile(f.target, f.size, f.digest, stat.st_mtime_ns)


def _place(cached: Path, target: Path, f: LockedFile) -> None:
    """Link (or copy) the cached file beside ``target``, verify it, then rename it into place."""
    source = cached.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TEMP_MARK}{secrets.token_hex(4)}")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(source, tmp)
        size = tmp.stat().st_size
        if size != f.size:
            raise IntegrityError(
                f"{f.path}: {size} bytes, the lockfile says {f.size}; nothing was written to {target.parent}",
                tip="pull again; if it repeats, something between you and the Hub alters downloads: do not use it",
            )
        got = file_digest(tmp, f)
        if got != f.digest:
            raise IntegrityError(
                f"{f.path}: hash {got[:20]}… does not match the lockfile's {f.digest[:20]}…; nothing was "
                f"written to {target.parent} and the cached copy was removed",
                tip="pull again; if it repeats, something between you and the Hub alters downloads: do not use it",
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_temps(folder: Path) -> None:
    """Temporary files a killed pull left behind."""
    for path in folder.rglob(f"*{TEMP_MARK}*"):
        with contextlib.suppress(OSError):
            path.unlink()


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_space(models: Sequence[tuple[LockedModel, Path]], cache: Path) -> None:
    """Refuse early when the destination (or the cache, on another file system) cannot hold what is missing."""
    missing = 0
    for locked, folder in models:
        for f in locked.files:
            try:
                if (folder / f.target).stat().st_size == f.size:
                    continue
            except OSError:
                pass
            missing += f.size
    if not missing:
        return
    places = {_existing(folder) for _, folder in models} | {_existing(cache)}
    by_device: dict[int, Path] = {}
    for place in places:
        by_device.setdefault(place.stat().st_dev, place)
    for place in by_device.values():
        free = shutil.disk_usage(place).free
        if free < missing:
            raise ToolFailed(
                f"not enough disk space: pulling needs {human_bytes(missing)} at {place}, {human_bytes(free)} free",
                tip="free some space, or pull elsewhere with --dest DIR (and move the cache with HF_HOME)",
            )
