"""Planning an install: which prefix, which tool command, what the environment records. Pure.

``envspec.install.execute`` carries the plan out (downloads, hashes, rattler, renames); everything here is
data in, data out, so it is unit-tested without touching a disk or spawning a tool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol
from urllib.parse import unquote, urlsplit

from envspec.channels import channel_url
from envspec.errors import PlatformMismatch, SpecError
from envspec.lock import explicit_entries, read_conda_lock

Tool = Literal["rattler", "conda", "mamba", "micromamba"]
TOOLS: Final[tuple[Tool, ...]] = ("rattler", "conda", "mamba", "micromamba")

#: conda's per-environment state file; ``conda activate`` exports its ``env_vars``.
STATE_FILE: Final = "conda-meta/state"


ARCHIVE_SUFFIXES: Final = (".conda", ".tar.bz2")
HashKind = Literal["md5", "sha256"]
_PLATFORM = re.compile(r"^#\s*platform:\s*(\S+)\s*$")


# ---------------------------------------------------------------------------------------------
# The explicit lockfile, as the installer needs it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockEntry:
    """One package line: where it comes from and the hash it must have."""

    url: str
    md5: str | None = None  # lowercase hex; at least one of md5 / sha256
    sha256: str | None = None
    size: int | None = None  # the archive's size in bytes, when conda-lock.yml records it

    @property
    def hashes(self) -> dict[HashKind, str]:
        """The hashes the package must have, strongest first."""
        out: dict[HashKind, str] = {}
        if self.sha256:
            out["sha256"] = self.sha256
        if self.md5:
            out["md5"] = self.md5
        return out

    @property
    def filename(self) -> str:
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])

    @property
    def stem(self) -> str:
        """``name-version-build``: the folder of the extracted package in a package cache."""
        for suffix in ARCHIVE_SUFFIXES:
            if self.filename.endswith(suffix):
                return self.filename[: -len(suffix)]
        return self.filename

    @property
    def name(self) -> str:
        return self.stem.rsplit("-", 2)[0]

    @property
    def channel(self) -> str:
        """The channel part of the URL: everything before ``/<subdir>/<file>``."""
        return self.url.rsplit("/", 2)[0]


@dataclass(frozen=True)
class ExplicitLock:
    platform: str
    entries: tuple[LockEntry, ...]


def parse_lock(text: str, source: str) -> ExplicitLock:
    """An explicit lockfile (``@EXPLICIT``, ``# platform:``, ``URL#md5`` or ``URL#sha256:…``).

    Only hash-pinned files install: a line without a hash, a missing platform header or a
    package listed twice is a ``SpecError`` naming the file.
    """
    try:
        lines = explicit_entries(text)
    except ValueError as exc:
        raise SpecError(f"{source}: {exc}", tip="regenerate it with `envspec lock`") from None
    platform = next((m.group(1) for m in map(_PLATFORM.match, text.splitlines()) if m), None)
    if platform is None:
        raise SpecError(
            f"{source}: no '# platform: <subdir>' line, so its platform cannot be checked",
            tip="regenerate it with `envspec lock`",
        )
    if not lines:
        raise SpecError(f"{source}: lists no packages", tip="regenerate it with `envspec lock`")
    out: list[LockEntry] = []
    seen: set[str] = set()
    for line in lines:
        value = line.hash.lower()
        kind: HashKind
        if value.startswith("sha256:") or len(value) == 64:
            kind, value = "sha256", value.removeprefix("sha256:")
        else:
            kind = "md5"
        if len(value) != {"md5": 32, "sha256": 64}[kind]:
            raise SpecError(f"{source}: {line.url} has a malformed {kind} {value!r}")
        if line.name.lower() in seen:  # the decoded name: num%70y is numpy
            raise SpecError(f"{source}: package {line.name!r} is listed twice ({line.filename})")
        seen.add(line.name.lower())
        out.append(
            LockEntry(url=line.url, md5=value if kind == "md5" else None, sha256=value if kind == "sha256" else None)
        )
    return ExplicitLock(platform=platform, entries=tuple(out))


def add_conda_lock_hashes(lock: ExplicitLock, conda_lock_text: str, source: str) -> ExplicitLock:
    """Add the sha256 (and md5) that conda-lock's unified lockfile records for the same URLs.

    conda-lock's explicit rendering carries only md5, which a malicious mirror can collide; its
    ``<target>.conda-lock.yml`` has both, so both are checked. A URL whose md5 differs between
    the two files means they are out of step: an error, not a guess.
    """
    known = {p.url: p for p in read_conda_lock(conda_lock_text, source, lock.platform)}
    entries = []
    for entry in lock.entries:
        record = known.get(entry.url)
        extra = {"md5": record.md5, "sha256": record.sha256} if record is not None else {}
        size = record.size if record is not None else None
        for kind, value in entry.hashes.items():
            if extra.get(kind) is not None and extra[kind] != value:
                raise SpecError(
                    f"{source} and the explicit lockfile disagree on {entry.filename} ({kind})",
                    tip="re-lock: `envspec lock --target <target>` writes both files together",
                )
        entries.append(
            LockEntry(
                url=entry.url,
                md5=entry.md5 or extra.get("md5"),
                sha256=entry.sha256 or extra.get("sha256"),
                size=entry.size or size,
            )
        )
    return ExplicitLock(platform=lock.platform, entries=tuple(entries))


def without_sha256(lock: ExplicitLock) -> list[LockEntry]:
    """The packages pinned by md5 only (no sha256 in either lockfile)."""
    return [e for e in lock.entries if not e.sha256]


def sha256_gap_message(lock: ExplicitLock, source: str, *, shown: int = 5) -> str | None:
    """One line naming how many and which packages only md5 checks, or None when none."""
    weak = without_sha256(lock)
    if not weak:
        return None
    names = ", ".join(e.filename for e in weak[:shown]) + (
        f" and {len(weak) - shown} more" if len(weak) > shown else ""
    )
    return (
        f"{len(weak)} of {len(lock.entries)} packages of {source} have no sha256 (no conda-lock.yml beside it, "
        f"or it lost its sha256 hashes) and are checked by md5 only: {names}"
    )


def mirror_prefixes(mirrors: Mapping[str, str]) -> dict[str, str]:
    """``{channel name or URL: mirror URL}`` -> ``{channel URL prefix/: mirror URL prefix/}``."""
    return {channel_url(name).rstrip("/") + "/": url.rstrip("/") + "/" for name, url in mirrors.items()}


def mirrored_url(url: str, prefixes: Mapping[str, str]) -> str:
    """``url`` with its longest matching channel prefix replaced by the mirror's."""
    best = max((p for p in prefixes if url.startswith(p)), key=len, default=None)
    return url if best is None else prefixes[best] + url[len(best) :]


def check_platform(lock: ExplicitLock, source: str, target_name: str, target_subdir: str, host: str) -> None:
    """A lockfile installs only for its target's subdir, and only on a machine of that subdir."""
    if lock.platform != target_subdir:
        raise PlatformMismatch(
            f"{source} is for platform {lock.platform}, but target {target_name!r} is {target_subdir}",
            tip=f"regenerate it with `envspec lock --target {target_name}`",
        )
    if lock.platform != host:
        raise PlatformMismatch(
            f"{source} is for platform {lock.platform}, but this machine is {host}",
            tip=f"install the target made for {host} (see `envspec targets`), or run this on a {lock.platform} machine",
        )


# ---------------------------------------------------------------------------------------------
# Where and how
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where the environment goes: a prefix, and the name when the user gave one."""

    prefix: Path
    name: str | None = None


def envs_dir(environ: Mapping[str, str], home: Path) -> Path:
    """Where named environments live, as conda and micromamba look for them.

    ``CONDA_ENVS_PATH`` (first entry) > ``MAMBA_ROOT_PREFIX/envs`` > ``~/.conda/envs``.
    """
    sep = ";" if ";" in environ.get("CONDA_ENVS_PATH", "") else ":"
    first = next((p for p in environ.get("CONDA_ENVS_PATH", "").split(sep) if p), None)
    if first:
        return Path(first)
    if environ.get("MAMBA_ROOT_PREFIX"):
        return Path(environ["MAMBA_ROOT_PREFIX"]) / "envs"
    return home / ".conda" / "envs"


def destination(prefix: str | None, name: str | None, environ: Mapping[str, str], home: Path) -> Destination:
    if (prefix is None) == (name is None):
        raise SpecError("give exactly one of --prefix PATH or --name NAME")
    if prefix is not None:
        return Destination(prefix=Path(prefix).expanduser().absolute())
    assert name is not None
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise SpecError(f"--name {name!r} is not an environment name (use --prefix for a path)")
    return Destination(prefix=envs_dir(environ, home) / name, name=name)


def tool_command(tool: Tool, executable: str, prefix: Path, explicit_file: Path) -> list[str]:
    """The command that makes ``tool`` create the environment from the same explicit file.

    conda and mamba: ``create --yes --prefix P --file X`` (the explicit-file form every conda
    version reads); micromamba: ``create --yes --prefix P -f X``. A ``--name`` is resolved to its
    prefix first (:func:`destination`), so every backend puts it in the same place and envspec
    knows where to write the activation variables. The tools check each package's md5/sha256
    from the file themselves.
    """
    if tool == "rattler":
        raise ValueError("rattler runs in-process, not as a command")
    file_flag = "-f" if tool == "micromamba" else "--file"
    return [executable, "create", "--yes", "--prefix", str(prefix), file_flag, str(explicit_file)]


def mirrored_explicit_text(text: str, mapped: Mapping[str, str]) -> str:
    """The explicit file with each package URL replaced by its mirrored URL (hashes kept)."""
    out = []
    for line in text.splitlines():
        url, sep, rest = line.partition("#")
        stripped = url.strip()
        out.append(mapped[stripped] + "#" + rest if sep and stripped in mapped else line)
    return "\n".join(out) + "\n"


def state_json(existing: Mapping[str, object] | None, variables: Mapping[str, str]) -> str:
    """conda's ``conda-meta/state``: ``{"env_vars": {...}}``, other keys kept as they were."""
    state: dict[str, object] = dict(existing or {})
    previous = state.get("env_vars")
    env_vars: dict[str, object] = dict(previous) if isinstance(previous, dict) else {}
    env_vars.update(variables)
    state["env_vars"] = dict(sorted(env_vars.items()))
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# The whole plan, computed once; envspec.install.execute carries it out
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallPlan:
    """Everything one install does, decided before anything is fetched or linked."""

    target: str
    source: str  # the explicit lockfile, as shown to people
    lock: ExplicitLock  # with the sha256 of the conda-lock.yml beside it merged in
    urls: tuple[str, ...]  # where each entry is downloaded from (mirror applied), in lockfile order
    destination: Destination
    variables: Mapping[str, str]  # conda-meta/state env_vars
    tool: Tool
    tool_lock_text: str | None  # the explicit file a conda/mamba/micromamba run reads (mirrored URLs)

    @property
    def prefix(self) -> Path:
        return self.destination.prefix


class PlanTarget(Protocol):
    """What the plan needs of a target (``envspec.spec.ResolvedTarget`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def subdir(self) -> str: ...
    @property
    def variables(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class LockInput:
    """A target's explicit lockfile as read: its text and where it came from (for messages), and
    ``(text, source)`` of the ``<target>.conda-lock.yml`` beside it, when there is one."""

    text: str
    source: str
    conda_lock: tuple[str, str] | None = None


def plan_install(
    target: PlanTarget,
    lockfile: LockInput,
    *,
    host: str,
    destination: Destination,
    mirrors: Mapping[str, str],
    tool: Tool = "rattler",
) -> InstallPlan:
    """Parse and check the lockfile for this target and machine, merge hashes, map mirrors. Pure."""
    target_name, target_subdir, variables = target.name, target.subdir, target.variables
    lock_text, lock_source, conda_lock = lockfile.text, lockfile.source, lockfile.conda_lock
    lock = parse_lock(lock_text, lock_source)
    check_platform(lock, lock_source, target_name, target_subdir, host)
    if conda_lock is not None:
        lock = add_conda_lock_hashes(lock, *conda_lock)
    prefixes = mirror_prefixes(mirrors)
    urls = tuple(mirrored_url(e.url, prefixes) for e in lock.entries)
    tool_text = None
    if tool != "rattler":
        tool_text = mirrored_explicit_text(lock_text, dict(zip((e.url for e in lock.entries), urls, strict=True)))
    return InstallPlan(
        target=target_name,
        source=lock_source,
        lock=lock,
        urls=urls,
        destination=destination,
        variables=dict(variables),
        tool=tool,
        tool_lock_text=tool_text,
    )
