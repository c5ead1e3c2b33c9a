"""Where models live in a project, and what is there: paths, the pulled-model manifest, sizes.

No network, no huggingface_hub: the doctor and the smoke test's wiring call these cheaply.

A pulled model is ``models/<name>/`` (or ``<--dest>/<name>/``) holding the locked files under their
destination names, and ``.envspec-model.json`` written last: it names the commit and every file
with its size, hash and modification time. A folder without it, or whose manifest is for another
commit or another file set than the lockfile, is not a pulled model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from envspec.fsutil import atomic_write_text
from envspec.models import lockfile
from envspec.models.lockfile import LockedModel, ModelsLock
from envspec.models.plan import ModelsPlanError, check_path
from envspec.project import Project
from envspec.spec import Spec

MODELS_DIR: Final = "models"
LOCKFILE: Final = "models.lock.yml"
MANIFEST: Final = ".envspec-model.json"
MANIFEST_SCHEMA: Final = "envspec-model/1"
TEMP_MARK: Final = ".envspec-tmp-"


def lockfile_path(project: Project) -> Path:
    return project.lock_dir / LOCKFILE


def models_root(project: Project, dest: Path | None = None) -> Path:
    """Where model folders go: ``dest`` if given, else ``models/`` in the project."""
    return dest if dest is not None else project.root / MODELS_DIR


def model_dir(project: Project, name: str, dest: Path | None = None) -> Path:
    return models_root(project, dest) / name


def read_lock(project: Project) -> ModelsLock | None:
    return lockfile.read(lockfile_path(project))


def smoke_model_name(spec: Spec) -> str | None:
    """The entry the smoke test uses: ``smoke_model:``, else the one marked ``smoke: true``, else None."""
    if spec.document.smoke_model is not None:
        return spec.document.smoke_model
    return next((name for name, entry in spec.document.models.items() if entry.smoke), None)


@dataclass(frozen=True)
class ManifestFile:
    dest: str
    size: int
    digest: str
    mtime_ns: int


@dataclass(frozen=True)
class Manifest:
    name: str
    repo: str
    commit: str
    load: str
    files: dict[str, ManifestFile]

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "name": self.name,
            "repo": self.repo,
            "commit": self.commit,
            "load": self.load,
            "files": [
                {"dest": f.dest, "size": f.size, "digest": f.digest, "mtime_ns": f.mtime_ns}
                for f in sorted(self.files.values(), key=lambda f: f.dest)
            ],
        }
        return json.dumps(data, indent=2) + "\n"


MANIFEST_MAX_BYTES: Final = 16 << 20


def inside(folder: Path, dest: str) -> Path | None:
    """``folder/dest`` when ``dest`` is a safe relative path (no ``..``, absolute, drive, backslash or
    control character) that resolves inside ``folder``; else None."""
    try:
        check_path(dest)
    except ModelsPlanError:
        return None
    path = folder / dest
    try:
        if not path.parent.resolve().is_relative_to(folder.resolve()):
            return None
    except (OSError, RuntimeError):
        return None
    return path


def _manifest_file(f: dict[str, Any]) -> ManifestFile:
    dest, size, digest, mtime = f["dest"], f["size"], f["digest"], f["mtime_ns"]
    if not (isinstance(dest, str) and isinstance(digest, str)):
        raise TypeError("dest and digest are strings")
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 63 for n in (size, mtime)):
        raise TypeError("size and mtime_ns are integers")
    check_path(dest)  # ModelsPlanError (a ValueError): ../, absolute, a drive, odd characters
    return ManifestFile(dest, size, digest, mtime)


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a pulled model folder; None when absent, unreadable or naming a file outside
    the folder (then nothing is trusted, and nothing it names is deleted as a left-over)."""
    try:
        path = folder / MANIFEST
        if path.is_symlink() or not path.is_file():
            return None
        with path.open("rb") as handle:
            data = json.loads(handle.read(MANIFEST_MAX_BYTES + 1).decode("utf-8"))
        if data["schema"] != MANIFEST_SCHEMA:
            return None
        files = {f.dest: f for f in map(_manifest_file, data["files"])}
        return Manifest(str(data["name"]), str(data["repo"]), str(data["commit"]), str(data["load"]), files)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_text(folder / MANIFEST, manifest.to_json())


def _complete(folder: Path, locked: LockedModel) -> bool:
    """The folder holds this locked model, as its manifest records and a stat of each file confirms."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.commit != locked.commit:
        return False
    for f in locked.files:
        seen = manifest.files.get(f.target)
        if seen is None or seen.digest != f.digest or seen.size != f.size:
            return False
        try:
            stat = (folder / f.target).stat()
        except OSError:
            return False
        if stat.st_size != f.size:
            return False
    return True


def pulled_model_path(project: Project, name: str, dest: Path | None = None) -> Path | None:
    """What a pipeline loads for model ``name`` (its folder, or its single file) if it is pulled completely."""
    lock = read_lock(project)
    if lock is None or name not in lock.models:
        return None
    locked = lock.models[name]
    folder = model_dir(project, name, dest)
    if not _complete(folder, locked):
        return None
    return folder if locked.load == "." else folder / locked.load


def smoke_model_path(project: Project, spec: Spec, dest: Path | None = None) -> Path | None:
    """The pulled smoke model (folder or single file) to pass as ``--model``; None when none is chosen or pulled."""
    name = smoke_model_name(spec)
    return None if name is None else pulled_model_path(project, name, dest)


def models_size(
    project: Project, names: list[str] | None = None, *, missing_only: bool = False, dest: Path | None = None
) -> int:
    """Bytes of the locked files of ``names`` (default: every locked model); 0 without a lockfile.

    ``missing_only`` counts only files not yet at their destination with their locked size: what a
    pull still has to write (the doctor's disk check). The Hugging Face cache holds a second copy
    when it is on another file system than the destination (otherwise files are hard-linked).
    """
    lock = read_lock(project)
    if lock is None:
        return 0
    total = 0
    for name, locked in lock.models.items():
        if names is not None and name not in names:
            continue
        folder = model_dir(project, name, dest)
        for f in locked.files:
            if missing_only:
                try:
                    if (folder / f.target).stat().st_size == f.size:
                        continue
                except OSError:
                    pass
            total += f.size
    return total
