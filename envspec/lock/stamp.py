"""The nothing-changed fast path of ``envspec lock``: a stamp of every byte its result depends on.

Whether every lockfile is current is a pure function of the files it reads: ``envspec.yml``, the
rendered ``environment-*.yml``, everything in ``lockfiles/`` (lockfiles, virtual-package specs, a
pending commit journal), the shipped PyPI name mapping and the PyPI resolver's version, the mirrors
and the target selection, and envspec itself. After a run that ends with every selected lockfile
current, ``envspec lock`` stores the digest of all of them in ``.envspec-cache/lock-stamp.json``; the
next run with the same digest knows the answer without loading the spec or importing the solver
stack (pydantic, py-rattler, conda-lock), which is most of a no-op run's time. Any changed byte,
added or removed file, another selection or another envspec version misses the stamp and takes the
full path. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import envspec
from envspec.fsutil import atomic_write_text
from envspec.lock.pypi_version import resolver_version

STAMP_VERSION: Final = 1
STAMP_FILE: Final = "lock-stamp.json"
_MAPPING: Final = Path(__file__).with_name("pypi_mapping.json")


def digest(root: Path, spec_path: Path, selection: Sequence[str], mirrors: Mapping[str, str]) -> str | None:
    """sha256 over every input of the lock's freshness; None when one cannot be read."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("stamp", f"{STAMP_VERSION} {envspec.__version__}".encode())
    feed("selection", "\0".join(sorted(set(selection))).encode())
    feed("mirrors", json.dumps(sorted(mirrors.items())).encode())
    from envspec.fsutil import read_regular_bytes  # a FIFO or /dev/zero: a miss, never a hang

    try:
        feed("spec", read_regular_bytes(spec_path))
        feed("mapping", read_regular_bytes(_MAPPING) if _MAPPING.is_file() else b"")
        feed("pypi-resolver", resolver_version().encode())  # in a pip target's input hash too
        lock_dir = root / "lockfiles"
        files = sorted(root.glob("environment-*.yml")) + sorted(p for p in lock_dir.iterdir() if p.is_file())
        for path in files:
            feed(path.relative_to(root).as_posix(), read_regular_bytes(path))
    except OSError:  # unreadable, or not a regular file: the full path says so in one line
        return None
    return h.hexdigest()


class Stamp(NamedTuple):
    targets: list[str]  # the targets whose lockfiles were all current
    table: str  # the summary table ``envspec lock`` printed for them


def fresh(cache_dir: Path, current: str | None) -> Stamp | None:
    """The stored result when ``current`` is the digest of the last all-current run, else None."""
    if current is None:
        return None
    try:
        data = json.loads((cache_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != STAMP_VERSION or data.get("digest") != current:
        return None
    targets, table = data.get("targets"), data.get("table")
    if not (isinstance(targets, list) and all(isinstance(t, str) for t in targets) and isinstance(table, str)):
        return None
    return Stamp(targets, table)


def record(cache_dir: Path, current: str | None, targets: Sequence[str], table: str) -> None:
    """Remember that every lockfile of ``targets`` is current for the inputs of ``current``."""
    if current is None:
        return
    data = {"version": STAMP_VERSION, "digest": current, "targets": list(targets), "table": table}
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs speed
        atomic_write_text(cache_dir / STAMP_FILE, json.dumps(data, indent=2) + "\n")


def forget(cache_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (cache_dir / STAMP_FILE).unlink()
