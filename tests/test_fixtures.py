"""The test session's own guards: caches in a temp folder."""

from __future__ import annotations

from pathlib import Path

from envspec.install.fetch import default_cache_dir


def test_the_package_cache_is_not_the_users(_caches_in_a_temp_folder: Path) -> None:
    cache = default_cache_dir()
    assert cache.is_relative_to(_caches_in_a_temp_folder)
    assert not cache.is_relative_to(Path.home() / ".cache")
