"""Stage 3 of 8, lock: conda-lock drives a py-rattler conda substitute and uv adds the PyPI part;
lockfile formats are read and written here.

lockfile formats are read and written here.

lockfile formats are read and written here.

lockfile formats are read and written here.

lockfile formats are read and written here.

lockfile formats are read and written here.

lockfile formats are read and written here.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.lock.commit import check_pair as check_pair
    from envspec.lock.condalock import read_conda_lock as read_conda_lock
    from envspec.lock.condalock import read_pip_packages as read_pip_packages
    from envspec.lock.condalock import summarize as summarize_conda_lock
    from envspec.lock.condalock import torch_build_label as torch_build_label
    from envspec.lock.diff import diff_document as diff_document
    from envspec.lock.diff import resolve_base as resolve_base
    from envspec.lock.diff import target_diff as target_diff
    from envspec.lock.explicit import SOLVED_FROM_KEY as SOLVED_FROM_KEY
    from envspec.lock.explicit import TEST_CHANNEL as TEST_CHANNEL
    from envspec.lock.explicit import entries as explicit_entries
    from envspec.lock.freshness import LockMode as LockMode
    from envspec.lock.freshness import ensure_lockfile as ensure_lockfile
    from envspec.lock.plan import parse_exclude_newer as parse_exclude_newer
    from envspec.lock.pypi import MIRROR_NAME as PYPI_MIRROR_NAME
    from envspec.lock.pypi import pip_file as pip_file
    from envspec.lock.pypi import pip_index as pip_index
    from envspec.lock.pypi import read_pins as read_pins
    from envspec.lock.run import LockSummary as LockSummary
    from envspec.lock.run import Outcome as Outcome
    from envspec.lock.run import is_fresh as is_fresh
    from envspec.lock.run import lock as lock
    from envspec.lock.run import recorded_exclude_newer as recorded_exclude_newer
    from envspec.lock.stamp import digest as stamp_digest
    from envspec.lock.stamp import forget as stamp_forget
    from envspec.lock.stamp import fresh as stamp_fresh
    from envspec.lock.stamp import record as stamp_record

__all__ = [
    "PYPI_MIRROR_NAME",
    "SOLVED_FROM_KEY",
    "TEST_CHANNEL",
    "LockMode",
    "LockSummary",
    "Outcome",
    "check_pair",
    "diff_document",
    "ensure_lockfile",
    "explicit_entries",
    "is_fresh",
    "lock",
    "parse_exclude_newer",
    "pip_file",
    "pip_index",
    "read_conda_lock",
    "read_pins",
    "read_pip_packages",
    "recorded_exclude_newer",
    "resolve_base",
    "stamp_digest",
    "stamp_forget",
    "stamp_fresh",
    "stamp_record",
    "summarize_conda_lock",
    "target_diff",
    "torch_build_label",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "LockMode": ("freshness", "LockMode"),
    "LockSummary": ("run", "LockSummary"),
    "Outcome": ("run", "Outcome"),
    "PYPI_MIRROR_NAME": ("pypi", "MIRROR_NAME"),
    "SOLVED_FROM_KEY": ("explicit", "SOLVED_FROM_KEY"),
    "TEST_CHANNEL": ("explicit", "TEST_CHANNEL"),
    "check_pair": ("commit", "check_pair"),
    "diff_document": ("diff", "diff_document"),
    "ensure_lockfile": ("freshness", "ensure_lockfile"),
    "explicit_entries": ("explicit", "entries"),
    "is_fresh": ("run", "is_fresh"),
    "lock": ("run", "lock"),
    "parse_exclude_newer": ("plan", "parse_exclude_newer"),
    "pip_file": ("pypi", "pip_file"),
    "pip_index": ("pypi", "pip_index"),
    "read_conda_lock": ("condalock", "read_conda_lock"),
    "read_pins": ("pypi", "read_pins"),
    "read_pip_packages": ("condalock", "read_pip_packages"),
    "recorded_exclude_newer": ("run", "recorded_exclude_newer"),
    "resolve_base": ("diff", "resolve_base"),
    "stamp_digest": ("stamp", "digest"),
    "stamp_forget": ("stamp", "forget"),
    "stamp_fresh": ("stamp", "fresh"),
    "stamp_record": ("stamp", "record"),
    "summarize_conda_lock": ("condalock", "summarize"),
    "target_diff": ("diff", "target_diff"),
    "torch_build_label": ("condalock", "torch_build_label"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.lock`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
