"""Step 1 of an install: every package of the lockfile a verified cache hit or downloaded while hashed.

A package's extracted folder in the cache counts as verified only when envspec checked the archive it
came from against a lockfile (``<cache>/.envspec/<stem>.json``, with rattler's own cache stamp). A
mismatch aborts with :class:`IntegrityError` naming every bad package, before anything is linked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from envspec.channels import auth_headers, redact, split_credentials
from envspec.download import Cancelled, Downloader, Limits, Stalled, TooLarge, safe_name
from envspec.errors import ChannelUnreachable, IntegrityError, ToolFailed
from envspec.install.plan import (
    ExplicitLock,
    LockEntry,
)
from envspec.settings import MAX_PACKAGE_BYTES_ENV as MAX_BYTES_ENV
from envspec.settings import STALL_TIMEOUT_ENV as STALL_ENV
from envspec.settings import FetchLimits
from envspec.units import human_bytes

Progress = Callable[[str], None]


SIDECAR_DIR: Final = ".envspec"
DOWNLOAD_DIR: Final = ".envspec/downloads"
SIDECAR_VERSION: Final = 1
FETCH_JOBS: Final = 8
CHUNK: Final = 1 << 20
PROGRESS_INTERVAL_S: Final = 0.5

_DISK_FULL: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_T = TypeVar("_T")
_R = TypeVar("_R")


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/envspec/pkgs``, else ``~/.cache/envspec/pkgs`` (``$ENVSPEC_PKGS_DIR`` wins
    over both: the command layer passes it as the cache, ``Settings.pkgs_dir``)."""
    env = os.environ if environ is None else environ
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "envspec" / "pkgs"


@dataclass(frozen=True)
class Fetched:
    """One package after step 1: verified, and where rattler should take it from."""

    entry: LockEntry
    url: str  # the URL recorded in conda-meta (mirror applied)
    md5: str
    sha256: str
    size: int
    archive: Path | None  # a freshly downloaded, verified archive; None for a cache hit


class Throttle:
    """Progress lines at most every PROGRESS_INTERVAL_S, plus the last one."""

    def __init__(self, progress: Progress, interval: float = PROGRESS_INTERVAL_S) -> None:
        self.progress = progress
        self.interval = interval
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, message: str, *, final: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if final or now - self.last >= self.interval:
                self.last = now
                self.progress(message)


def sidecar_path(cache: Path, entry: LockEntry) -> Path:
    return cache / SIDECAR_DIR / f"{entry.stem}.json"


def rattler_stamp(cache: Path, entry: LockEntry) -> str | None:
    """rattler's own lock/stamp file of the extracted package (changes when it re-extracts)."""
    try:
        return (cache / f"{entry.stem}.lock").read_bytes().hex()
    except FileNotFoundError:
        return None


def cached_hashes(cache: Path, entry: LockEntry) -> dict[str, Any] | None:
    """The verified hashes of the extracted package in the cache, if it matches ``entry``."""
    try:
        data = json.loads(sidecar_path(cache, entry).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != SIDECAR_VERSION:
        return None
    if any(data.get(kind) != value for kind, value in entry.hashes.items()):
        return None
    stamp = rattler_stamp(cache, entry)
    if stamp is None or data.get("rattler_stamp") != stamp:
        return None
    if not (cache / entry.stem / "info" / "index.json").is_file():
        return None
    return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def modified_files(cache: Path, entry: LockEntry, hashes: Mapping[str, Any]) -> list[str]:
    """Files of an extracted package that differ from its ``info/paths.json`` (``--verify-cache``).

    ``paths.json`` itself is checked against the hash recorded when the package was extracted
    from its verified archive. Cached files are hardlinked into environments, so an edit inside
    an environment edits the cache too; this finds it.
    """
    root = cache / entry.stem
    paths_json = root / "info" / "paths.json"
    try:
        if sha256_file(paths_json) != hashes.get("paths_json_sha256"):
            return ["info/paths.json"]
        listing = json.loads(paths_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ["info/paths.json"]
    bad = []
    for item in listing.get("paths", []):
        if item.get("path_type", "hardlink") != "hardlink" or "sha256" not in item:
            continue
        path = root / item["_path"]
        try:
            if path.stat().st_size != item.get("size_in_bytes", -1) or sha256_file(path) != item["sha256"]:
                bad.append(item["_path"])
        except OSError:
            bad.append(item["_path"])
    return bad


def _download(
    downloader: Downloader,
    url: str,
    dest_dir: Path,
    filename: str,
    on_bytes: Callable[[int], None],
    *,
    limit: int,
    cancel: threading.Event | None = None,
) -> tuple[Path, str, str, int]:
    """Stream ``url`` into ``dest_dir`` while hashing it (:mod:`envspec.download`: bounded in size,
    time, retries and resumes; credentials to their own origin only); returns (path, md5, sha256, size).

    Credentials never travel in the URL (http.client would take user:pw@host for the host): the
    mirror's are sent as an Authorization header, see envspec.channels.auth_headers.
    """
    clean, _ = split_credentials(url)
    name = safe_name(filename)
    # The final name is made unique by a hash prefix only after verification; the downloader's
    # own temp file and rename keep a partial file out of sight.
    got = downloader.fetch(clean, dest_dir, name, on_bytes=on_bytes, max_bytes=limit, cancel=cancel)
    final = dest_dir / f"{got.sha256[:16]}-{name}"
    os.replace(got.path, final)
    return final, got.md5, got.sha256, got.size


def run_workers(items: Iterable[_T], work: Callable[[_T], _R], jobs: int, cancel: threading.Event) -> list[_R]:
    """``work(item)`` for every item on up to ``jobs`` daemon threads; results in completion order.

    The first exception sets ``cancel`` (workers check it per chunk) and is raised at once, and so
    is an interrupt of the calling thread: it never waits for a worker stuck in a read, and
    daemon threads do not hold up the process's exit.
    """
    todo: queue.SimpleQueue[_T] = queue.SimpleQueue()
    count = 0
    for item in items:
        todo.put(item)
        count += 1
    done: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def worker() -> None:
        while not cancel.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((True, work(item)))
            except BaseException as exc:
                done.put((False, exc))
                return

    results: list[_R] = []
    try:
        for n in range(max(1, min(jobs, count))):
            threading.Thread(target=worker, name=f"envspec-fetch-{n}", daemon=True).start()
        while len(results) < count:
            try:
                ok, value = done.get(timeout=0.2)
            except queue.Empty:
                continue
            if not ok:
                raise value
            results.append(value)
    except BaseException:
        cancel.set()
        raise
    return results


def mismatch(item: Fetched) -> tuple[str, str, str] | None:
    """(hash kind, actual, expected) of the first hash of ``item`` that differs from the lockfile."""
    actual = {"md5": item.md5, "sha256": item.sha256}
    for kind, expected in item.entry.hashes.items():
        if actual[kind] != expected:
            return kind, actual[kind], expected
    return None


def fetch_all(
    lock: ExplicitLock,
    urls: tuple[str, ...],
    cache: Path,
    progress: Progress,
    *,
    jobs: int = FETCH_JOBS,
    verify_cache: bool = False,
    limits: FetchLimits | None = None,
) -> list[Fetched]:
    """Step 1. Returns one verified :class:`Fetched` per package, in lockfile order.

    With ``verify_cache`` every file of every cached package is re-hashed too; a modified one
    sends its package back to download and verification (the cache is repaired, not trusted).
    ``limits``: the stall timeout, and the cap for a package whose size the lockfile does not record
    (None: the defaults).
    """
    downloads = cache / DOWNLOAD_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    results: dict[int, Fetched] = {}
    todo: list[tuple[int, LockEntry, str]] = []
    hits: list[tuple[int, LockEntry, str, dict[str, Any]]] = []
    for i, (entry, url) in enumerate(zip(lock.entries, urls, strict=True)):
        hit = cached_hashes(cache, entry)
        if hit is not None:
            hits.append((i, entry, url, hit))
        else:
            todo.append((i, entry, url))
    if verify_cache and hits:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            changes = list(pool.map(lambda h: modified_files(cache, h[1], h[3]), hits))
        for (i, entry, url, _), changed in zip(hits, changes, strict=True):
            if changed:
                progress(f"fetch: cached {entry.stem} was modified ({changed[0]}); downloading it again")
                todo.append((i, entry, url))
        hits = [h for h, changed in zip(hits, changes, strict=True) if not changed]
    for i, entry, url, hit in hits:
        results[i] = Fetched(entry, url, hit["md5"], hit["sha256"], int(hit["size"]), archive=None)
    progress(f"fetch: {len(results)} of {len(lock.entries)} packages verified in the cache, {len(todo)} to download")
    if not todo:
        return [results[i] for i in range(len(lock.entries))]

    throttle = Throttle(progress)
    state = {"bytes": 0, "done": 0}
    state_lock = threading.Lock()
    limits = limits or FetchLimits()
    stall, cap = limits.stall_s, limits.max_package_bytes
    cancel = threading.Event()

    def on_bytes(n: int) -> None:
        with state_lock:
            state["bytes"] += n
        throttle(f"fetch: {state['done']}/{len(todo)} downloaded, {human_bytes(state['bytes'])}")

    downloader = Downloader(
        Limits(max_bytes=cap, stall_s=stall, retries=limits.retries), headers_for=lambda u: auth_headers(u)[1]
    )

    def one(item: tuple[int, LockEntry, str]) -> tuple[int, Fetched]:
        i, entry, url = item
        limit = entry.size if entry.size is not None else cap
        try:
            path, md5, sha, size = _download(
                downloader, url, downloads, entry.filename, on_bytes, limit=limit, cancel=cancel
            )
        except ValueError as exc:  # a file name that is not one plain name in the download folder
            raise IntegrityError(
                f"{redact(url)}: {exc}; nothing was downloaded",
                tip="the lockfile names a file outside its folder: restore it from git or re-lock",
            ) from None
        except Cancelled:
            raise
        except Stalled as exc:
            raise ChannelUnreachable(
                f"download of {entry.filename} from {url} stalled ({exc}); stopped",
                tip=f"the server or network hangs or crawls: retry, use --mirror, or raise {STALL_ENV} "
                f"(now {stall:g} s)",
            ) from None
        except TooLarge as exc:
            where = (
                f"the {entry.size} bytes the lockfile records"
                if entry.size is not None
                else f"the {cap} byte cap for packages of unknown size ({MAX_BYTES_ENV})"
            )
            raise IntegrityError(
                f"{entry.filename} from {url} is larger than {where} ({exc}); stopped, nothing was installed",
                tip="the mirror serves something other than the locked package; fix the source or re-lock",
            ) from None
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise ToolFailed(
                    f"disk full: cannot write {entry.filename} into {downloads} ({exc.strerror})",
                    tip="free some space, or point --cache-dir / ENVSPEC_PKGS_DIR at a larger disk",
                ) from None
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                raise ChannelUnreachable(
                    f"download of {entry.filename} from {url} stalled (no answer for {stall:g} s); stopped",
                    tip=f"retry, use --mirror, or raise {STALL_ENV}",
                ) from None
            reason = getattr(exc, "reason", None) or exc
            raise ChannelUnreachable(
                f"cannot download {entry.filename} from {url}: {reason}",
                tip="check the network or the URL, or map the channel to a reachable mirror: "
                "--mirror conda-forge=URL (file:/// works)",
            ) from None
        with state_lock:
            state["done"] += 1
        throttle(f"fetch: {state['done']}/{len(todo)} downloaded, {human_bytes(state['bytes'])}")
        return i, Fetched(entry, url, md5, sha, size, archive=path)

    # The first failure (or an interrupt) cancels the rest, without waiting for a stuck download.
    try:
        fetched = sorted(run_workers(todo, one, jobs, cancel), key=lambda pair: pair[0])
    finally:
        downloader.close()
    throttle(f"fetch: {len(todo)}/{len(todo)} downloaded, {human_bytes(state['bytes'])}", final=True)

    bad: list[Fetched] = []
    for i, item in fetched:
        if mismatch(item) is not None:
            bad.append(item)
            if item.archive is not None:
                with contextlib.suppress(FileNotFoundError):
                    item.archive.unlink()
        else:
            results[i] = item
    if bad:
        first = bad[0]
        kind, actual, expected = mismatch(first) or ("", "", "")
        names = ", ".join(b.entry.filename for b in bad)
        raise IntegrityError(
            f"{len(bad)} package(s) do not match the lockfile, nothing was installed: {names} "
            f"({first.entry.filename} from {first.url}: {kind} {actual}, lockfile says {expected})",
            tip="the mirror or download was tampered with or corrupted; fix the source, "
            "or re-lock if the lockfile is the stale side",
        )
    return [results[i] for i in range(len(lock.entries))]
