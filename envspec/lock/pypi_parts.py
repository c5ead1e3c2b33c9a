"""What one target's PyPI part is resolved from (the conda solution) and how it runs: the request
objects of :func:`envspec.lock.pypi.finish` and :func:`envspec.lock.pypi_merge.resolve`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envspec.settings import LockLimits


@dataclass(frozen=True)
class CondaPart:
    """The conda solution a target's PyPI part is resolved on top of: conda-lock's two texts (the
    ``.conda-lock.yml`` named ``lock_name``, the explicit file), the target's virtual packages (their
    YAML), and the input hash the ``<t>.pip.txt`` header records."""

    target: str
    subdir: str
    lock_text: str
    explicit_text: str = "@EXPLICIT\n"
    virtual_packages: str = ""
    input_hash: str = ""
    lock_name: str = "conda-lock.yml"


@dataclass(frozen=True)
class PipRun:
    """How one target's PyPI part runs: ``work`` (a temporary folder is made in it), ``cache`` (uv's
    cache; default: a fresh one, i.e. cold), ``previous`` (the previous conda-lock.yml: an update keeps
    its pins but for ``update``'s packages), ``verified`` (the (URL, sha256) pairs this run checked
    already, for the targets after the first), ``limits`` (uv's time and memory, and the downloads
    that check the pins)."""

    work: Path | None = None
    cache: Path | None = None
    previous: str | None = None
    update: Sequence[str] = ()
    verbose: bool = False
    verified: set[tuple[str, str]] | None = None
    limits: LockLimits = field(default_factory=LockLimits)
