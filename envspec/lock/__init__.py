"""Stage 3 of 8, lock: conda-lock drives a py-rattler conda substitute and uv adds the PyPI part;
lockfile formats are read and written here.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envspec.lock.commit import check_pair as check_pair
    from envspec.lock.conda_lock_job import Outcome as Outcome
    from envspec.lock.conda_lock_process import prestart as prestart
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
    from envspec.lock.jobs import recorded_exclude_newer as recorded_exclude_newer
    from envspec.lock.plan import parse_exclude_newer as parse_exclude_newer
    from envspec.lock.pypi import MIRROR_NAME as PYPI_MIRROR_NAME
    from envspec.lock.pypi import pip_file as pip_file
    from envspec.lock.pypi import pip_index as pip_index
    from envspec.lock.pypi import read_pins as read_pins
    from envspec.lock.run import LockSummary as LockSummary
    from envspec.lock.run import is_fresh as is_fresh
    from envspec.lock.run import lock as lock
    from envspec.lock.stamp import digest as stamp_digest
    from envspec.lock.stamp import forget as stamp_forget
    from envspec.lock.stamp import fresh as stamp_fresh
    from envspec.lock.stamp import record as stamp_record
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "LockMode": "freshness",
            "LockSummary": "run",
            "Outcome": "conda_lock_job",
            "PYPI_MIRROR_NAME": "pypi:MIRROR_NAME",
            "SOLVED_FROM_KEY": "explicit",
            "TEST_CHANNEL": "explicit",
            "check_pair": "commit",
            "diff_document": "diff",
            "ensure_lockfile": "freshness",
            "explicit_entries": "explicit:entries",
            "is_fresh": "run",
            "lock": "run",
            "parse_exclude_newer": "plan",
            "pip_file": "pypi",
            "pip_index": "pypi",
            "prestart": "conda_lock_process",
            "read_conda_lock": "condalock",
            "read_pins": "pypi",
            "read_pip_packages": "condalock",
            "recorded_exclude_newer": "jobs",
            "resolve_base": "diff",
            "stamp_digest": "stamp:digest",
            "stamp_forget": "stamp:forget",
            "stamp_fresh": "stamp:fresh",
            "stamp_record": "stamp:record",
            "summarize_conda_lock": "condalock:summarize",
            "target_diff": "diff",
            "torch_build_label": "condalock",
        },
    )

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
    "prestart",
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
