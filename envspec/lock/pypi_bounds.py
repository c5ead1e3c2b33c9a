"""Bounds on the uv child of the PyPI part (:mod:`envspec.lock.pypi_resolve`): memory and output.

What an index serves decides how much uv parses: a wheel whose ``METADATA`` inflates to 100 MiB
made uv take 164-185 MiB resident, one of 300 MiB 548 MiB (uv 0.13.10, 2026-12, the tests' index:
about 1.8 times the METADATA, without end). So uv's data (heap and anonymous mappings, thread
stacks) is capped at ``ENVSPEC_LOCK_MEMORY`` bytes, default 1 GiB, with ``RLIMIT_DATA``, set on
Linux right after the child starts (``prlimit``), long before it reads an index; what uv starts
(a build backend of ``pip_allow_sdist``) inherits the cap. Resolving the shipped spec's PyPI part
against pypi.org takes ~90 MiB resident and needs 128-192 MiB of data on two cores. Not
``RLIMIT_AS``: glibc reserves 64 MiB of address space per malloc arena, ~1 GiB untouched for uv
on two cores and more on larger machines. A uv that runs out fails with one line naming the cap
(exit 6); one capped below what it needs to start can hang instead, until ``ENVSPEC_LOCK_TIMEOUT``.
macOS and Windows get no cap here.

uv's messages are written to a file and read back bounded (:data:`STDERR_MAX`), as is its
``pylock.toml`` (:data:`PYLOCK_MAX`): never an unbounded pipe or read into this process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from envspec.errors import ToolFailed
from envspec.settings import LOCK_MEMORY_ENV as MEMORY_ENV

STDERR_MAX: Final = 4 << 20  # the bytes of uv's messages read back (the rest is cut)
PYLOCK_MAX: Final = 64 << 20  # uv's pylock.toml for hundreds of packages is a few hundred KiB
#: How uv (Rust's allocation-failure handler, or its own messages) says an allocation failed.
_OOM: Final = re.compile(r"memory allocation of \d+ bytes failed|Allocation error|out of memory|Cannot allocate memory")


def limit_memory(pid: int, limit: int) -> bool:
    """Cap the data of process ``pid`` at ``limit`` bytes (Linux's ``prlimit``); whether it was capped."""
    import resource

    prlimit, data = getattr(resource, "prlimit", None), getattr(resource, "RLIMIT_DATA", None)
    if prlimit is None or data is None:  # pragma: no cover - macOS, Windows
        return False
    try:
        prlimit(pid, data, (limit, limit))
    except (OSError, ValueError):  # the child is gone already, or a lower hard limit is in force
        return False
    return True


def out_of_memory(code: int, stderr: str) -> bool:
    """Did a capped uv fail for want of memory? (Rust aborts on a failed allocation: SIGABRT.)"""
    return code < 0 or bool(_OOM.search(stderr))


def out_of_memory_error(limit: int, index_url: str) -> ToolFailed:
    from envspec.channels import redact

    return ToolFailed(
        f"uv ran out of the {limit >> 20} MiB it may use ({MEMORY_ENV}) while resolving the PyPI packages "
        f"from {redact(index_url)}: an index serving oversized metadata?",
        tip=f"check the index (or map it: --mirror pypi=URL); for a resolution that large, raise {MEMORY_ENV} (bytes)",
    )


def run(
    cmd: list[str],
    env: Mapping[str, str],
    err_path: Path,
    timeout: float,
    index_url: str,
    limit: int,
) -> tuple[int, str]:
    """Run uv (``cmd``) with its data capped at ``limit`` bytes, its messages into ``err_path``:
    (exit status, the messages). Raises ToolFailed when it cannot start, runs past ``timeout``
    (killed) or runs out of memory."""
    import subprocess

    try:
        with err_path.open("wb") as err_out:
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_out)
            limited = limit_memory(proc.pid, limit)
            try:
                code = proc.wait(timeout=max(timeout, 0.001))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise ToolFailed(
                    f"uv took longer than {timeout:g} s to resolve the PyPI packages",
                    tip="a slow or unreachable index? try --mirror pypi=URL, or raise ENVSPEC_LOCK_TIMEOUT",
                ) from None
    except OSError as exc:
        raise ToolFailed(f"cannot run uv: {exc}", tip="reinstall envspec (it depends on the `uv` package)") from None
    err = read_stderr(err_path)
    if code != 0 and limited and out_of_memory(code, err):
        raise out_of_memory_error(limit, index_url)
    return code, err


def read_stderr(path: Path) -> str:
    """The first :data:`STDERR_MAX` bytes of uv's messages."""
    from envspec.fsutil import read_regular_text

    try:
        return read_regular_text(path, STDERR_MAX, errors="replace", head=True)
    except OSError:
        return ""


def read_pylock(path: Path) -> str:
    """uv's ``pylock.toml`` ("" when it wrote none); ToolFailed when it is larger than :data:`PYLOCK_MAX`."""
    from envspec.fsutil import NotRegularFile, read_regular_text

    try:
        return read_regular_text(path, PYLOCK_MAX, errors="replace")
    except FileNotFoundError:
        return ""
    except NotRegularFile as exc:
        raise ToolFailed(f"uv's pylock.toml cannot be read: {exc}", tip="report this as an envspec bug") from None
    except OSError:
        return ""
