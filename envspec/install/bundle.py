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

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from envspec import __version__
from envspec.errors import IntegrityError
from envspec.install import pip
from envspec.install.fetch import fetch_all
from envspec.install.plan import (
    destination,
    plan_install,
)
from envspec.install.run import read_lock_input
from envspec.lock import pip_file
from envspec.models import (
    LockedFile,
    lockfile_path,
    model_dir,
    pulled_model_path,
    read_models_lock,
)
from envspec.project import Project
from envspec.settings import FetchLimits
from envspec.spec import ResolvedTarget
from envspec.units import human_bytes

Progress = Callable[[str], None]

MANIFEST: Final = "envspec-bundle.json"
FORMAT: Final = "envspec-bundle/1"
CHUNK: Final = 1 << 20
MAX_MANIFEST_BYTES: Final = 64 << 20
KINDS: Final = ("lockfile", "conda", "pypi", "model")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
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


def sha256_of(path: Path) -> str:
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
            sha = f.sha256 if f.sha256 is not None else sha256_of(path)  # git-sha1 files are small
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
    limits: FetchLimits | None = None,
) -> PackResult:
    """Write the bundle of ``target`` to ``output`` (atomically); see the module doc. ``limits``
    bound the downloads (None: the defaults)."""
    t0 = time.perf_counter()
    explicit = project.explicit_file(target.name)
    lockfile = read_lock_input(project, target.name, explicit, missing=": nothing to pack")
    text = lockfile.text
    plan = plan_install(
        target,
        lockfile,
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
        fetched = fetch_all(plan.lock, plan.urls, work / "pkgs", progress, limits=limits)
        t1 = time.perf_counter()
        with pip.fetched(pip_plan, progress, limits) as wheel_dir:
            members: list[tuple[Member, Path, LockedFile | None]] = []
            for path in lockfile_paths(project, target.name):
                members.append(
                    (Member(f"lockfiles/{path.name}", "lockfile", path.stat().st_size, sha256_of(path)), path, None)
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
