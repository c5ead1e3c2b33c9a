"""Answers a command already gave, kept while every byte they depend on is the same.

``envspec targets`` and ``envspec render --check`` are pure functions of ``envspec.yml``, the
templates, the generated files and envspec's own code; loading the spec costs pydantic (most of
their time). After a run that succeeded, the command stores its answer under the sha256 of those
inputs in ``.envspec-cache/<name>-stamp.json``; the next run with the same digest prints the stored
answer without importing pydantic. Any changed byte, added or removed file, or changed envspec
source file (size or mtime) misses and takes the full path. ``envspec lock`` has its own stamp
(``envspec.lock.stamp``). Standard library only; a cache that cannot be read or written only costs time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import envspec

STAMP_VERSION: Final = 1
_PACKAGE: Final = Path(envspec.__file__).resolve().parent


def _code(packages: Iterable[str]) -> bytes:
    """(path, size, mtime) of every file of these envspec subpackages: a changed source misses."""
    parts: list[str] = [envspec.__version__]
    for name in packages:
        folder = _PACKAGE / name
        entries = [folder] if folder.is_file() else sorted(folder.rglob("*"))
        for path in entries:
            if path.suffix in (".py", ".j2", ".json", ".yml") and path.is_file():
                st = path.stat()
                parts.append(f"{path.relative_to(_PACKAGE).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts).encode()


def digest(files: Iterable[Path], packages: Iterable[str], extra: str = "") -> str | None:
    """sha256 over the bytes of ``files`` (a missing one counts as absent), envspec's code in
    ``packages`` and ``extra``; None when a file exists but cannot be read."""
    h = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    feed("stamp", f"{STAMP_VERSION}".encode())
    feed("code", _code(packages))
    feed("extra", extra.encode())
    from envspec.fsutil import read_regular_bytes  # a FIFO or /dev/zero: a miss, never a hang

    for path in files:
        try:
            feed(os.fspath(path), read_regular_bytes(path))
        except FileNotFoundError:
            feed(os.fspath(path), b"\0absent")
        except OSError:  # unreadable, or not a regular file: the full path says so in one line
            return None
    return h.hexdigest()


def recall(cache_dir: Path, name: str, current: str | None) -> Any:
    """The answer stored for ``current``, or None (no stamp, another digest, unreadable)."""
    if current is None:
        return None
    try:
        data = json.loads((cache_dir / f"{name}-stamp.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != STAMP_VERSION or data.get("digest") != current:
        return None
    return data.get("answer")


def remember(cache_dir: Path, name: str, current: str | None, answer: Any) -> None:
    if current is None:
        return
    from envspec.fsutil import atomic_write_text  # tempfile and friends: only when writing

    data = {"version": STAMP_VERSION, "digest": current, "answer": answer}
    with contextlib.suppress(OSError):
        atomic_write_text(cache_dir / f"{name}-stamp.json", json.dumps(data, indent=2) + "\n")
