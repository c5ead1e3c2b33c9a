"""lock/condalock.py pinned down: what read_conda_lock returns field by field, and each refusal
(message, tip, exit code 3)."""

from __future__ import annotations

import pytest

from envspec.errors import ExitCode, SpecError
from envspec.lock.condalock import LockedPackage, build_from_url, read_conda_lock

TIP = "re-create it with `envspec lock`, or restore it from git"
CF = "https://conda.anaconda.org/conda-forge"

LOCK = f"""\
version: 1
metadata: {{}}
package:
- name: python
  version: 3.11.9
  manager: conda
  platform: linux-64
  url: {CF}/linux-64/python-3.11.9-hab00c5b_0_cpython.conda
  hash: {{md5: 0123456789ABCDEF0123456789ABCDEF, sha256: {"AB" * 32}}}
  size: 30000001
- name: tqdm
  version: 4.67.1
  platform: linux-64
  build: pyhd8ed1ab_1
  url: {CF}/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2
  hash: {{md5: "00112233445566778899aabbccddeeff"}}
  size: "12x"
- name: python
  version: 3.11.9
  manager: conda
  platform: osx-arm64
  url: {CF}/osx-arm64/python-3.11.9-h932a869_0_cpython.conda
- name: requests
  version: 2.32.0
  manager: pip
  platform: linux-64
  url: https://files.pythonhosted.org/requests-2.32.0-py3-none-any.whl
- just a string
"""

PYTHON = LockedPackage(
    name="python",
    version="3.11.9",
    build="hab00c5b_0_cpython",
    url=f"{CF}/linux-64/python-3.11.9-hab00c5b_0_cpython.conda",
    platform="linux-64",
    md5="0123456789abcdef0123456789abcdef",
    sha256="ab" * 32,
    size=30000001,
)
TQDM = LockedPackage(
    name="tqdm",
    version="4.67.1",
    build="pyhd8ed1ab_1",  # the recorded build wins over the URL's
    url=f"{CF}/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2",
    platform="linux-64",
    md5="00112233445566778899aabbccddeeff",  # leading zeros kept: every scalar is read as text
    sha256=None,
    size=None,
)


def test_reads_conda_packages_of_a_platform_exactly() -> None:
    assert read_conda_lock(LOCK, "t.conda-lock.yml", "linux-64") == [PYTHON, TQDM]


def test_reads_every_platform_without_a_filter() -> None:
    got = read_conda_lock(LOCK, "t.conda-lock.yml")
    assert [(p.name, p.platform, p.build) for p in got] == [
        ("python", "linux-64", "hab00c5b_0_cpython"),
        ("tqdm", "linux-64", "pyhd8ed1ab_1"),
        ("python", "osx-arm64", "h932a869_0_cpython"),
    ]
    assert got[2].md5 is None and got[2].sha256 is None and got[2].size is None


def test_minimal_entry_defaults() -> None:
    text = "version: 1\npackage:\n- {name: a, version: '1', build: '', hash: [x], url: x/a.zip}\n"
    assert read_conda_lock(text, "s") == [LockedPackage("a", "1", None, "x/a.zip", "", None, None, None)]
    assert read_conda_lock("version: 1\npackage:\n- {name: a, version: '1'}\n", "s")[0].url == ""


def _refusal(text: str) -> SpecError:
    with pytest.raises(SpecError) as err:
        read_conda_lock(text, "lockfiles/t.conda-lock.yml")
    assert err.value.tip == TIP
    assert err.value.exit_code == ExitCode.SPEC_INVALID == 3
    return err.value


def test_invalid_yaml_is_refused_with_the_parser_problem() -> None:
    err = _refusal("version: 1\npackage: [\n")
    assert err.message.startswith("lockfiles/t.conda-lock.yml: not a conda-lock.yml: not valid YAML (")
    assert err.message.endswith(")") and "\n" not in err.message
    assert err.message == (  # the parser's problem, on one line, without its "while parsing" context
        "lockfiles/t.conda-lock.yml: not a conda-lock.yml: not valid YAML (did not find expected node content)"
    )


def test_entries_after_skipped_ones_are_still_read() -> None:
    text = (
        "version: 1\npackage:\n- {name: r, version: '1', manager: pip, platform: linux-64}\n"
        "- {name: a, version: '1', platform: osx-64}\n- {name: b, version: '2', platform: linux-64}\n"
    )
    assert [p.name for p in read_conda_lock(text, "s", "linux-64")] == ["b"]


def test_a_hash_that_is_not_text_is_ignored() -> None:
    text = "version: 1\npackage:\n- {name: a, version: '1', hash: {md5: [x], sha256: ''}}\n"
    assert read_conda_lock(text, "s")[0].md5 is None
    assert read_conda_lock(text, "s")[0].sha256 is None


@pytest.mark.parametrize("text", ["- a\n- b\n", "version: 1\n", "version: 1\npackage: {}\n", "", "just text\n"])
def test_without_a_package_list_is_refused(text: str) -> None:
    assert _refusal(text).message == "lockfiles/t.conda-lock.yml: not a conda-lock.yml: no 'package' list"


@pytest.mark.parametrize(
    ("version", "shown"),
    [("2", "2"), ("'2.0'", "'2.0'"), ("[1]", "['1']"), (None, "None")],
)
def test_another_format_version_is_refused(version: str | None, shown: str) -> None:
    head = "" if version is None else f"version: {version}\n"
    assert _refusal(head + "package: []\n").message == (
        f"lockfiles/t.conda-lock.yml: conda-lock format version {shown}; envspec reads version 1"
    )


@pytest.mark.parametrize(
    "entry", ["{version: '1'}", "{name: a}", "{name: '', version: '1'}", "{name: a, version: [1]}"]
)
def test_a_package_without_name_or_version_is_refused(entry: str) -> None:
    text = f"version: 1\npackage:\n- {{name: ok, version: '1'}}\n- {entry}\n"
    assert _refusal(text).message == "lockfiles/t.conda-lock.yml: package.1: needs a 'name' and a 'version'"


@pytest.mark.parametrize(
    ("url", "build"),
    [
        (f"{CF}/linux-64/python-3.11.9-hab00c5b_0_cpython.conda", "hab00c5b_0_cpython"),
        (f"{CF}/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2#{'0' * 32}", "pyhd8ed1ab_0"),
        (f"{CF}/linux-64/cuda-version-12.9-h4f385c5_3.conda", "h4f385c5_3"),
        (f"{CF}/linux-64/python-3.11.9.conda", None),  # name-version only: no build
        (f"{CF}/linux-64/python.tar.bz2", None),
        ("https://files.pythonhosted.org/tqdm-4.67.1-py3-none-any.whl", None),  # not .conda/.tar.bz2
        ("https://example.invalid/pkg-1-0.tar.gz", None),
        ("", None),
        (f"{CF}/linux-64/a-1-b_0.conda#x#y", "b_0"),  # only the first '#' starts the hash
    ],
)
def test_build_from_url(url: str, build: str | None) -> None:
    assert build_from_url(url) == build
