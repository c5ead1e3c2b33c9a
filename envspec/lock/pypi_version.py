"""The PyPI resolver's version, cheaply (standard library only: the lock's no-op path reads it).

A pip target's input hash and the no-op stamp include it: another uv may resolve otherwise.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def resolver_version() -> str:
    """``uv X.Y.Z`` from the installed ``uv`` package's dist-info folder name (no metadata scan)."""
    spec = importlib.util.find_spec("uv")
    if spec is None or spec.origin is None:
        return "uv (not installed)"
    try:
        names = [p.name for p in Path(spec.origin).parent.parent.glob("uv-*.dist-info")]
    except OSError:
        names = []
    return f"uv {names[0].removeprefix('uv-').removesuffix('.dist-info')}" if len(names) == 1 else "uv (unknown)"
