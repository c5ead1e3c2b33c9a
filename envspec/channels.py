"""Channel mirrors: ``--mirror NAME=URL`` and ``ENVSPEC_MIRRORS="NAME=URL,..."`` (pure).

A mirror maps a channel of the spec (``conda-forge``, or its full URL) to another URL: a corporate
mirror, or a ``file:///`` local channel for air-gapped machines (and the tests). Command-line
mirrors win over the environment variable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from envspec.errors import SpecError

ENV_VAR = "ENVSPEC_MIRRORS"
DEFAULT_CHANNEL_ALIAS = "https://conda.anaconda.org"
_SCHEMES = ("http://", "https://", "file://", "s3://", "oci://")


def normalize_url(url: str) -> str:
    """A mirror URL as conda understands it: an absolute local path becomes ``file://``."""
    text = url.strip()
    if not text:
        raise SpecError("empty mirror URL", tip="write --mirror NAME=URL, e.g. conda-forge=file:///srv/conda-forge")
    if text.startswith(_SCHEMES):
        return text.rstrip("/")
    path = Path(text).expanduser()
    if path.is_absolute():
        return path.as_uri()
    raise SpecError(
        f"mirror URL {url!r} is neither a URL (http://, https://, file://) nor an absolute path",
        tip="write --mirror NAME=URL, e.g. conda-forge=https://mirror.example.com/conda-forge",
    )


def parse_mirror(item: str) -> tuple[str, str]:
    """``NAME=URL`` -> ``(NAME, URL)``."""
    name, sep, url = item.partition("=")
    if not sep or not name.strip():
        raise SpecError(
            f"bad mirror {item!r}: expected NAME=URL",
            tip="e.g. --mirror conda-forge=file:///srv/conda-forge or ENVSPEC_MIRRORS=conda-forge=https://...",
        )
    return name.strip().rstrip("/"), normalize_url(url)


def parse_mirrors(cli: Iterable[str] = (), env_value: str | None = None) -> dict[str, str]:
    """Mirrors from ``ENVSPEC_MIRRORS`` (comma-separated), then ``--mirror`` items (which win)."""
    mirrors: dict[str, str] = {}
    if env_value:
        for item in env_value.split(","):
            if item.strip():
                name, url = parse_mirror(item)
                mirrors[name] = url
    for item in cli:
        name, url = parse_mirror(item)
        mirrors[name] = url
    return mirrors


def channel_url(channel: str) -> str:
    """The full URL of a channel name as conda resolves it (``conda-forge`` -> anaconda.org)."""
    if channel.startswith(_SCHEMES):
        return channel.rstrip("/")
    return f"{DEFAULT_CHANNEL_ALIAS}/{channel.strip('/')}"


def apply_mirrors(channels: Iterable[str], mirrors: Mapping[str, str]) -> tuple[str, ...]:
    """The channels a solve uses: each spec channel replaced by its mirror, if it has one.

    A mirror key matches the channel as written in the spec or its full URL.
    """
    by_url = {channel_url(name): url for name, url in mirrors.items()}
    out = []
    for channel in channels:
        if channel in {"nodefaults"}:
            continue
        key = channel.rstrip("/")
        out.append(mirrors.get(key) or by_url.get(channel_url(key)) or key)
    return tuple(out)


def unused_mirrors(channels: Iterable[str], mirrors: Mapping[str, str]) -> list[str]:
    """Mirror names that match no channel (a likely typo, reported as a warning)."""
    urls = {channel_url(c) for c in channels}
    names = {c.rstrip("/") for c in channels}
    return sorted(name for name in mirrors if name not in names and channel_url(name) not in urls)
