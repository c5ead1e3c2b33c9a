"""The bundle manifest reader (pure): anything but what `envspec pack` writes is refused (exit 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.errors import ExitCode
from envspec.install.unbundle import BundleInvalid, parse_manifest

SHA = "0" * 64
GOOD = {"path": "conda/a-1-0.conda", "kind": "conda", "size": 3, "sha256": SHA, "url": "https://x/c/noarch/a-1-0.conda"}


def doc(*files: dict[str, object], **top: object) -> bytes:
    return json.dumps(
        {"format": "envspec-bundle/1", "target": "t", "subdir": "linux-64", "files": list(files), **top}
    ).encode()


def test_a_valid_manifest_is_read() -> None:
    target, subdir, members = parse_manifest(
        Path("b.tar"), doc(GOOD, {**GOOD, "path": "models/m/unet/x.bin", "kind": "model"})
    )
    assert (target, subdir) == ("t", "linux-64")
    assert members["conda/a-1-0.conda"].url == GOOD["url"] and members["models/m/unet/x.bin"].kind == "model"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff", "not JSON"),
        (doc(format="envspec-bundle/2"), "not an envspec-bundle/1 manifest"),
        (doc(GOOD, {**GOOD, "path": "conda/A-1-0.conda"}), "twice"),
        (doc({**GOOD, "sha256": "abc"}), "no valid sha256"),
        (doc({**GOOD, "size": -1}), "no valid size"),
        (doc({**GOOD, "size": True}), "no valid size"),
        (doc({**GOOD, "path": "/etc/passwd"}), "absolute path"),
        (doc({**GOOD, "path": "conda/../../x"}), "'..'"),
        (doc({**GOOD, "path": "conda\\x.conda"}), "not a plain relative path"),
        (doc({**GOOD, "path": "models/x.conda"}), "does not belong to a conda file"),
        (doc({**GOOD, "path": "conda/sub/x.conda"}), "does not belong to a conda file"),
        (doc({**GOOD, "kind": "script"}), "no valid path or kind"),
        (doc({**GOOD, "url": 5}), "invalid url"),
        (
            doc({**GOOD, "path": "models/m/a", "kind": "model"}, {**GOOD, "path": "models/m/a/b", "kind": "model"}),
            "both as a file and as a folder",
        ),
        (json.dumps({"format": "envspec-bundle/1"}).encode(), "lacks target"),
    ],
)
def test_a_hostile_manifest_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(BundleInvalid) as info:
        parse_manifest(Path("b.tar"), data)
    assert why in str(info.value) and info.value.exit_code == ExitCode.INTEGRITY


def test_folders_left_by_killed_runs_are_removed(tmp_path: Path) -> None:
    import os

    from envspec.install.bundle import UNPACK_PREFIX, remove_dead_temps

    mine, dead, other = (tmp_path / f"{UNPACK_PREFIX}{os.getpid()}-x", tmp_path / f"{UNPACK_PREFIX}999999999-x",
                         tmp_path / "bundle-notapid")  # fmt: skip
    for folder in (mine, dead, other):
        folder.mkdir()
    remove_dead_temps(tmp_path, UNPACK_PREFIX)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])


def test_the_bundle_holds_exactly_the_locked_packages_and_wheels(tmp_path: Path) -> None:
    from envspec.install.bundle import Member
    from envspec.install.plan import ExplicitLock, LockEntry
    from envspec.install.unbundle import Unpacked, check_against_lock

    pkg = LockEntry(url="https://c/conda-forge/noarch/a-1-0.conda", sha256="1" * 64)
    wheel = "https://files/x-1-py3-none-any.whl"
    members = {
        "conda/a-1-0.conda": Member("conda/a-1-0.conda", "conda", 1, "1" * 64, pkg.url),
        "pypi/x-1-py3-none-any.whl": Member("pypi/x-1-py3-none-any.whl", "pypi", 1, "2" * 64, wheel),
    }
    lock = ExplicitLock("linux-64", (pkg,))

    def check(members: dict[str, Member], wheels: dict[str, str]) -> str:
        try:
            check_against_lock(Path("b.tar"), Unpacked(tmp_path, "t", "linux-64", members), lock, wheels)
        except BundleInvalid as exc:
            return str(exc)
        return "ok"

    assert check(members, {wheel: "2" * 64}) == "ok"
    assert "differs from the pip lockfile" in check(members, {wheel: "3" * 64})
    assert "wheels its pip lockfile does not name" in check(members, {})
    assert "lacks a-1-0.conda" in check({k: v for k, v in members.items() if v.kind == "pypi"}, {wheel: "2" * 64})
    other = Member("conda/a-1-0.conda", "conda", 1, "9" * 64, pkg.url)
    assert "does not match the lockfile's sha256" in check({**members, "conda/a-1-0.conda": other}, {wheel: "2" * 64})
    extra = Member("conda/b-1-0.conda", "conda", 1, "1" * 64, "https://c/conda-forge/noarch/b-1-0.conda")
    assert "packages its lockfile does not name" in check({**members, extra.path: extra}, {wheel: "2" * 64})
