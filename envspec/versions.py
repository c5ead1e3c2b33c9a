"""Loose version comparison for virtual-package, driver and OS versions (standard library only)."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")


def version_tuple(text: str) -> tuple[int, ...]:
    """ "580.65.06" -> (580, 65, 6); non-numeric parts count as 0."""
    parts = []
    for piece in text.strip().split("."):
        digits = _DIGITS.match(piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)
