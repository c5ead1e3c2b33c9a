"""A target's lock job: its inputs, read from disk once, and what its lockfiles already record.

:func:`make_jobs` reads each target's rendered files into a :class:`LockJob` (whose
:class:`envspec.lock.plan.LockInput` is hashed into both lockfiles); :func:`read_stored` reads back
the hashes (and, for ``--update``, the package names) the existing lockfiles carry, cheaply.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from envspec.channels import apply_mirrors, canonical_channels
from envspec.errors import SpecError
from envspec.fsutil import read_regular_text
from envspec.lock import commit, explicit, pypi
from envspec.lock.condalock import read_conda_lock, read_pip_packages
from envspec.lock.plan import LockInput, Stored

CONDA_LOCK_HASH_KEY = commit.CONDA_LOCK_HASH_KEY
#: The cutoff of ``--exclude-newer`` in conda-lock.yml's metadata (the explicit file's header says
#: ``# envspec-exclude-newer: ...``); both files carry it inside the input hash as well.
CONDA_LOCK_EXCLUDE_NEWER_KEY = "envspec_exclude_newer"
_META_HASH_RE = commit.META_HASH_RE


class TargetLike(Protocol):
    """What lock needs of a resolved target (``envspec.spec.load.ResolvedTarget`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def subdir(self) -> str: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...


class ProjectLike(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def cache_dir(self) -> Path: ...
    def env_file(self, target: str) -> Path: ...
    def vpkg_file(self, target: str) -> Path: ...
    def conda_lock_file(self, target: str) -> Path: ...
    def explicit_file(self, target: str) -> Path: ...


@dataclass(frozen=True)
class LockJob:
    target: str
    subdir: str
    root: Path
    env_file: Path
    vpkg_file: Path
    conda_lock_file: Path
    explicit_file: Path
    channels: tuple[str, ...]  # canonical channel URLs: what conda-lock and the lockfiles see
    input: LockInput
    solve_channels: tuple[str, ...] = ()  # where they are fetched from (mirrors applied, no credentials)
    common: frozenset[str] = frozenset()  # names the spec's top-level `dependencies:` asks for (error tips)
    mirrors: tuple[tuple[str, str], ...] = ()  # (name or URL, mirror URL) pairs that apply to it

    @property
    def fetch_channels(self) -> tuple[str, ...]:
        """Where the channels are fetched from: the mirrors where there are some."""
        return self.solve_channels or self.channels

    pip: pypi.PipJob | None = None  # the target's PyPI part, if it has one

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def make_jobs(
    project: ProjectLike,
    targets: Sequence[TargetLike],
    mirrors: Mapping[str, str],
    exclude_newer: str | None = None,
) -> list[LockJob]:
    """Read each target's inputs (raises SpecError when a rendered file is missing).

    ``exclude_newer``: the solve's cutoff (``parse_exclude_newer``), ``""`` for none, or None to keep
    the cutoff each target's lockfile records (what every command that does not set one does).
    """
    jobs = []
    for t in targets:
        env_file, vpkg_file = project.env_file(t.name), project.vpkg_file(t.name)
        try:
            env_bytes, vpkg_bytes = env_file.read_bytes(), vpkg_file.read_bytes()
        except FileNotFoundError as exc:
            raise SpecError(
                f"target {t.name}: {exc.filename} does not exist",
                tip="run `envspec render` first: it writes the environment and virtual-package files",
            ) from None
        channels = canonical_channels(t.channels)
        solve_channels = apply_mirrors(t.channels, mirrors)
        cutoff = (
            recorded_exclude_newer(project.explicit_file(t.name)) if exclude_newer is None else exclude_newer or None
        )
        pip_job = pypi.make_pip_job(t, mirrors, exclude_newer=cutoff)
        jobs.append(
            LockJob(
                target=t.name,
                subdir=t.subdir,
                root=project.root,
                env_file=env_file,
                vpkg_file=vpkg_file,
                conda_lock_file=project.conda_lock_file(t.name),
                explicit_file=project.explicit_file(t.name),
                channels=channels,
                input=LockInput(
                    t.name,
                    t.subdir,
                    env_bytes,
                    vpkg_bytes,
                    channels,
                    frozenset(map(spec_name, t.dependencies)) | pypi.requested(pip_job),
                    pypi.hash_components(pip_job),
                    cutoff,
                ),
                solve_channels=solve_channels,
                common=frozenset(map(spec_name, getattr(t, "common_dependencies", ()))),
                mirrors=tuple(sorted(mirrors.items())),
                pip=pip_job,
            )
        )
    return jobs


def recorded_exclude_newer(explicit_file: Path) -> str | None:
    """The ``--exclude-newer`` cutoff an explicit lockfile records in its header, if any."""
    head = read_head(explicit_file)
    return explicit.header_fields(head).get(explicit.EXCLUDE_NEWER_KEY) if head is not None else None


def spec_name(match_spec: str) -> str:
    """The package name of a conda match spec (``conda-forge::pytorch=*=cuda*`` -> ``pytorch``)."""
    text = match_spec.strip().split("::", 1)[-1]
    return re.split(r"[\s=<>!~\[;]", text, maxsplit=1)[0].lower()


def read_head(path: Path, size: int = 4096) -> str | None:
    try:
        return read_regular_text(path, size, errors="replace", head=True)  # a FIFO must not hang lock
    except FileNotFoundError:
        return None


def read_stored(job: LockJob, with_packages: bool = False) -> Stored:
    """The hashes the existing lockfiles carry (fast: no YAML parse unless ``with_packages``)."""
    head = read_head(job.explicit_file)
    explicit_hash = explicit.header_fields(head).get(explicit.HASH_KEY) if head is not None else None
    try:
        text = read_regular_text(job.conda_lock_file, errors="replace")
    except FileNotFoundError:
        return Stored(explicit_hash, None, None)
    m = _META_HASH_RE.search(text)
    conda_lock_hash = m.group(1) if m else None
    packages = None
    if with_packages:
        packages = frozenset(p.name for p in read_conda_lock(text, job.rel(job.conda_lock_file), job.subdir))
        packages |= frozenset(p.name for p in read_pip_packages(text, job.rel(job.conda_lock_file), job.subdir))
    torn = False
    if explicit_hash is not None and explicit_hash == conda_lock_hash:  # same hash: same packages too?
        with contextlib.suppress(OSError):
            torn = commit.pair_problem(read_regular_text(job.explicit_file, errors="replace"), text) is not None
    pip_hash = pypi.stored_hash(pypi.pip_file(job.explicit_file)) if job.pip is not None else None
    return Stored(explicit_hash, conda_lock_hash, packages, torn=torn, pip_hash=pip_hash)


def solved_from_test_channel(job: LockJob) -> bool:
    """Does the target's explicit lockfile say it was solved against the tests' synthetic channel?"""
    head = read_head(job.explicit_file)
    return head is not None and explicit.header_fields(head).get(explicit.SOLVED_FROM_KEY) == explicit.TEST_CHANNEL
