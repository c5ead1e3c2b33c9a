"""`envspec diff` (the relock pull request's body) on lockfiles that are not what they should be."""

from __future__ import annotations

import pytest

from envspec.errors import ExitCode, SpecError
from envspec.lock.diff import packages_of


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("package: [[\n", r"not a conda-lock\.yml: "),
        ("- 1\n", r"no 'package' list"),
        ("package: 3\n", r"no 'package' list"),
        ("version: 1\npackage:\n  - {name: tqdm}\n", r"package\.0: needs a 'name' and a 'version'"),
        ("version: 1\npackage:\n  - {name: [x], version: '1'}\n", r"package\.0: needs a 'name' and a 'version'"),
        ("version: 2\npackage: []\n", r"conda-lock format version 2; envspec reads version 1"),
    ],
)
def test_a_broken_lockfile_is_a_one_line_spec_error(text: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=r"^lockfiles/x\.conda-lock\.yml: (.*: )?" + pattern) as info:
        packages_of(text, "lockfiles/x.conda-lock.yml")
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    assert "\n" not in info.value.one_line()


def test_conda_packages_with_version_and_build() -> None:
    text = (
        "version: 1\npackage:\n"
        "  - {name: tqdm, version: 4.67.1, manager: conda, url: 'https://x/noarch/tqdm-4.67.1-pyhd8ed1ab_0.conda'}\n"
        "  - {name: numpy, version: 2.0, manager: conda, url: 'https://x/linux-64/numpy-2.0-py312_1.tar.bz2'}\n"
        "  - {name: foo, version: '1', manager: pip, url: 'https://pypi/foo.whl'}\n"
    )
    assert packages_of(text) == {"tqdm": ("4.67.1", "pyhd8ed1ab_0"), "numpy": ("2.0", "py312_1")}
    assert packages_of(None) == {} and packages_of("") == {}
