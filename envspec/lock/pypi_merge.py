"""The PyPI part of one target: resolve it on top of the conda solution, merge it into the lockfiles.

:func:`resolve` builds the uv request from the job (requirements, index, sdist allowance), the
conda solution (stand-ins, python) and the target's virtual packages (platform), runs it
(:mod:`envspec.lock.pypi_resolve`) and returns what uv chose minus the stand-ins.
:func:`merge_conda_lock` adds the result to conda-lock's own lockfile through conda-lock's own
lockfile model (``manager: pip`` entries, category ``main``: what ``conda-lock render`` and
``conda-lock install`` read), :func:`merge_explicit` as ``# pip NAME @ URL#sha256=...`` lines, as
conda-lock's explicit renderer writes them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from envspec.errors import SpecError, ToolFailed
from envspec.lock import pypi_resolve as uvr
from envspec.lock.condalock import PipPackage, read_pip_packages
from envspec.lock.pypi_mapping import conda_to_pypi
from envspec.lock.pypi_parts import CondaPart, PipRun


class IndexLike(Protocol):
    @property
    def url(self) -> str: ...
    def child_env(self) -> dict[str, str]: ...


class PipJob(Protocol):
    """What :func:`resolve` needs of ``envspec.lock.pypi.PipJob``."""

    @property
    def requirements(self) -> tuple[str, ...]: ...
    @property
    def allow_sdist(self) -> frozenset[str]: ...
    @property
    def index(self) -> IndexLike: ...
    @property
    def exclude_newer(self) -> str | None: ...


def conda_part(lock_text: str, subdir: str) -> list[uvr.CondaRecord]:
    return uvr.conda_records(lock_text, subdir)


def build_request(
    job: PipJob,
    *,
    subdir: str,
    records: Sequence[uvr.CondaRecord],
    vpkg_text: str,
    previous: Sequence[PipPackage] = (),
    update: Sequence[str] = (),
) -> uvr.Request:
    python = next((r.version for r in records if r.name == "python"), None)
    if python is None:
        raise SpecError(
            f"pip packages need python: the conda solution for {subdir} has none",
            tip="add python to the target's dependencies in envspec.yml",
        )
    standins, _ = uvr.provided(records, conda_to_pypi())
    platform = uvr.platform_for(subdir, uvr.virtual_packages(vpkg_text, subdir), python)
    upgrade = tuple(sorted({uvr.canonical(n) for n in update}))
    preferences = tuple(uvr.Resolved(p.name, p.version, p.url, p.sha256) for p in previous if p.name not in upgrade)
    return uvr.Request(
        requirements=job.requirements,
        index_url=job.index.url,
        index_env=job.index.child_env(),
        allow_sdist=job.allow_sdist,
        platform=platform,
        standins=tuple(standins),
        preferences=preferences if update else (),
        upgrade=upgrade if update else (),
        exclude_newer=job.exclude_newer,
    )


def resolve(
    job: PipJob,
    conda: CondaPart,
    run: PipRun,
    *,
    scrub: Callable[[str], str] = str,
    records: Sequence[uvr.CondaRecord] | None = None,
) -> list[PipPackage]:
    """The PyPI packages of the target, stand-ins dropped (raises EnvspecError). ``run.work``: uv's
    working folder (required); ``scrub`` takes the index's credentials out of uv's output;
    ``records``: the conda part, when already read."""
    target, subdir, lock_text, vpkg_text = conda.target, conda.subdir, conda.lock_text, conda.virtual_packages
    previous, update, verbose = run.previous, run.update, run.verbose
    if run.work is None:
        raise ValueError("resolve() needs run.work: a folder for uv")
    work, cache = run.work, run.cache
    records = conda_part(lock_text, subdir) if records is None else records
    old = read_pip_packages(previous, "the previous conda-lock.yml", subdir) if previous else []
    request = build_request(job, subdir=subdir, records=records, vpkg_text=vpkg_text, previous=old, update=update)
    limits = run.limits
    code, pylock, stderr, standin_base = uvr.run_uv(
        request, work, cache or work / "uv-cache", limits.timeout_s, limits.memory_bytes
    )
    if verbose:
        sys.stderr.write(scrub(stderr))
    if code != 0:
        raise uvr.classify(
            stderr,
            target=target,
            subdir=subdir,
            index_url=job.index.url,
            standins=request.standins,
            scrub=scrub,
        )
    return chosen(uvr.parse_pylock(pylock, request.platform), request, target, standin_base)


def chosen(resolved: Sequence[uvr.Resolved], request: uvr.Request, target: str, standin_base: str) -> list[PipPackage]:
    """uv's result without the stand-ins; a package whose marker excludes the target is an error,
    never dropped in silence."""
    from packaging.markers import InvalidMarker, Marker

    standin = {p.pypi: p for p in request.standins}
    out: list[PipPackage] = []
    for r in resolved:
        if r.name in standin and r.url.startswith(standin_base):
            if r.version != standin[r.name].version:
                raise ToolFailed(f"{target}: uv chose {r.name} {r.version}, not conda's {standin[r.name].version}")
            continue
        if r.marker:
            try:
                applies = Marker(r.marker).evaluate(dict(request.platform.markers))
            except InvalidMarker:
                applies = True
            if not applies:
                raise ToolFailed(
                    f"{target}: uv resolved {r.name} {r.version} with marker {r.marker!r}, which excludes "
                    f"{request.platform.python_platform}",
                    tip="report this as an envspec bug",
                )
        out.append(PipPackage(r.name, r.version, r.url, r.sha256))
    return out


# ---------------------------------------------------------------------------------------------
# Writing it where conda-lock would
# ---------------------------------------------------------------------------------------------


def merge_conda_lock(lock_text: str, packages: Sequence[PipPackage], subdir: str, path: Path) -> str:
    """``lock_text`` with ``packages`` as its ``manager: pip`` entries of ``subdir``, written by
    conda-lock's own lockfile model (``path`` names the file as the lockfile will be named)."""
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file
    from conda_lock.lockfile.v1.models import HashModel
    from conda_lock.lockfile.v2prelim.models import LockedDependency

    path.write_text(lock_text, encoding="utf-8")
    try:
        lockfile = parse_conda_lock_file(path)
    except Exception as exc:  # conda-lock's own reader: its errors are pydantic's, yaml's...
        raise ToolFailed(f"conda-lock cannot read back its own lockfile: {exc}") from None
    kept = [p for p in lockfile.package if not (p.manager == "pip" and p.platform == subdir)]
    added = [
        LockedDependency(
            name=p.name,
            version=p.version,
            manager="pip",
            platform=subdir,
            dependencies={},
            url=p.url,
            hash=HashModel(sha256=p.sha256),
            categories={"main"},
        )
        for p in packages
    ]
    lockfile.package = kept + added
    write_conda_lock_file(lockfile, path, metadata_choices=None)
    return path.read_text(encoding="utf-8")


def pip_entries_text(packages: Sequence[PipPackage], subdir: str) -> str:
    """The ``package:`` entries of ``packages`` exactly as conda-lock's writer prints them: its v1
    entry's fields in its order, its YAML emitter's options, sorted by name (a test holds this
    byte-equal to conda-lock's own writer; importing conda-lock here would cost ~0.5 s)."""
    import yaml

    entries = [
        {"name": p.name, "version": p.version, "manager": "pip", "platform": subdir, "dependencies": {},
         "url": p.url, "hash": {"sha256": p.sha256}, "category": "main", "optional": False}
        for p in sorted(packages, key=lambda p: p.name)
    ]  # fmt: skip
    return yaml.dump(entries, sort_keys=False) if entries else ""


def merge_conda_lock_fast(lock_text: str, packages: Sequence[PipPackage], subdir: str) -> str | None:
    """:func:`merge_conda_lock` without re-reading and re-writing the whole file: conda-lock sorts
    pip entries after the conda ones and ``package:`` is its last key, so they are appended. None
    when ``lock_text`` is not of that shape (the caller takes the slow path)."""
    if "\nmanager: pip" in lock_text or "  manager: pip" in lock_text or not lock_text.endswith("\n"):
        return None
    tail = lock_text[lock_text.rfind("\npackage:") :] if "\npackage:" in lock_text else ""
    if (
        not tail
        or "\n- name:" not in tail
        or any(line and not line.startswith(("- ", "  ")) for line in tail.split("\n")[2:])
    ):
        return None
    return lock_text + pip_entries_text(packages, subdir)


def merge_explicit(explicit_text: str, packages: Sequence[PipPackage]) -> str:
    """The explicit file with one ``# pip NAME @ URL#sha256=HASH`` line per package (conda-lock's form)."""
    lines = [line for line in explicit_text.rstrip("\n").split("\n") if not line.startswith("# pip ")]
    lines += [f"# pip {p.name} @ {p.url.split('#', 1)[0]}#sha256={p.sha256}" for p in packages]
    return "\n".join(lines) + "\n"


def standin_summary(records: Sequence[uvr.CondaRecord]) -> str:
    """For ``-v``: the stand-ins a conda solution gives (one JSON line)."""
    standins, unversioned = uvr.provided(records, conda_to_pypi())
    return json.dumps({"standins": [f"{p.pypi}=={p.version}" for p in standins],
                       "no_pep440_version": [r.name for r in unversioned]})  # fmt: skip
