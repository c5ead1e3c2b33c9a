"""Create an environment from an explicit lockfile: no solve, every package hash-checked first.

Steps (each takes the previous result):

1. **fetch**: every package of the lockfile is either a *verified cache hit* (its extracted folder
   in the package cache was made from an archive whose md5/sha256 envspec checked against a
   lockfile, recorded in ``<cache>/.envspec/<stem>.json`` together with rattler's own cache stamp)
   or is downloaded (``file://`` copied, ``http(s)://`` fetched; ``--mirror`` applied) while being
   hashed. A mismatch aborts with :class:`IntegrityError` naming every bad package, before
   anything is linked.
2. **link**: py-rattler links the packages into a *staging* folder beside the prefix (paths in
   files are patched for the final prefix), and conda's ``conda-meta/state`` gets the target's
   activation variables.
3. **swap**: the staging folder is renamed to the prefix (an existing environment is moved aside
   first and deleted afterwards). A failure at any step removes the staging folder: a new prefix
   never appears, an existing one is left as it was.

py-rattler can crash at interpreter exit after its work: callers run this in the ``envspec`` CLI
(which leaves with ``os._exit``) or in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from envspec import __version__
from envspec.channels import auth_headers, redact, split_credentials
from envspec.download import Cancelled, Downloader, Limits, Stalled, TooLarge, env_number, safe_name
from envspec.errors import ChannelUnreachable, EnvspecError, ExitCode, IntegrityError, SpecError, ToolFailed
from envspec.fsutil import atomic_write_bytes, atomic_write_text, current_umask, run_lock
from envspec.install.archive import ArchiveInvalid, validate_archive
from envspec.install.plan import (
    STATE_FILE,
    ExplicitLock,
    InstallPlan,
    LockEntry,
    state_json,
    tool_command,
)
from envspec.units import human_bytes

Progress = Callable[[str], None]

SIDECAR_DIR: Final = ".envspec"
DOWNLOAD_DIR: Final = ".envspec/downloads"
SIDECAR_VERSION: Final = 1
FETCH_JOBS: Final = 8
CHUNK: Final = 1 << 20
PROGRESS_INTERVAL_S: Final = 0.5
#: A download that receives less than STALL_MIN_BYTES in this many seconds has stalled.
STALL_ENV: Final = "ENVSPEC_STALL_TIMEOUT"
STALL_TIMEOUT_S: Final = 60.0
STALL_MIN_BYTES: Final = 64 * 1024
#: The most bytes taken for a package whose size the lockfile does not record.
MAX_BYTES_ENV: Final = "ENVSPEC_MAX_PACKAGE_BYTES"
MAX_PACKAGE_BYTES: Final = 8 << 30
#: Written into every prefix envspec creates (in staging, so it is there from the first moment).
#: Not ``*.json``: conda, mamba and rattler read every ``conda-meta/*.json`` as a package record.
MARKER_FILE: Final = "conda-meta/envspec.marker"
_DISK_FULL: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_T = TypeVar("_T")
_R = TypeVar("_R")


class PrefixNotEnvironment(EnvspecError):
    """The prefix exists and holds something envspec must not replace (exit 2)."""

    exit_code = ExitCode.USAGE


def _env_number(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        return env_number(environ, name, default)
    except ValueError as exc:
        raise SpecError(str(exc), tip=f"unset {name} or give a plain number, e.g. {name}={default:g}") from None


def stall_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds without progress after which a download has stalled (``$ENVSPEC_STALL_TIMEOUT``, 60)."""
    return _env_number(os.environ if environ is None else environ, STALL_ENV, STALL_TIMEOUT_S)


def max_package_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The cap for a package of unknown size (``$ENVSPEC_MAX_PACKAGE_BYTES``, 8 GiB)."""
    return int(_env_number(os.environ if environ is None else environ, MAX_BYTES_ENV, MAX_PACKAGE_BYTES))


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$ENVSPEC_PKGS_DIR``, else ``$XDG_CACHE_HOME/envspec/pkgs``, else ``~/.cache/envspec/pkgs``."""
    env = os.environ if environ is None else environ
    if env.get("ENVSPEC_PKGS_DIR"):
        return Path(env["ENVSPEC_PKGS_DIR"])
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


INSTALL_SCHEMA: Final = "envspec.install/1"


@dataclass
class InstallResult:
    prefix: Path
    packages: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    cache_hits: int = 0
    replaced_existing: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    pip_packages: int = 0  # PyPI packages installed after the conda ones (envspec.install.pip)

    def to_json(self, *, target: str, tool: str, lockfile: str | None) -> dict[str, Any]:
        """The ``envspec install --json`` document (schema ``envspec.install/1``, docs/json.md)."""
        return {
            "schema": INSTALL_SCHEMA,
            "target": target,
            "prefix": str(self.prefix),
            "tool": tool,
            "lockfile": lockfile,
            "packages": self.packages,
            "pip_packages": self.pip_packages,
            "downloaded": self.downloaded,
            "downloaded_bytes": self.downloaded_bytes,
            "cache_hits": self.cache_hits,
            "replaced_existing": self.replaced_existing,
            "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
        }


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


# ---------------------------------------------------------------------------------------------
# Step 1: fetch and verify
# ---------------------------------------------------------------------------------------------


def _sidecar(cache: Path, entry: LockEntry) -> Path:
    return cache / SIDECAR_DIR / f"{entry.stem}.json"


def _rattler_stamp(cache: Path, entry: LockEntry) -> str | None:
    """rattler's own lock/stamp file of the extracted package (changes when it re-extracts)."""
    try:
        return (cache / f"{entry.stem}.lock").read_bytes().hex()
    except FileNotFoundError:
        return None


def cached_hashes(cache: Path, entry: LockEntry) -> dict[str, Any] | None:
    """The verified hashes of the extracted package in the cache, if it matches ``entry``."""
    try:
        data = json.loads(_sidecar(cache, entry).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != SIDECAR_VERSION:
        return None
    if any(data.get(kind) != value for kind, value in entry.hashes.items()):
        return None
    stamp = _rattler_stamp(cache, entry)
    if stamp is None or data.get("rattler_stamp") != stamp:
        return None
    if not (cache / entry.stem / "info" / "index.json").is_file():
        return None
    return data


def _sha256_file(path: Path) -> str:
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
        if _sha256_file(paths_json) != hashes.get("paths_json_sha256"):
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
            if path.stat().st_size != item.get("size_in_bytes", -1) or _sha256_file(path) != item["sha256"]:
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
) -> list[Fetched]:
    """Step 1. Returns one verified :class:`Fetched` per package, in lockfile order.

    With ``verify_cache`` every file of every cached package is re-hashed too; a modified one
    sends its package back to download and verification (the cache is repaired, not trusted).
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
    stall = stall_timeout()
    cap = max_package_bytes()
    cancel = threading.Event()

    def on_bytes(n: int) -> None:
        with state_lock:
            state["bytes"] += n
        throttle(f"fetch: {state['done']}/{len(todo)} downloaded, {human_bytes(state['bytes'])}")

    downloader = Downloader(Limits(max_bytes=cap, stall_s=stall), headers_for=lambda u: auth_headers(u)[1])

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


# ---------------------------------------------------------------------------------------------
# Step 2: link with py-rattler into a staging folder
# ---------------------------------------------------------------------------------------------


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
    for path in (cache / f"{entry.stem}.lock", _sidecar(cache, entry)):
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
            "rattler_stamp": _rattler_stamp(cache, item.entry),
            "paths_json_sha256": _sha256_file(cache / item.entry.stem / "info" / "paths.json"),
        }
        atomic_write_text(_sidecar(cache, item.entry), json.dumps(sidecar, indent=2) + "\n")
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


# ---------------------------------------------------------------------------------------------
# Step 3: swap, and the whole run
# ---------------------------------------------------------------------------------------------


#: What a conda *installation* (base) has and an environment does not.
_BASE_SIGNS: Final = ("condabin", "pkgs", "envs", "bin/conda", "Scripts/conda.exe", "_conda.exe")


def _protected(prefix: Path) -> str | None:
    """Why ``prefix`` may never be replaced (a base install, a holder of environments), or None."""
    envs = sorted(p.parent.name for p in prefix.glob("envs/*/conda-meta") if p.is_dir())
    if envs:
        return f"it holds other environments (envs/{', envs/'.join(envs[:3])}{', ...' if len(envs) > 3 else ''})"
    signs = [sign for sign in _BASE_SIGNS if (prefix / sign).exists()]
    if signs:
        return f"it is a conda installation, not an environment (it has {', '.join(signs)})"
    return None


def check_prefix(prefix: Path, *, replace: bool = False) -> int | None:
    """None when ``prefix`` does not exist; else the number of packages of what will be replaced.

    An empty folder is replaced (0). An environment is replaced only when envspec made it (its
    ``conda-meta/envspec.marker``) or ``replace`` says so; a conda base installation or a folder
    holding environments (``envs/*/conda-meta``) never is, and neither is anything else.
    """
    if not prefix.exists():
        return None
    if not prefix.is_dir():
        raise PrefixNotEnvironment(f"{prefix} exists and is not a folder")
    if not any(prefix.iterdir()):
        return 0
    if not (prefix / "conda-meta").is_dir():
        raise PrefixNotEnvironment(
            f"{prefix} exists and is not a conda environment (no conda-meta/); refusing to replace it",
            tip="choose a new or empty --prefix",
        )
    why = _protected(prefix)
    if why is not None:
        raise PrefixNotEnvironment(
            f"refusing to replace {prefix}: {why}; replacing it would delete all of it",
            tip=f"install into a new prefix, e.g. --prefix {prefix / 'envs' / 'sd'}",
        )
    if not (replace or made_by_envspec(prefix)):
        raise PrefixNotEnvironment(
            f"{prefix} is a conda environment envspec did not create; refusing to replace it",
            tip="pass --replace to replace it as a whole, or choose a new --prefix",
        )
    return sum(1 for _ in (prefix / "conda-meta").glob("*.json"))


def _announce_replace(prefix: Path, existing: int | None, progress: Progress) -> None:
    if existing:
        why = "made by envspec" if made_by_envspec(prefix) else "--replace"
        progress(f"replace: the existing environment {prefix} ({existing} packages, {why}) is replaced as a whole")


def _swap(staging: Path, prefix: Path) -> bool:
    if not prefix.exists():
        staging.rename(prefix)
        return False
    old = prefix.with_name(f"{_old_prefix(prefix)}{os.getpid()}-{time.time_ns()}")
    prefix.rename(old)
    try:
        staging.rename(prefix)
    except BaseException:
        old.rename(prefix)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True


def _staging_prefix(prefix: Path) -> str:
    return f".{prefix.name}.envspec-new-"


def _old_prefix(prefix: Path) -> str:
    return f".{prefix.name}.envspec-old-"


def _dead_runs(prefix: Path, name_prefix: str) -> list[Path]:
    """Folders ``<name_prefix><pid>-...`` beside ``prefix`` whose process is gone, newest first."""
    found: list[tuple[int, Path]] = []
    for path in prefix.parent.glob(name_prefix + "*"):
        pid_text, _, rest = path.name.removeprefix(name_prefix).partition("-")
        if not (pid_text.isascii() and pid_text.isdigit()):
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            stamp = rest.split("-", 1)[0]
            found.append((int(stamp) if stamp.isascii() and stamp.isdigit() else 0, path))
        except OSError:
            continue
    return [path for _, path in sorted(found, reverse=True)]


def remove_stale_staging(prefix: Path) -> list[Path]:
    """Folders of ``prefix`` left by killed runs (their process is gone); POSIX only.

    Staging folders are removed. An environment a run had moved aside (``.envspec-old-``) is put
    back when the prefix is missing (killed between the two renames of the swap), else removed
    (killed while deleting it).
    """
    removed: list[Path] = []
    if os.name != "posix" or not prefix.parent.is_dir():
        return removed
    for path in _dead_runs(prefix, _staging_prefix(prefix)):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for path in _dead_runs(prefix, _old_prefix(prefix)):
        if not prefix.exists() and not prefix.is_symlink() and (path / "conda-meta").is_dir():
            path.rename(prefix)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


@contextlib.contextmanager
def _staging_dir(prefix: Path) -> Any:
    """A fresh folder beside ``prefix`` (same filesystem, so the final rename is atomic)."""
    created: list[Path] = []
    parent = prefix.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    prefix.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(prefix)
    staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(prefix)}{os.getpid()}-", dir=prefix.parent))
    try:
        if os.name == "posix":  # mkdtemp makes it owner-only; a prefix follows the umask, as conda's do
            staging.chmod(0o777 & ~current_umask())
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not prefix.exists():
            for folder in created:  # innermost first: only folders this run made, only if empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


def install_rattler(
    plan: InstallPlan,
    *,
    cache: Path,
    progress: Progress,
    verify_cache: bool = False,
    replace: bool = False,
    after_link: Callable[[Path, Path], None] | None = None,
) -> InstallResult:
    """Fetch + verify everything, link into a staging folder, then swap it into place.
    ``after_link(staging, prefix)`` runs before the swap (the PyPI packages, envspec.install.pip)."""
    lock, prefix = plan.lock, plan.prefix
    if prefix.is_symlink():  # replace the environment it points to, not the link
        prefix = prefix.resolve()
    report = InstallResult(prefix=prefix, packages=len(lock.entries))
    existing = check_prefix(prefix, replace=replace)
    _announce_replace(prefix, existing, progress)
    cache = cache.absolute()
    cache.mkdir(parents=True, exist_ok=True)
    with run_lock(cache / SIDECAR_DIR / "install.lock", "installing from this package cache"):
        # Downloads live only for one run (the lock makes the folder this run's alone): whatever
        # an aborted run left, and whatever this one fetched, is gone when it ends.
        shutil.rmtree(cache / DOWNLOAD_DIR, ignore_errors=True)
        try:
            t0 = time.perf_counter()
            fetched = fetch_all(lock, plan.urls, cache, progress, verify_cache=verify_cache)
            t1 = time.perf_counter()
            report.cache_hits = sum(1 for f in fetched if f.archive is None)
            report.downloaded = len(fetched) - report.cache_hits
            report.downloaded_bytes = sum(f.size for f in fetched if f.archive is not None)
            with _staging_dir(prefix) as staging:
                link(fetched, staging, prefix, cache, progress)
                write_marker(staging, plan.target, plan.source)
                write_state(staging, plan.variables)
                share_metadata(staging)
                if after_link is not None:
                    after_link(staging, prefix)
                t2 = time.perf_counter()
                report.replaced_existing = _swap(staging, prefix)
            t3 = time.perf_counter()
        finally:
            shutil.rmtree(cache / DOWNLOAD_DIR, ignore_errors=True)
    report.seconds = {"fetch": t1 - t0, "link": t2 - t1, "swap": t3 - t2, "total": t3 - t0}
    return report


def install_with_tool(
    plan: InstallPlan,
    *,
    executable: str,
    progress: Progress,
    replace: bool = False,
    after_create: Callable[[Path, Path], None] | None = None,
) -> InstallResult:
    """Run conda/mamba/micromamba on the same explicit file (mirrored URLs if --mirror)."""
    tool, prefix = plan.tool, plan.prefix
    assert plan.tool_lock_text is not None, "a tool install is planned with its explicit text"
    # What a killed rattler run left beside the prefix (staging, an environment moved aside) is
    # repaired first, exactly as the rattler path does, so the prefix check sees the real state.
    for path in remove_stale_staging(prefix):
        progress(f"removed {path}, left by a killed install")
    existing = check_prefix(prefix, replace=replace)
    _announce_replace(prefix, existing, progress)
    new_prefix = not prefix.exists()
    with tempfile.TemporaryDirectory(prefix="envspec-install-") as tmp:
        explicit_file = Path(tmp) / "explicit.lock"
        atomic_write_bytes(explicit_file, plan.tool_lock_text.encode("utf-8"))
        cmd = tool_command(tool, executable, prefix, explicit_file)
        progress(f"running: {' '.join(cmd)}")
        t0 = time.perf_counter()
        try:
            # The tool's own output goes to stderr: stdout is for envspec's result.
            proc = subprocess.run(cmd, stdout=sys.stderr, check=False)
            if proc.returncode != 0:
                raise ToolFailed(
                    f"{tool} failed with exit code {proc.returncode}: {' '.join(cmd)}"
                    + ("; the new prefix it started was removed" if new_prefix and prefix.exists() else "")
                )
            if after_create is not None:  # the PyPI packages (envspec.install.pip), on the created prefix
                after_create(prefix, prefix)
        except BaseException:  # a failed or interrupted tool: a new prefix must not be left half made
            if new_prefix:
                shutil.rmtree(prefix, ignore_errors=True)
            raise
    write_marker(prefix, plan.target, plan.source)
    write_state(prefix, plan.variables)
    share_metadata(prefix)
    report = InstallResult(prefix=prefix, packages=len(plan.lock.entries), replaced_existing=existing is not None)
    report.seconds = {"total": time.perf_counter() - t0}
    return report
