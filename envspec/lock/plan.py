"""The lock plan (pure): which targets to solve, update or skip, from their input hashes.

A target's inputs are its environment file, its virtual-package file and the spec's channels as
canonical URLs. Mirrors are not inputs: they are transport, and the lockfiles name the canonical
URLs whichever mirror served the repodata. Their hash is stored in both lockfiles of the target; a target
is up to date when both lockfiles exist and carry the hash of the current inputs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum

INPUT_HASH_VERSION = 2  # 2: channels are canonical URLs (mirrors left out)


def _text_digest(data: bytes) -> str:
    # CRLF checkouts (git autocrlf on Windows) must not make a lockfile look stale.
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


@dataclass(frozen=True)
class LockInput:
    """What a target's lock depends on, read from disk by the caller."""

    target: str
    subdir: str
    environment: bytes
    virtual_packages: bytes
    channels: tuple[str, ...]
    requested: frozenset[str] = frozenset()  # names the environment file asks for (not hashed: it is in there)
    pip: tuple[tuple[str, str], ...] = ()  # a pip target's index and mapping digest (envspec.lock.pypi)
    exclude_newer: str | None = None  # the solve's cutoff (normalised by parse_exclude_newer), if any

    @property
    def has_pip(self) -> bool:
        return bool(self.pip)

    def components(self) -> dict[str, object]:
        return {
            "version": INPUT_HASH_VERSION,
            "target": self.target,
            "subdir": self.subdir,
            "environment": _text_digest(self.environment),
            "virtual_packages": _text_digest(self.virtual_packages),
            "channels": list(self.channels),
            **({"pip": dict(self.pip)} if self.pip else {}),  # absent for conda-only targets: their hash is unchanged
            **({"exclude_newer": self.exclude_newer} if self.exclude_newer else {}),  # absent: hash unchanged
        }

    def digest(self) -> str:
        canonical = json.dumps(self.components(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


_RFC3339_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_RFC3339_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_exclude_newer(text: str) -> str:
    """``--exclude-newer``: an RFC 3339 date (``2025-06-01``: that day's first instant, UTC) or
    datetime with an offset (``2025-06-01T12:00:00+02:00``), as the UTC instant ``2025-06-01T10:00:00Z``.
    ``ValueError`` for anything else: a datetime without an offset would mean another instant on each
    machine, and ISO 8601's other forms (week dates, ``20250601``) are not RFC 3339."""
    value = text.strip()
    bad = f"{text!r} is not an RFC 3339 date or datetime (e.g. 2025-06-01 or 2025-06-01T12:00:00Z)"
    if _RFC3339_DATE.fullmatch(value):
        try:
            return f"{date.fromisoformat(value).isoformat()}T00:00:00Z"
        except ValueError:
            raise ValueError(bad) from None
    if not _RFC3339_DATETIME.fullmatch(value):
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?", value):
            raise ValueError(f"{text!r} has no time zone: add Z or an offset (e.g. {value}Z), or give a date")
        raise ValueError(bad)
    try:
        utc = datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(bad) from None
    stamp = f"{utc.date().isoformat()}T{utc.strftime('%H:%M:%S')}"  # isoformat: %Y is not 4 digits everywhere
    stamp += f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return stamp + "Z"


@dataclass(frozen=True)
class Stored:
    """What the existing lockfiles of a target say (None: file missing or hash absent)."""

    explicit_hash: str | None = None
    conda_lock_hash: str | None = None
    packages: frozenset[str] | None = None  # package names in the lock, read only for --update
    torn: bool = False  # same input hash, but the two files list different packages
    pip_hash: str | None = None  # the input hash in <target>.pip.txt (pip targets only)


class Action(Enum):
    SOLVE = "solve"
    UPDATE = "update"
    SKIP = "up to date"


@dataclass(frozen=True)
class PlanItem:
    target: str
    action: Action
    reason: str
    input_hash: str
    update: tuple[str, ...] = ()


def staleness(current: str, stored: Stored, pip: bool = False) -> str | None:
    """Why a target is stale, or None when its lockfiles match ``current`` (and, for a target
    with pip packages, its ``.pip.txt`` does too)."""
    if stored.conda_lock_hash is None and stored.explicit_hash is None:
        return "no lockfile"
    if stored.conda_lock_hash is None:
        return "conda-lock file missing or without envspec input hash"
    if stored.explicit_hash is None:
        return "explicit .lock missing or without envspec input hash"
    if stored.conda_lock_hash != stored.explicit_hash or stored.torn:
        return "its two lockfiles disagree (an interrupted write?)"
    if stored.conda_lock_hash != current:
        return "inputs changed (environment file, virtual packages, channels or --exclude-newer)"
    if pip and stored.pip_hash != current:
        return ".pip.txt missing or from another lock (an interrupted write?)"
    return None


class LockPlanError(ValueError):
    """The request cannot be planned (e.g. --update of a package no lockfile has)."""


def plan(
    inputs: Sequence[LockInput],
    stored: Mapping[str, Stored],
    update: Sequence[str] = (),
) -> list[PlanItem]:
    """One item per input, in input order.

    Without ``update``: stale targets are solved, the others skipped. With ``update``: stale
    targets are fully re-solved (their inputs changed anyway); up-to-date targets whose lock
    contains one of the packages get those packages updated; the rest are skipped.
    """
    items: list[PlanItem] = []
    wanted = tuple(dict.fromkeys(update))
    found: set[str] = set()
    for inp in inputs:
        current = inp.digest()
        state = stored.get(inp.target, Stored())
        why = staleness(current, state, inp.has_pip)
        if why is not None:
            items.append(PlanItem(inp.target, Action.SOLVE, why, current))
            found.update(wanted)  # a full solve moves every package to its latest
            continue
        if not wanted:
            items.append(PlanItem(inp.target, Action.SKIP, "inputs unchanged", current))
            continue
        present = tuple(p for p in wanted if state.packages is not None and p in state.packages)
        indirect = [p for p in present if inp.requested and p not in inp.requested]
        if indirect:
            raise LockPlanError(
                f"--update {' '.join(indirect)}: target {inp.target} does not request it directly, and conda-lock "
                "can only update packages named in the environment file (add it to envspec.yml, or re-lock)"
            )
        found.update(present)
        if present:
            items.append(PlanItem(inp.target, Action.UPDATE, f"update {', '.join(present)}", current, present))
        else:
            items.append(PlanItem(inp.target, Action.SKIP, f"no {', '.join(wanted)} in its lock", current))
    missing = [p for p in wanted if p not in found]
    if missing:
        raise LockPlanError(f"--update {' '.join(missing)}: not a package of any selected target's lockfile")
    return items
