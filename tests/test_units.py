"""The one byte formatter (progress lines, install and pull summaries, messages)."""

from __future__ import annotations

import pytest

from envspec.units import human_bytes


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2 - 1, "1024.0 KiB"),
        (1024**2, "1.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
        (1024**4 - 1, "1024.0 GiB"),
        (3 * 1024**4, "3.0 TiB"),
        (5000 * 1024**4, "5000.0 TiB"),  # TiB is the largest unit
        (-2048, "-2.0 KiB"),
        (2.5, "2 B"),
    ],
)
def test_sizes_read_as_people_read_them(n: float, text: str) -> None:
    assert human_bytes(n) == text
