"""Committing lockfiles all-or-nothing, and telling a consistent pair from a torn one.

A target has two lockfiles (``<t>.conda-lock.yml`` and ``<t>.lock``) and a run may replace several
targets: one ``os.replace`` per file cannot make that atomic. :func:`commit` makes it so with a
journal, the way a database does:

1. every new file is written to a temp name beside its final one and fsynced;
2. a journal (``lockfiles/.envspec-lock.commit``, JSON: the ``temp -> final`` renames) is written
   atomically and the folder fsynced: **from here on the run is committed**;
3. the renames are done, the folder fsynced, the journal deleted.

A kill before 2 leaves the old files (and temps that the next run deletes); a kill after 2 leaves
a journal that the next ``envspec lock`` (or ``lock --check``) finds and completes
(:func:`recover`: every temp still present is renamed). The journal is data someone else may
ship (a pull request): it may only name envspec's own ``.<final>.envspec-tmp-commit-<pid>`` ->
``<final>`` renames of plain file names in its folder, anything else is refused and nothing renamed
(:func:`journal_renames`); it is git-ignored. So after a kill at any instant the lockfiles
are either all old or, once recovered, all new.

:func:`check_pair` detects a torn pair however it came about (an older envspec, a hand edit, a
``git checkout`` of one file): both files must carry the same input hash and list the same
packages (URL and md5). ``envspec install`` and ``lock --check`` refuse a pair that does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.errors import SpecError
from envspec.fsutil import current_umask
from envspec.lock import explicit

if TYPE_CHECKING:
    from envspec.lock.condalock import LockedPackage

JOURNAL_NAME = ".envspec-lock.commit"
JOURNAL_VERSION = 1
TMP_MARK = ".envspec-tmp-commit"
CONDA_LOCK_HASH_KEY = "envspec_input_hash"
META_HASH_RE = re.compile(rf"^\s*{CONDA_LOCK_HASH_KEY}:\s*['\"]?(sha256:[0-9a-f]{{64}})['\"]?\s*$", re.MULTILINE)
# Tests only: "STEP:MARKER" makes commit() write MARKER and sleep (bounded) at STEP, so a test can
# SIGKILL it there. STEP is "staged", "journal", "rename-<n>" (after the n-th rename) or "renamed".
# Read here, not in envspec.settings: the kill tests set it for an `envspec lock` they run as a child
# process (an allowed read: tests/test_environ_reads.py).
PAUSE_ENV = "ENVSPEC_TEST_COMMIT_PAUSE"
_PAUSE_MAX_S = 60.0


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    _write_all_synced([(path, data, mode)])


def _write_all_synced(files: Sequence[tuple[Path, bytes, int]]) -> None:
    """Write each ``(path, data, mode)``, then fsync them all at once, one thread each: a file system
    that batches concurrent fsyncs (ext4's journal) flushes once for all of them. (On a loaded disk
    eleven fsyncs one after the other cost 50-100 ms, together 5-15 ms.) Returns when all are durable."""
    import threading

    fds: list[int] = []
    failed: list[OSError] = []

    def sync(fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            failed.append(exc)

    try:
        for path, data, mode in files:
            fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
            with os.fdopen(fds[-1], "wb", closefd=False) as handle:
                handle.write(data)
        threads = [threading.Thread(target=sync, args=(fd,)) for fd in fds[1:]]
        for thread in threads:
            thread.start()
        if fds:
            sync(fds[0])
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]
    finally:
        for fd in fds:
            os.close(fd)
    for path, _, mode in files:
        path.chmod(mode)  # O_CREAT's mode is masked by the umask, and an existing temp keeps its own


def _pause(step: str) -> None:
    value = os.environ.get(PAUSE_ENV)
    if not value:
        return
    wanted, _, marker = value.partition(":")
    if wanted != step or not marker:
        return
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + _PAUSE_MAX_S
    while time.monotonic() < deadline:  # waits for the test's SIGKILL; bounded if it never comes
        time.sleep(0.05)


def journal_path(folder: Path) -> Path:
    return folder / JOURNAL_NAME


def commit(folder: Path, files: Sequence[tuple[Path, str]]) -> None:
    """Replace every ``(path, text)`` of ``files`` (all under ``folder``), all or nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        writes: list[tuple[Path, bytes, int]] = []
        for final, text in files:
            try:
                mode = final.stat().st_mode & 0o7777
            except FileNotFoundError:
                mode = 0o666 & ~current_umask()
            tmp = final.with_name(f".{final.name}{TMP_MARK}-{os.getpid()}")
            staged.append((tmp, final))
            writes.append((tmp, text.encode("utf-8"), mode))
        _write_all_synced(writes)  # every temp durable before the journal names it
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    _pause("staged")
    journal = journal_path(folder)
    record = {
        "version": JOURNAL_VERSION,
        "renames": [[os.path.relpath(tmp, folder), os.path.relpath(final, folder)] for tmp, final in staged],
    }
    journal_tmp = folder / f".{JOURNAL_NAME}{TMP_MARK}-{os.getpid()}"
    _write_synced(journal_tmp, (json.dumps(record, indent=1) + "\n").encode("utf-8"), 0o644)
    os.replace(journal_tmp, journal)
    _fsync_dir(folder)
    _pause("journal")
    _apply(folder, staged)


def _apply(folder: Path, renames: Sequence[tuple[Path, Path]]) -> None:
    for n, (tmp, final) in enumerate(renames, 1):
        if tmp.exists():  # absent: this rename was done before an interruption
            os.replace(tmp, final)
        _pause(f"rename-{n}")
    _fsync_dir(folder)
    _pause("renamed")
    journal_path(folder).unlink(missing_ok=True)
    _fsync_dir(folder)


def pending(folder: Path) -> bool:
    """Is there a commit an interrupted run left to complete?"""
    return journal_path(folder).exists()


class HostileJournal(SpecError):
    """A journal naming a file outside its folder, or not one of envspec's temp -> final renames."""


#: What a journal may name: a plain file name in its folder (no separator, no ``..``, no drive).
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}$")
_TMP_NAME = re.compile(rf"^\.(?P<final>.+){re.escape(TMP_MARK)}-[0-9]{{1,10}}$")


def journal_renames(record: object) -> list[tuple[str, str]]:
    """The ``(temp, final)`` names of a parsed journal; ValueError unless every entry is a plain
    file name inside the journal's folder and each temp is the temp name of its final (pure).

    Only what :func:`commit` itself writes passes: ``.<final>.envspec-tmp-commit-<pid>`` -> ``<final>``.
    """
    if not isinstance(record, dict) or record.get("version") != JOURNAL_VERSION:
        raise TypeError("not an envspec journal")
    entries = record.get("renames")
    if not isinstance(entries, list):
        raise TypeError("no renames")
    out: list[tuple[str, str]] = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise TypeError("a rename is not [temp, final]")
        tmp, final = entry
        m = _TMP_NAME.match(tmp)
        if not (_PLAIN_NAME.match(final) and m and m["final"] == final) or ".." in final:
            raise ValueError(f"{tmp[:80]!r} -> {final[:80]!r}")
        out.append((tmp, final))
    return out


def recover(folder: Path) -> list[str]:
    """Complete the commit a killed run left in ``folder`` (the caller holds the run lock).

    Returns the names of the files it put in place (empty: no journal, or nothing left to do).
    A journal naming anything but envspec's own temp -> final renames inside ``folder`` (``../``,
    an absolute path, a drive, a separator: a pull request can ship one) is refused
    (:class:`HostileJournal`) and nothing is renamed.
    """
    journal = journal_path(folder)
    try:
        if journal.is_symlink() or not journal.is_file():
            raise TypeError("not a regular file")
        with journal.open("rb") as handle:
            data = handle.read(1 << 20)
        names = journal_renames(json.loads(data.decode("utf-8")))
    except FileNotFoundError:
        return []
    except ValueError as exc:
        if isinstance(exc, UnicodeDecodeError) or type(exc) is json.JSONDecodeError:
            journal.unlink(missing_ok=True)
            return []
        rel = f"{folder.name}/{JOURNAL_NAME}"
        raise HostileJournal(
            f"{rel} names a file that is not an envspec lockfile temp in {folder.name}/ ({exc}); "
            "refusing it, nothing was renamed",
            tip=f"delete {rel} (envspec writes it only while committing lockfiles), then rerun",
        ) from None
    except (OSError, TypeError, RecursionError):
        # The journal is written atomically, so this is no torn journal but a foreign file: the
        # pair check below still refuses any torn pair; drop it so the next solve replaces all.
        journal.unlink(missing_ok=True)
        return []
    renames = [(folder / tmp, folder / final) for tmp, final in names]
    for tmp, _ in renames:
        if tmp.is_symlink() or (tmp.exists() and not tmp.is_file()):
            rel = f"{folder.name}/{tmp.name}"
            raise HostileJournal(
                f"{rel} (named by {folder.name}/{JOURNAL_NAME}) is not a regular file; "
                "refusing it, nothing was renamed",
                tip=f"delete {folder.name}/{JOURNAL_NAME} and {rel}, then rerun",
            )
    done = [final.name for tmp, final in renames if tmp.exists()]
    _apply(folder, renames)
    return done


def staged_temps(folder: Path) -> list[Path]:
    """Temp files of commits that never reached their journal (safe to delete without one)."""
    return sorted(p for p in folder.glob(f".*{TMP_MARK}-*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# Is a pair of lockfiles from one run?
# ---------------------------------------------------------------------------------------------


class TornLockfiles(SpecError):
    """The two lockfiles of a target come from different ``envspec lock`` runs."""


def conda_lock_hash(conda_lock_text: str) -> str | None:
    m = META_HASH_RE.search(conda_lock_text)
    return m.group(1) if m else None


def pair_problem(
    explicit_text: str,
    conda_lock_text: str,
    *,
    read: tuple[Sequence[explicit.ExplicitEntry], Sequence[LockedPackage]] | None = None,
) -> str | None:
    """Why the explicit file and the conda-lock file are not one pair, or None when they are.
    ``read``: the two texts' :func:`explicit.entries` and :func:`read_conda_lock`, when the caller
    has them already."""
    from envspec.lock.condalock import read_conda_lock

    a = explicit.header_fields(explicit_text).get(explicit.HASH_KEY)
    b = conda_lock_hash(conda_lock_text)
    if a != b:
        return f"input hash {a or 'missing'} vs {b or 'missing'}"
    try:
        ours, every = read or (explicit.entries(explicit_text), read_conda_lock(conda_lock_text, "conda-lock file"))
    except (ValueError, SpecError) as exc:
        return f"unreadable ({exc})"
    theirs = {p.url: p.md5 for p in every if not p.name.startswith("__")}
    urls = {e.url for e in ours}
    if urls != set(theirs):
        differ = sorted(urls ^ set(theirs))
        return f"{len(differ)} package URL(s) differ, e.g. {differ[0].rsplit('/', 1)[-1]}"
    for e in ours:
        if len(e.hash) == 32 and theirs[e.url] and theirs[e.url] != e.hash:
            return f"the md5 of {e.url.rsplit('/', 1)[-1]} differs"
    return None


def check_pair(explicit_text: str, conda_lock_text: str, *, explicit_source: str, conda_lock_source: str) -> None:
    """Raise :class:`TornLockfiles` unless the two texts are one ``envspec lock`` run's pair."""
    problem = pair_problem(explicit_text, conda_lock_text)
    if problem is not None:
        target = explicit.header_fields(explicit_text).get(explicit.TARGET_KEY)
        raise TornLockfiles(
            f"{explicit_source} and {conda_lock_source} are not from the same `envspec lock` run ({problem}); "
            "an interrupted lock or a partial checkout?",
            tip=(f"run `envspec lock --target {target}`" if target else "run `envspec lock`")
            + " (it completes an interrupted commit or solves again), or restore both files from git",
        )


def check_pair_files(explicit_file: Path, conda_lock_file: Path, *, root: Path | None = None) -> None:
    """:func:`check_pair` on files; a missing conda-lock file is no pair to check."""

    def rel(path: Path) -> str:
        with contextlib.suppress(ValueError):
            if root is not None:
                return path.absolute().relative_to(root.absolute()).as_posix()
        return str(path)

    from envspec.fsutil import read_regular_text

    try:
        other = read_regular_text(conda_lock_file, errors="replace")
    except FileNotFoundError:
        return
    check_pair(
        read_regular_text(explicit_file, errors="replace"),
        other,
        explicit_source=rel(explicit_file),
        conda_lock_source=rel(conda_lock_file),
    )
