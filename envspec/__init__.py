"""envspec: reproducible Stable Diffusion environments on four platforms from one source."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"


def lazy_surface(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A stage package's ``__getattr__`` and ``__dir__``: each name of ``table`` (``"module"`` or
    ``"module:attr"`` inside ``package``) is imported from its module on first use, so importing the
    stage costs nothing. Only the standard library: the smoke package uses it inside environments."""

    def __getattr__(name: str) -> Any:
        where = table.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = where.partition(":")
        return getattr(importlib.import_module(f"{package}.{module}"), attr or name)

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
