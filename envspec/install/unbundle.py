"""Unpacking a bundle (``envspec install --from``): every byte checked before anything is installed.

The format and what is refused are described in :mod:`envspec.install.bundle`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from envspec.errors import IntegrityError, SpecError, ToolFailed
from envspec.install import pip
from envspec.install.archive import ArchiveInvalid, check_member
from envspec.install.bundle import (
    CHUNK,
    FORMAT,
    KINDS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    SHA256_HEX,
    UNPACK_PREFIX,
    Member,
    remove_dead_temps,
    sha256_of,
)
from envspec.install.execute import InstallResult
from envspec.install.fetch import SIDECAR_DIR, default_cache_dir
from envspec.install.plan import (
    ExplicitLock,
    add_conda_lock_hashes,
    parse_lock,
)
from envspec.install.run import InstallOptions, install_target
from envspec.lock import pip_file
from envspec.models import (
    MODELS_LOCKFILE,
    LockedFile,
    LockedModel,
    Manifest,
    ManifestFile,
    file_digest,
    lockfile_path,
    model_dir,
    pulled_model_path,
    read_models_lock,
    write_manifest,
)
from envspec.project import Project
from envspec.spec import ResolvedTarget
from envspec.units import human_bytes

Progress = Callable[[str], None]


class BundleInvalid(IntegrityError):
    """The bundle is not one ``envspec pack`` wrote, or was changed since (exit 7)."""


@dataclass(frozen=True)
class Unpacked:
    root: Path
    target: str
    subdir: str
    members: dict[str, Member]  # by path

    def lockfile(self, name: str) -> Path | None:
        return self.root / "lockfiles" / name if f"lockfiles/{name}" in self.members else None

    def local_files(self) -> dict[str, Path]:
        """``{locked URL: the verified file}`` of every conda package and wheel."""
        return {m.url: self.root / m.path for m in self.members.values() if m.url and m.kind in ("conda", "pypi")}


def _bad(bundle: Path, why: str) -> BundleInvalid:
    return BundleInvalid(
        f"bundle {bundle} refused: {why}; nothing was installed",
        tip="the bundle was changed or damaged in transit: copy it again, or `envspec pack` it again",
    )


def _safe_path(bundle: Path, path: object, kind: object) -> str:
    if not isinstance(path, str) or not isinstance(kind, str) or kind not in KINDS:
        raise _bad(bundle, f"manifest entry {path!r} has no valid path or kind")
    try:
        check_member(path)
    except ArchiveInvalid as exc:
        raise _bad(bundle, str(exc)) from None
    parts = path.split("/")
    if "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise _bad(bundle, f"manifest path {path!r} is not a plain relative path")
    top = {"lockfile": "lockfiles", "conda": "conda", "pypi": "pypi", "model": "models"}[kind]
    depth_ok = len(parts) >= 3 if kind == "model" else len(parts) == 2
    if parts[0] != top or not depth_ok:
        raise _bad(bundle, f"manifest path {path!r} does not belong to a {kind} file")
    return path


def parse_manifest(bundle: Path, data: bytes) -> tuple[str, str, dict[str, Member]]:
    """(target, subdir, members) of a manifest; anything unexpected is :class:`BundleInvalid`."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad(bundle, f"{MANIFEST} is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(bundle, f"{MANIFEST} is not an {FORMAT} manifest")
    target, subdir, files = doc.get("target"), doc.get("subdir"), doc.get("files")
    if not isinstance(target, str) or not isinstance(subdir, str) or not isinstance(files, list):
        raise _bad(bundle, f"{MANIFEST} lacks target, subdir or files")
    members: dict[str, Member] = {}
    folded: set[str] = set()
    for item in files:
        if not isinstance(item, dict):
            raise _bad(bundle, f"{MANIFEST} has a file entry that is not an object")
        path = _safe_path(bundle, item.get("path"), item.get("kind"))
        size, sha, url = item.get("size"), item.get("sha256"), item.get("url")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(bundle, f"manifest entry {path!r} has no valid size")
        if not isinstance(sha, str) or not SHA256_HEX.match(sha):
            raise _bad(bundle, f"manifest entry {path!r} has no valid sha256")
        if url is not None and not isinstance(url, str):
            raise _bad(bundle, f"manifest entry {path!r} has an invalid url")
        if path.casefold() in folded:  # two names one case-insensitive file system would merge
            raise _bad(bundle, f"manifest lists {path!r} twice")
        folded.add(path.casefold())
        members[path] = Member(path, str(item["kind"]), size, sha, url)
    folders = {"/".join(p.split("/")[:n]) for p in members for n in range(1, p.count("/") + 1)}
    clash = sorted(set(members) & folders)
    if clash:
        raise _bad(bundle, f"manifest lists {clash[0]!r} both as a file and as a folder")
    return target, subdir, members


def _copy_member(source: IO[bytes], dest: Path, size: int) -> str:
    sha = hashlib.sha256()
    remaining = size
    with dest.open("wb") as out:
        while remaining:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                break
            out.write(chunk)
            sha.update(chunk)
            remaining -= len(chunk)
    return sha.hexdigest() if remaining == 0 else ""


def unpack(bundle: Path, dest: Path, progress: Progress) -> Unpacked:
    """Stream ``bundle`` into ``dest`` (an empty folder), checking every member; see the module doc."""
    if not bundle.is_file():
        raise SpecError(
            f"bundle {bundle} does not exist" if not bundle.exists() else f"bundle {bundle} is not a file",
            tip="give the file `envspec pack` wrote",
        )
    seen: set[str] = set()
    try:
        # one pass, front to back ("r:" reads each member's data straight from the file: much faster
        # than the "r|" stream mode; the bundle is a regular file, checked above)
        with bundle.open("rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isreg():
                raise _bad(bundle, f"its first member is not {MANIFEST}")
            if first.size > MAX_MANIFEST_BYTES:
                raise _bad(bundle, f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
            handle = tar.extractfile(first)
            assert handle is not None
            target, subdir, members = parse_manifest(bundle, handle.read(first.size))
            total = sum(m.size for m in members.values())
            done, last = 0, 0.0
            while (info := tar.next()) is not None:  # (iterating the TarFile would start over)
                member = members.get(info.name)
                if member is None or info.name in seen:
                    raise _bad(bundle, f"member {info.name!r} is not in its manifest (or is there twice)")
                if not info.isreg():
                    raise _bad(bundle, f"member {info.name!r} is a link, folder or device, not a file")
                if info.size != member.size:
                    raise _bad(bundle, f"member {info.name!r} is {info.size} bytes, its manifest says {member.size}")
                out = dest / member.path
                out.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(info)
                assert source is not None
                digest = _copy_member(source, out, member.size)
                if not digest:
                    raise _bad(bundle, f"member {info.name!r} is truncated")
                if digest != member.sha256:
                    raise _bad(bundle, f"member {info.name!r} does not match its sha256 in the manifest")
                seen.add(info.name)
                done += member.size
                if time.monotonic() - last >= 0.5:
                    last = time.monotonic()
                    progress(f"bundle: {human_bytes(done)} of {human_bytes(total)} checked")
    except (tarfile.TarError, EOFError) as exc:
        raise _bad(bundle, f"not a complete tar file ({' '.join(str(exc).split())[:200]})") from None
    missing = sorted(set(members) - seen)
    if missing:
        raise _bad(bundle, f"{len(missing)} member(s) of its manifest are missing (truncated?): {missing[0]}")
    progress(f"bundle: {len(members)} files checked against the manifest ({human_bytes(total)})")
    return Unpacked(root=dest, target=target, subdir=subdir, members=members)


def check_against_lock(
    bundle: Path, unpacked: Unpacked, lock: ExplicitLock, wheels: Mapping[str, str] | None = None
) -> None:
    """Every package of ``lock`` (and every wheel, ``{url: sha256}`` of the pip lockfile) is in the
    bundle, with the lockfile's hash; nothing else is."""
    pypi = {m.url or m.path: m for m in unpacked.members.values() if m.kind == "pypi"}
    for url, sha in (wheels or {}).items():
        if url not in pypi or pypi[url].sha256 != sha:
            raise _bad(bundle, f"its wheel for {url.rsplit('/', 1)[-1]} is missing or differs from the pip lockfile")
    if set(pypi) - set(wheels or {}):
        raise _bad(
            bundle, f"it holds wheels its pip lockfile does not name ({sorted(set(pypi) - set(wheels or {}))[0]})"
        )
    conda = {m.url or m.path: m for m in unpacked.members.values() if m.kind == "conda"}
    wanted = {e.url for e in lock.entries}
    for entry in lock.entries:
        member = conda.get(entry.url)
        if member is None:
            raise _bad(bundle, f"it lacks {entry.filename}, which its lockfile names")
        if member.path != f"conda/{entry.filename}" or (entry.sha256 and entry.sha256 != member.sha256):
            raise _bad(bundle, f"{member.path} does not match the lockfile's sha256 for {entry.filename}")
    extra = sorted(set(conda) - wanted)
    if extra:
        raise _bad(bundle, f"it holds packages its lockfile does not name ({extra[0]})")


def check_lockfiles(bundle: Path, unpacked: Unpacked, project: Project, target: str) -> str:
    """The bundle's lockfiles must equal the project's where it has them; returns a note for people."""
    explicit = project.explicit_file(target)
    same: list[str] = []
    for path in (explicit, project.conda_lock_file(target), pip_file(explicit)):
        carried = unpacked.lockfile(path.name)
        if not path.is_file():
            continue
        if carried is None or sha256_of(carried) != sha256_of(path):
            raise BundleInvalid(
                f"bundle {bundle} was packed from another {project.relative(path)} than this project's; "
                "nothing was installed",
                tip="pack it again from this checkout's lockfiles, or install it in a checkout whose lockfiles match",
            )
        same.append(path.name)
    if same:
        return f"bundle lockfiles match this project's ({', '.join(same)})"
    return f"this project has no lockfiles/{explicit.name}: the bundle's lockfile is installed as it is"


@dataclass(frozen=True)
class ModelPlacement:
    name: str
    model: LockedModel
    files: tuple[tuple[LockedFile, Path], ...]  # each locked file and its checked copy in the unpacked bundle


def check_models(bundle: Path, unpacked: Unpacked, project: Project) -> tuple[list[ModelPlacement], str]:
    """The bundle's models to place into ``models/<name>/`` (checked against this project's
    ``models.lock.yml``, which must be the bundle's), and a note for people. Runs before the install."""
    if not any(m.kind == "model" for m in unpacked.members.values()):
        return [], "the bundle carries no models"
    carried = unpacked.lockfile(MODELS_LOCKFILE)
    mine = lockfile_path(project)
    if carried is None or not mine.is_file() or sha256_of(carried) != sha256_of(mine):
        return [], "models in the bundle not placed: this project's lockfiles/models.lock.yml is missing or different"
    lock = read_models_lock(project)
    assert lock is not None
    out: list[ModelPlacement] = []
    for name, model in sorted(lock.models.items()):
        members = [unpacked.members.get(f"models/{name}/{f.target}") for f in model.files]
        if any(m is None for m in members) or pulled_model_path(project, name) is not None:
            continue  # not carried (it was not pulled where it was packed), or already here
        files = []
        for f, member in zip(model.files, members, strict=True):
            assert member is not None
            path = unpacked.root / member.path
            same = member.sha256 == f.sha256 if f.sha256 is not None else file_digest(path, f) == f.digest
            if not same or member.size != f.size:
                raise _bad(bundle, f"model file {member.path} does not match lockfiles/models.lock.yml")
            files.append((f, path))
        out.append(ModelPlacement(name, model, tuple(files)))
    return out, f"{len(out)} model(s) to place from the bundle"


def place_models(placements: list[ModelPlacement], project: Project, progress: Progress) -> None:
    """Move each checked model into ``models/<name>/``; its manifest is written last, so a model
    counts as pulled only when all of its files are there."""
    for placement in placements:
        folder = model_dir(project, placement.name)
        records = {}
        for f, path in placement.files:
            out = folder / f.target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, out)
            records[f.target] = ManifestFile(f.target, f.size, f.digest, out.stat().st_mtime_ns)
        model = placement.model
        write_manifest(folder, Manifest(placement.name, model.repo, model.commit, model.load, records))
        progress(f"models: {placement.name} placed in {project.relative(folder)}")


@contextlib.contextmanager
def unpacked_bundle(bundle: Path, cache: Path, progress: Progress) -> Iterator[Unpacked]:
    """The bundle checked and unpacked into a temporary folder of the package cache (same disk
    as the packages' next stop), removed afterwards."""
    base = cache.absolute() / SIDECAR_DIR
    base.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(base, UNPACK_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{UNPACK_PREFIX}{os.getpid()}-", dir=base) as tmp:
        try:
            unpacked = unpack(bundle, Path(tmp), progress)
        except OSError as exc:  # disk full, a folder that cannot be written
            raise ToolFailed(f"cannot unpack bundle {bundle}: {exc.strerror or exc}") from None
        yield unpacked


def install_from_bundle(
    project: Project, target: ResolvedTarget, bundle: Path, options: InstallOptions, *, progress: Progress
) -> InstallResult:
    """``envspec install TARGET --from BUNDLE``: check and unpack the bundle, then install its
    lockfile with the installer, every package taken from the bundle (no network, no mirror: the
    options' tool, mirrors and lockfile are not used)."""
    cache = options.cache_dir or default_cache_dir(options.environ)
    with unpacked_bundle(bundle, cache, progress) as unpacked:
        if unpacked.target != target.name:
            raise SpecError(
                f"bundle {bundle} is for target {unpacked.target!r}, not {target.name!r}",
                tip=f"install it as `envspec install {unpacked.target} --from {bundle}`",
            )
        lock_path = unpacked.lockfile(f"{target.name}.lock")
        if lock_path is None:
            raise _bad(bundle, f"it has no lockfiles/{target.name}.lock")
        progress(check_lockfiles(bundle, unpacked, project, target.name))
        text = lock_path.read_text(encoding="utf-8", errors="replace")
        lock = parse_lock(text, f"{bundle.name}:lockfiles/{lock_path.name}")
        unified = unpacked.lockfile(f"{target.name}.conda-lock.yml")
        if unified is not None:
            lock = add_conda_lock_hashes(lock, unified.read_text(encoding="utf-8", errors="replace"), unified.name)
        pip_plan = pip.plan_pip(text, lock_path, f"{bundle.name}:lockfiles/{lock_path.name}", {})
        check_against_lock(bundle, unpacked, lock, {w.url: w.sha256 for w in pip_plan.wheels} if pip_plan else {})
        models, models_note = check_models(bundle, unpacked, project)
        progress(models_note)
        options = dataclasses.replace(
            options,
            tool="rattler",
            mirrors={},
            cache_dir=cache,
            lockfile=lock_path,
            local_files=unpacked.local_files(),
            lock_source=f"{bundle.name}:lockfiles/{lock_path.name}",
        )
        result = install_target(project, target, options, progress=progress)
        place_models(models, project, progress)
    return result
