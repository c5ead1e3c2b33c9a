"""The lock-commit journal names files inside lockfiles/ only (issue #21, family 1).

A pull request can ship ``lockfiles/.envspec-lock.commit``; ``lock --check`` (run by the relock
workflow) completes a journal it finds. A journal naming ``../``, an absolute path, a drive or a
separator, or anything but envspec's own ``.<final>.envspec-tmp-commit-<pid>`` -> ``<final>``
renames, is refused with one line and nothing is renamed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec.errors import ExitCode
from envspec.lock import commit


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "proj" / "lockfiles"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "proj" / "evil").write_text("attacker")
    return folder, victim


def _journal(folder: Path, renames: object) -> None:
    (folder / commit.JOURNAL_NAME).write_text(json.dumps({"version": commit.JOURNAL_VERSION, "renames": renames}))


@pytest.mark.parametrize(
    "renames",
    [
        [["../evil", "../../victim.txt"]],
        [["../evil", "a.lock"]],
        [[".a.lock.envspec-tmp-commit-1", "../../victim.txt"]],
        [["/etc/passwd", "a.lock"]],
        [[".a.lock.envspec-tmp-commit-1", "C:\\victim.txt"]],
        [[".a.lock.envspec-tmp-commit-1", "sub/a.lock"]],
        [[".b.lock.envspec-tmp-commit-1", "a.lock"]],  # not the temp of its final
        [["x", "a.lock"]],
        [["ABSOLUTE", "ABSOLUTE"]],
    ],
)
def test_a_hostile_journal_is_refused_and_nothing_is_renamed(tmp_path: Path, renames: list[list[str]]) -> None:
    folder, victim = _setup(tmp_path)
    renames = [[x.replace("ABSOLUTE", str(victim)) for x in pair] for pair in renames]
    (folder / "a.lock").write_text("old")
    (folder / ".a.lock.envspec-tmp-commit-1").write_text("new")
    _journal(folder, renames)
    before = {p: p.read_text() for p in [*folder.iterdir(), victim, tmp_path / "proj" / "evil"]}
    with pytest.raises(commit.HostileJournal) as info:
        commit.recover(folder)
    assert info.value.exit_code == ExitCode.SPEC_INVALID
    assert "\n" not in info.value.one_line() and "nothing was renamed" in info.value.message
    assert {p: p.read_text() for p in before} == before


def test_envspecs_own_journal_still_completes(tmp_path: Path) -> None:
    folder, _ = _setup(tmp_path)
    (folder / "a.lock").write_text("old")
    (folder / ".a.lock.envspec-tmp-commit-42").write_text("new")
    _journal(folder, [[".a.lock.envspec-tmp-commit-42", "a.lock"]])
    assert commit.recover(folder) == ["a.lock"]
    assert (folder / "a.lock").read_text() == "new" and not commit.pending(folder)


def test_a_symlinked_temp_is_refused(tmp_path: Path) -> None:
    folder, victim = _setup(tmp_path)
    (folder / ".a.lock.envspec-tmp-commit-1").symlink_to(victim)
    _journal(folder, [[".a.lock.envspec-tmp-commit-1", "a.lock"]])
    with pytest.raises(commit.HostileJournal, match="not a regular file"):
        commit.recover(folder)
    assert not (folder / "a.lock").exists() and victim.read_text() == "precious"


def test_the_journal_is_git_ignored(repo: Path) -> None:
    assert "lockfiles/.envspec-lock.commit" in (repo / ".gitignore").read_text().splitlines()


_names = st.one_of(
    st.sampled_from(["..", "../x", "/abs", "C:x", "a/b", "a\\b", "", ".", "a.lock", ".a.lock.envspec-tmp-commit-1"]),
    st.text(max_size=30),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(_names, _names), max_size=4), junk=st.none() | st.integers() | st.text(max_size=5))
def test_whatever_a_journal_says_nothing_outside_the_folder_changes(
    tmp_path_factory: pytest.TempPathFactory, pairs: list[tuple[str, str]], junk: object
) -> None:
    tmp_path = tmp_path_factory.mktemp("j")
    folder, victim = _setup(tmp_path)
    outside = {p: p.read_text() for p in [victim, tmp_path / "proj" / "evil"]}
    renames: object = [list(p) for p in pairs] if junk is None else [*map(list, pairs), junk]
    _journal(folder, renames)
    try:
        done = commit.recover(folder)
    except commit.HostileJournal:
        done = []
    assert all("/" not in name and name not in {".", ".."} for name in done)
    assert {p: p.read_text() for p in outside} == outside
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "victim.txt"]
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["evil", "lockfiles"]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    )
)
def test_the_journal_parser_never_crashes(record: object) -> None:
    try:
        names = commit.journal_renames(record)
    except (ValueError, TypeError):
        return
    for tmp, final in names:
        assert "/" not in tmp + final and "\\" not in tmp + final and final != ".."
