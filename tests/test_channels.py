"""channels.py: mirror parsing and channel URLs, exact results and error messages (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.channels import (
    ENV_VAR,
    apply_mirrors,
    channel_url,
    normalize_url,
    parse_mirror,
    parse_mirrors,
    unused_mirrors,
)
from envspec.errors import ExitCode, SpecError


def test_env_var_name() -> None:
    assert ENV_VAR == "ENVSPEC_MIRRORS"


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://m.example/cf/", "https://m.example/cf"),
        ("  http://m.example/cf  ", "http://m.example/cf"),
        ("file:///srv/cf//", "file:///srv/cf"),
        ("s3://bucket/cf", "s3://bucket/cf"),
        ("oci://ghcr.io/channel-mirrors/conda-forge", "oci://ghcr.io/channel-mirrors/conda-forge"),
        ("/srv/conda forge", "file:///srv/conda%20forge"),
    ],
)
def test_normalize_url(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


def test_normalize_url_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert normalize_url("~/cf") == (tmp_path / "cf").as_uri()


@pytest.mark.parametrize(
    ("url", "message", "tip"),
    [
        ("", "empty mirror URL", "write --mirror NAME=URL, e.g. conda-forge=file:///srv/conda-forge"),
        ("   ", "empty mirror URL", "write --mirror NAME=URL, e.g. conda-forge=file:///srv/conda-forge"),
        (
            "relative/cf",
            "mirror URL 'relative/cf' is neither a URL (http://, https://, file://) nor an absolute path",
            "write --mirror NAME=URL, e.g. conda-forge=https://mirror.example.com/conda-forge",
        ),
        (
            "ftp://m/cf",
            "mirror URL 'ftp://m/cf' is neither a URL (http://, https://, file://) nor an absolute path",
            "write --mirror NAME=URL, e.g. conda-forge=https://mirror.example.com/conda-forge",
        ),
    ],
)
def test_normalize_url_refusals(url: str, message: str, tip: str) -> None:
    with pytest.raises(SpecError) as err:
        normalize_url(url)
    assert (err.value.message, err.value.tip) == (message, tip)
    assert err.value.exit_code == ExitCode.SPEC_INVALID


def test_parse_mirror() -> None:
    assert parse_mirror(" conda-forge/ =https://m/cf/") == ("conda-forge", "https://m/cf")
    assert parse_mirror("https://conda.anaconda.org/conda-forge/=file:///m") == (
        "https://conda.anaconda.org/conda-forge",
        "file:///m",
    )
    assert parse_mirror("cf=file:///a=b") == ("cf", "file:///a=b")  # only the first '=' splits


@pytest.mark.parametrize("item", ["conda-forge", "=file:///m", "  =file:///m", ""])
def test_parse_mirror_refusals(item: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_mirror(item)
    assert err.value.message == f"bad mirror {item!r}: expected NAME=URL"
    assert (
        err.value.tip == "e.g. --mirror conda-forge=file:///srv/conda-forge or ENVSPEC_MIRRORS=conda-forge=https://..."
    )


def test_parse_mirrors_env_items_and_cli_precedence() -> None:
    assert parse_mirrors() == {}
    assert parse_mirrors([], "") == {}
    assert parse_mirrors([], " a=file:///a , ,b=file:///b,") == {"a": "file:///a", "b": "file:///b"}
    assert parse_mirrors(["a=file:///cli"], "a=file:///env") == {"a": "file:///cli"}


def test_channel_url() -> None:
    assert channel_url("conda-forge") == "https://conda.anaconda.org/conda-forge"
    assert channel_url("/conda-forge/") == "https://conda.anaconda.org/conda-forge"
    assert channel_url("https://m.example/cf/") == "https://m.example/cf"
    assert channel_url("file:///srv/cf") == "file:///srv/cf"


def test_apply_mirrors() -> None:
    mirrors = {"conda-forge": "file:///cf", "https://x.org/bio": "file:///bio"}
    assert apply_mirrors(["conda-forge/", "nodefaults", "https://x.org/bio/", "pytorch"], mirrors) == (
        "file:///cf",
        "file:///bio",
        "pytorch",
    )
    assert apply_mirrors(["https://conda.anaconda.org/conda-forge"], {"conda-forge": "file:///cf"}) == ("file:///cf",)


def test_unused_mirrors_sorted() -> None:
    channels = ["conda-forge", "https://x.org/bio/"]
    mirrors = {"zz": "u", "https://conda.anaconda.org/conda-forge": "u", "https://x.org/bio": "u", "aa": "u"}
    assert unused_mirrors(channels, mirrors) == ["aa", "zz"]
    assert unused_mirrors(["conda-forge/"], {"conda-forge": "u"}) == []


def test_only_slashes_are_stripped() -> None:
    """Trailing '/' goes; a channel or mirror whose name ends in another character keeps it."""
    assert normalize_url("https://m/cfX/") == "https://m/cfX"
    assert parse_mirror("cfX/=https://m/X") == ("cfX", "https://m/X")
    assert channel_url("https://m/chX/") == "https://m/chX"
    assert channel_url("chX") == "https://conda.anaconda.org/chX"
    assert apply_mirrors(["pytorch/", "chX"], {}) == ("pytorch", "chX")


def test_a_mirror_for_the_channel_as_written_wins_over_one_for_its_url() -> None:
    mirrors = {"conda-forge": "file:///by-name", "https://conda.anaconda.org/conda-forge": "file:///by-url"}
    assert apply_mirrors(["conda-forge"], mirrors) == ("file:///by-name",)
    assert apply_mirrors(["https://conda.anaconda.org/conda-forge"], mirrors) == ("file:///by-url",)
