"""One file that carries a target to a machine without network: ``envspec pack`` / ``install --from``.

A bundle is a plain (uncompressed: conda packages and wheels are compressed already) POSIX tar:

* ``envspec-bundle.json``, the **first** member: format version, target, subdir, and every other
  member's path, size and sha256 (the manifest);
* ``lockfiles/<t>.lock``, ``<t>.conda-lock.yml``, ``<t>.pip.txt``, ``models.lock.yml`` (those that exist);
* ``conda/<file>``: each package of the lockfile, downloaded and hash-checked by the installer's
  own fetch step (:func:`envspec.install.execute.fetch_all`, mirrors and stall limits included);
* ``pypi/<file>``: each wheel of ``<t>.pip.txt``, checked by :func:`envspec.install.pip.fetch`;
* ``models/<name>/<file>``: the pinned model files, when ``models.lock.yml`` exists and they are pulled.

Packing and unpacking stream (a file is never held in memory) and the bundle appears atomically.
Unpacking refuses, before anything is installed (exit 7, like a tampered download): a first member
that is not a valid manifest, a member the manifest does not list or lists twice, a link, folder or
device member, a path that is absolute or holds ``..``, a member whose size or sha256 differs from
the manifest, a member missing at the end (a truncated bundle), and conda packages or wheels
whose hash differs from the lockfile's. The lockfiles inside are then checked against the
project's own (when it has them) and the packages installed by :func:`envspec.install.run.install_target`
from the unpacked files, which the installer verifies once more against the lockfile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from envspec import __version__
from envspec.errors import IntegrityError, SpecError, ToolFailed
from envspec.install import pip
from envspec.install.archive import ArchiveInvalid, check_member
from envspec.install.execute import InstallResult
from envspec.install.fetch import SIDECAR_DIR, default_cache_dir, fetch_all
from envspec.install.plan import (
    ExplicitLock,
    add_conda_lock_hashes,
    destination,
    parse_lock,
    plan_install,
)
from envspec.install.run import install_target
from envspec.lock import check_pair, pip_file
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

MANIFEST: Final = "envspec-bundle.json"
FORMAT: Final = "envspec-bundle/1"
CHUNK: Final = 1 << 20
MAX_MANIFEST_BYTES: Final = 64 << 20
KINDS: Final = ("lockfile", "conda", "pypi", "model")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
UNPACK_PREFIX: Final = "bundle-"  # in the package cache's .envspec/, while install --from runs
PACK_PREFIX: Final = ".envspec-pack-"  # beside the bundle being written
_FIXED_MTIME: Final = 1_700_000_000  # members carry no build time: the same inputs give the same bundle


@dataclass(frozen=True)
class Member:
    path: str  # inside the bundle, POSIX
    kind: str
    size: int
    sha256: str
    url: str | None = None  # conda / pypi: the locked URL it stands for


@dataclass
class PackResult:
    path: Path
    size: int
    conda: int
    pypi: int
    model_files: int
    models_note: str
    seconds: dict[str, float] = field(default_factory=dict)


def remove_dead_temps(folder: Path, prefix: str) -> None:
    """Temporary folders ``<prefix><pid>-…`` that a killed run left in ``folder`` (its process is gone)."""
    if os.name != "posix":
        return
    for path in folder.glob(prefix + "*"):
        pid = path.name.removeprefix(prefix).split("-", 1)[0]
        if not (pid.isascii() and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def lockfile_paths(project: Project, target: str) -> list[Path]:
    """The target's lockfiles that exist (the explicit file is required)."""
    explicit = project.explicit_file(target)
    candidates = [explicit, project.conda_lock_file(target), pip_file(explicit), lockfile_path(project)]
    return [p for p in candidates if p.is_file()]


class _Hashing:
    """A reader that hashes what passes through it (for tarfile.addfile), checked at the end."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        chunk = self.handle.read(n)
        self.sha.update(chunk)
        return chunk


def _model_members(project: Project) -> tuple[list[tuple[Member, Path, LockedFile]], str]:
    """The pulled model files as members (each with its lock entry), and a note for people."""
    lock = read_models_lock(project)
    if lock is None:
        return [], "no lockfiles/models.lock.yml: no models in the bundle"
    out: list[tuple[Member, Path, LockedFile]] = []
    missing = []
    for name, model in sorted(lock.models.items()):
        if pulled_model_path(project, name) is None:
            missing.append(name)
            continue
        folder = model_dir(project, name)
        for f in model.files:
            path = folder / f.target
            sha = f.sha256 if f.sha256 is not None else _sha256(path)  # git-sha1 files are small
            out.append((Member(f"models/{name}/{f.target}", "model", f.size, sha), path, f))
    if missing:
        note = f"models not pulled, left out: {', '.join(missing)} (run `envspec models pull` first to carry them)"
    else:
        note = f"{len(lock.models)} model(s) in the bundle"
    return out, note


def _tarinfo(member: Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.path)
    info.size = member.size
    info.mtime = _FIXED_MTIME
    info.mode = 0o644
    info.uname = info.gname = ""
    return info


def _add(tar: tarfile.TarFile, member: Member, path: Path, check: LockedFile | None = None) -> None:
    """Stream ``path`` into the tar as ``member``, refusing a file that changed since it was hashed."""
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size != member.size:
            raise IntegrityError(f"{path} is not {member.size} bytes as locked; the bundle was not written")
        reader = _Hashing(handle)
        tar.addfile(_tarinfo(member), reader)
    if reader.sha.hexdigest() != member.sha256:
        if check is not None and check.sha256 is not None:
            raise IntegrityError(
                f"{path} does not match its lockfile sha256; the bundle was not written",
                tip="pull the models again (`envspec models pull`)",
            )
        raise IntegrityError(f"{path} changed while it was packed; the bundle was not written", tip="pack again")


def pack(
    project: Project,
    target: ResolvedTarget,
    output: Path,
    *,
    mirrors: Mapping[str, str],
    progress: Progress,
) -> PackResult:
    """Write the bundle of ``target`` to ``output`` (atomically); see the module doc."""
    t0 = time.perf_counter()
    explicit = project.explicit_file(target.name)
    if not explicit.is_file():
        raise SpecError(
            f"lockfile {project.relative(explicit)} does not exist: nothing to pack",
            tip=f"run `envspec lock --target {target.name}` first",
        )
    text = explicit.read_text(encoding="utf-8", errors="replace")
    unified = project.conda_lock_file(target.name)
    conda_lock = None
    if unified.is_file():
        conda_lock = (unified.read_text(encoding="utf-8", errors="replace"), project.relative(unified))
        check_pair(text, conda_lock[0], explicit_source=project.relative(explicit), conda_lock_source=conda_lock[1])
    plan = plan_install(
        target_name=target.name,
        target_subdir=target.subdir,
        variables=target.variables,
        lock_text=text,
        lock_source=project.relative(explicit),
        conda_lock=conda_lock,
        host=target.subdir,  # packing for another platform is the point: no host check
        destination=destination(str(project.root / ".envspec-pack"), None, {}, Path.home()),
        mirrors=mirrors,
    )
    pip_plan = pip.plan_pip(text, explicit, project.relative(explicit), mirrors)
    output = output.absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    models, models_note = _model_members(project)
    remove_dead_temps(output.parent, PACK_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{PACK_PREFIX}{os.getpid()}-", dir=output.parent) as tmp:
        work = Path(tmp)
        # a fresh cache folder: every package is downloaded (verified) as an archive, never a cache hit
        fetched = fetch_all(plan.lock, plan.urls, work / "pkgs", progress)
        t1 = time.perf_counter()
        with pip.fetched(pip_plan, progress) as wheel_dir:
            members: list[tuple[Member, Path, LockedFile | None]] = []
            for path in lockfile_paths(project, target.name):
                members.append(
                    (Member(f"lockfiles/{path.name}", "lockfile", path.stat().st_size, _sha256(path)), path, None)
                )
            for item in fetched:
                assert item.archive is not None
                member = Member(f"conda/{item.entry.filename}", "conda", item.size, item.sha256, item.entry.url)
                members.append((member, item.archive, None))
            for wheel in pip_plan.wheels if pip_plan is not None else ():
                assert wheel_dir is not None
                path = wheel_dir / wheel.filename
                members.append(
                    (Member(f"pypi/{wheel.filename}", "pypi", path.stat().st_size, wheel.sha256, wheel.url), path, None)
                )
            members += models
            size = _write_tar(output, work, manifest_json(target, [m for m, _, _ in members]), members, progress)
    t2 = time.perf_counter()
    return PackResult(
        path=output,
        size=size,
        conda=len(fetched),
        pypi=len(pip_plan.wheels) if pip_plan is not None else 0,
        model_files=len(models),
        models_note=models_note,
        seconds={"fetch": t1 - t0, "write": t2 - t1, "total": t2 - t0},
    )


def manifest_json(target: ResolvedTarget, members: list[Member]) -> bytes:
    data = {
        "format": FORMAT,
        "target": target.name,
        "subdir": target.subdir,
        "envspec_version": __version__,
        "files": [
            {"path": m.path, "kind": m.kind, "size": m.size, "sha256": m.sha256, **({"url": m.url} if m.url else {})}
            for m in members
        ],
    }
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _write_tar(
    output: Path, work: Path, manifest: bytes, members: list[tuple[Member, Path, LockedFile | None]], progress: Progress
) -> int:
    partial = work / "bundle.tar"
    total = sum(m.size for m, _, _ in members)
    written = 0
    last = 0.0
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        head = Member(MANIFEST, "manifest", len(manifest), hashlib.sha256(manifest).hexdigest())
        manifest_path = work / MANIFEST
        manifest_path.write_bytes(manifest)
        _add(tar, head, manifest_path)
        for member, path, check in members:
            _add(tar, member, path, check)
            written += member.size
            if time.monotonic() - last >= 0.5:
                last = time.monotonic()
                progress(f"pack: {human_bytes(written)} of {human_bytes(total)}")
    progress(f"pack: {human_bytes(total)} of {human_bytes(total)}")
    os.replace(partial, output)
    return output.stat().st_size


# ---------------------------------------------------------------------------------------------
# Unpacking: every byte checked before anything is installed
# ---------------------------------------------------------------------------------------------


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
        if not isinstance(sha, str) or not _SHA256.match(sha):
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
        if carried is None or _sha256(carried) != _sha256(path):
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
    if carried is None or not mine.is_file() or _sha256(carried) != _sha256(mine):
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
    project: Project,
    target: ResolvedTarget,
    bundle: Path,
    *,
    host: str,
    prefix: str | None,
    name: str | None,
    cache_dir: Path | None,
    verify_cache: bool,
    require_sha256: bool,
    replace: bool,
    progress: Progress,
) -> InstallResult:
    """``envspec install TARGET --from BUNDLE``: check and unpack the bundle, then install its
    lockfile with the installer, every package taken from the bundle (no network, no mirror)."""
    cache = cache_dir or default_cache_dir()
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
        result = install_target(
            project,
            target,
            host=host,
            prefix=prefix,
            name=name,
            cache_dir=cache,
            verify_cache=verify_cache,
            lockfile=lock_path,
            require_sha256=require_sha256,
            replace=replace,
            progress=progress,
            local_files=unpacked.local_files(),
            lock_source=f"{bundle.name}:lockfiles/{lock_path.name}",
        )
        place_models(models, project, progress)
    return result
