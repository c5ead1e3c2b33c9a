"""Step 2 of an install: py-rattler links the fetched packages into a staging folder (paths patched for
the final prefix); conda's ``conda-meta/state`` gets the target's activation variables, and the marker
says envspec made the prefix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from envspec import __version__
from envspec.channels import redact
from envspec.errors import IntegrityError, ToolFailed
from envspec.fsutil import atomic_write_text, current_umask
from envspec.install.archive import ArchiveInvalid, validate_archive
from envspec.install.fetch import SIDECAR_VERSION, Fetched, Throttle, rattler_stamp, sha256_file, sidecar_path
from envspec.install.plan import (
    STATE_FILE,
    LockEntry,
    state_json,
)

Progress = Callable[[str], None]

#: Written into every prefix envspec creates (in staging, so it is there from the first moment).
#: Not ``*.json``: conda, mamba and rattler read every ``conda-meta/*.json`` as a package record.
MARKER_FILE: Final = "conda-meta/envspec.marker"


def _records(fetched: list[Fetched], cache: Path) -> list[Any]:
    from rattler import PackageRecord, RepoDataRecord

    async def build() -> list[Any]:
        out = []
        for item in fetched:
            if item.archive is None:
                index = cache / item.entry.stem / "info" / "index.json"
                pkg = PackageRecord.from_index_json(index, size=item.size, sha256=item.sha256, md5=item.md5)
                out.append(RepoDataRecord(pkg, item.entry.filename, item.url, item.entry.channel))
            else:
                record = await RepoDataRecord.from_package_archive(item.archive)
                record.url = item.archive.as_uri()
                record.channel = item.url.rsplit("/", 2)[0]
                record.md5 = bytes.fromhex(item.md5)
                record.sha256 = bytes.fromhex(item.sha256)
                out.append(record)
        return out

    return asyncio.run(build())


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """Ctrl-C and SIGTERM (whose handler raises KeyboardInterrupt while an install runs) stay
    interrupts while py-rattler runs Python code of ours: a handler that fires there raises inside
    py-rattler, which may swallow the exception and carry on (the install then ran to its end and
    exited 0). Each handler of the main thread is wrapped to note that it fired; a block that ends
    normally after one did raises KeyboardInterrupt. Outside the main thread: as is."""
    fired: list[int] = []
    wrapped: dict[int, Any] = {}

    def wrap(previous: Any) -> Any:
        def handler(signum: int, frame: Any) -> None:
            fired.append(signum)
            previous(signum, frame)

        return handler

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if callable(previous):  # (SIG_DFL / SIG_IGN: nothing raises in Python to be swallowed)
                wrapped[sig] = previous
                signal.signal(sig, wrap(previous))
    try:
        yield
    finally:
        for number, handler in wrapped.items():
            signal.signal(number, handler)
    if fired:
        raise KeyboardInterrupt


def _reporter(total: int, progress: Progress) -> Any:
    throttle = Throttle(progress)

    class Reporter:  # rattler's InstallerReporter protocol, structurally (only the callbacks we use)
        def __init__(self) -> None:
            self.linked = 0
            self.lock = threading.Lock()
            # Ctrl-C / SIGTERM (KeyboardInterrupt) raised while py-rattler runs this callback would be
            # swallowed by it (the install then ran on and exited 0): kept here, re-raised by link()
            self.interrupted = False

        def on_link_complete(self, index: int) -> None:
            try:
                with self.lock:
                    self.linked += 1
                    count = self.linked
                throttle(f"link: {count}/{total} packages", final=count == total)
            except KeyboardInterrupt:
                self.interrupted = True

    return Reporter()


def _drop_extracted(cache: Path, entry: LockEntry) -> None:
    """Remove a package's extracted folder, rattler's stamp and envspec's record from the cache."""
    shutil.rmtree(cache / entry.stem, ignore_errors=True)
    for path in (cache / f"{entry.stem}.lock", sidecar_path(cache, entry)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _drop_cache_tag(prefix: Path) -> None:
    """rattler marks the folders it writes with a ``CACHEDIR.TAG``, the environment too; backup tools
    skip every folder holding one, so an environment must not (unless a package installed it)."""
    tag = prefix / "CACHEDIR.TAG"
    if not tag.is_file():
        return
    for record in (prefix / "conda-meta").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            if "CACHEDIR.TAG" in json.loads(record.read_text(encoding="utf-8")).get("files", []):
                return
    tag.unlink()


def link(fetched: list[Fetched], staging: Path, final_prefix: Path, cache: Path, progress: Progress) -> None:
    """Step 2: link every package into ``staging``; text files are patched for ``final_prefix``.

    Each freshly downloaded archive is validated first (:func:`envspec.install.archive.validate_archive`:
    a readable, complete package whose paths stay inside the prefix); a hash only says the
    archive is the one the lockfile names, not that it is safe to unpack. py-rattler's errors,
    panics included, become one-line errors, and whatever this run extracted into the cache is
    removed again when linking fails.
    """
    from rattler import install as rattler_install

    fresh = [item for item in fetched if item.archive is not None]
    for item in fresh:  # a stale extraction must not win over the archive just verified
        _drop_extracted(cache, item.entry)
    for item in fresh:
        assert item.archive is not None
        try:
            validate_archive(item.archive, item.entry.filename)
        except ArchiveInvalid as exc:
            raise IntegrityError(
                f"{item.entry.filename} from {item.url} matches its lockfile hash but is not a valid package: "
                f"{exc}; nothing was installed",
                tip="the package itself is broken or hostile: re-lock to another build, or report it to the channel",
            ) from None
    try:
        records = _records(fetched, cache)
        reporter = _reporter(len(records), progress)
        with interrupts_kept():
            asyncio.run(
                rattler_install(
                    records,
                    target_prefix=staging,
                    cache_dir=cache,
                    installed_packages=[],
                    execute_link_scripts=False,
                    show_progress=False,
                    reporter=reporter,
                    alternative_target_prefix=final_prefix,
                )
            )
        if reporter.interrupted:  # a signal that arrived inside the reporter's callback
            raise KeyboardInterrupt
    except (KeyboardInterrupt, SystemExit):
        for item in fresh:
            _drop_extracted(cache, item.entry)
        raise
    except BaseException as exc:  # rattler's own exception classes, and pyo3's PanicException (a BaseException)
        for item in fresh:
            _drop_extracted(cache, item.entry)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ToolFailed(f"py-rattler could not link the environment: {detail[:300]}") from None
    _drop_cache_tag(staging)
    for item in fetched:
        # conda-meta records the package's real origin, not the verified copy rattler read, and
        # never a secret in it (an anaconda.org /t/TOKEN/ path, user-info, a query token)
        meta = staging / "conda-meta" / f"{item.entry.stem}.json"
        data = json.loads(meta.read_text(encoding="utf-8"))
        data["url"] = redact(item.url)
        data["channel"] = redact(item.url.rsplit("/", 2)[0])
        atomic_write_text(meta, json.dumps(data, indent=2) + "\n")
        if item.archive is None:
            continue
        sidecar = {
            "version": SIDECAR_VERSION,
            "md5": item.md5,
            "sha256": item.sha256,
            "size": item.size,
            "url": redact(item.url),
            "rattler_stamp": rattler_stamp(cache, item.entry),
            "paths_json_sha256": sha256_file(cache / item.entry.stem / "info" / "paths.json"),
        }
        atomic_write_text(sidecar_path(cache, item.entry), json.dumps(sidecar, indent=2) + "\n")
        with contextlib.suppress(FileNotFoundError):
            item.archive.unlink()


def share_metadata(prefix: Path) -> None:
    """rattler (and atomic writes) leave ``conda-meta/*`` owner-only; conda's are world-readable."""
    if os.name != "posix":
        return
    mode = 0o666 & ~current_umask()
    for path in (prefix / "conda-meta").iterdir():
        if path.is_file():
            path.chmod(mode)


def write_marker(prefix: Path, target: str, source: str) -> None:
    """``conda-meta/envspec.marker``: this prefix was made by envspec, so envspec may replace it."""
    data = {"created_by": "envspec", "envspec_version": __version__, "target": target, "lockfile": source}
    atomic_write_text(prefix / MARKER_FILE, json.dumps(data, indent=2, sort_keys=True) + "\n")


def made_by_envspec(prefix: Path) -> bool:
    try:
        data = json.loads((prefix / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("created_by") == "envspec"


def write_state(prefix: Path, variables: Mapping[str, str]) -> None:
    """conda's ``conda-meta/state`` with the target's activation variables."""
    path = prefix / STATE_FILE
    existing: dict[str, object] | None = None
    with contextlib.suppress(FileNotFoundError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        existing = loaded if isinstance(loaded, dict) else None
    atomic_write_text(path, state_json(existing, variables))
