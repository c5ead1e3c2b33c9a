"""Atomic file writes for the smoke test (it may import only the standard library here)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temp file beside ``path``, moved over it with ``os.replace`` on success.

    Readers see the old file or the new one, never a part. The file gets the mode a plain
    ``open(path, "wb")`` would give it, not mkstemp's owner-only 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = os.umask(0)
    os.umask(mask)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if sys.platform != "win32":  # no fchmod on Windows before 3.13 (and no POSIX mode to give)
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)
