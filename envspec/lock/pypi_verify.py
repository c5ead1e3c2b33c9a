"""Verify what is pinned: every PyPI file of a lock, downloaded and hashed before anything is written.

uv pins the sha256 an index *lists* (PEP 503 ``#sha256=``, PEP 691 ``hashes``); it downloads a
wheel only when the index has no PEP 658 metadata for it, and then reads just its ``METADATA``
(a range request), so nothing compares the pinned hash with the file the index serves (uv
0.13.10, checked 2026-12: an index listing a wrong ``#sha256=`` was pinned as is). A relock could
then commit lockfiles that never install. So :func:`verify` downloads every pinned file once,
through the one downloader (:mod:`envspec.download`: size cap ``ENVSPEC_MAX_PACKAGE_BYTES``,
stall guard ``ENVSPEC_STALL_TIMEOUT``, both given as ``limits``, bounded retries, redirects to http(s) only, the index's
credentials sent to the index's own origin only), hashes it while writing, deletes it, and fails
the lock (exit 7) on the first file whose bytes do not match, naming the file and the index.

Cost: the bytes of the PyPI part, once per file per run (four downloads at a time; a file one
target of the run checked is not fetched again for the next). Measured 2026-12 against pypi.org
from a fast link: the shipped spec's linux-cuda PyPI part is 38 files, 40.1 MB, 0.4-0.7 s; all
five targets pin 189 files, 65 distinct, 78.7 MB, 1.1 s (about 6 s at 100 Mbit/s).
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import urlsplit

from envspec.errors import ChannelUnreachable, IntegrityError, ToolFailed
from envspec.lock.condalock import PipPackage
from envspec.settings import MAX_PACKAGE_BYTES_ENV as MAX_BYTES_ENV  # the downloader's cap, as for installs
from envspec.settings import STALL_TIMEOUT_ENV as STALL_ENV
from envspec.settings import FetchLimits

JOBS: Final = 4


class IndexLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...


@dataclass(frozen=True)
class Verified:
    files: int
    bytes: int
    seconds: float


def _headers_for(index: IndexLike) -> Callable[[str], dict[str, str]]:
    """The index's credentials, for URLs on the index's own host only (PyPI's files live on
    another host: they get none); the downloader never forwards them across a redirect."""
    netloc = urlsplit(index.url).netloc

    def headers(url: str) -> dict[str, str]:
        if index.username is None or urlsplit(url).netloc != netloc:
            return {}
        token = base64.b64encode(f"{index.username}:{index.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    return headers


def verify(
    packages: Sequence[PipPackage],
    *,
    target: str,
    index: IndexLike,
    work: Path,
    seen: set[tuple[str, str]] | None = None,
    jobs: int = JOBS,
    limits: FetchLimits | None = None,
) -> Verified:
    """Download each of ``packages`` (into a temporary folder under ``work``, deleted file by file)
    and compare its sha256 with the pinned one; raises IntegrityError (a mismatch, exit 7, as for an install) or
    ChannelUnreachable (exit 5). ``seen``: the (URL, sha256) pairs this run verified already (for
    another target: the five shipped targets pin 189 files, 65 of them distinct), added to;
    ``limits``: the downloads' stall timeout and size cap (None: the defaults)."""
    from envspec.channels import redact
    from envspec.download import Cancelled, Downloader, Limits, Stalled, TooLarge, url_filename

    limits = limits or FetchLimits()
    cap, stall = limits.max_package_bytes, limits.stall_s
    index_shown = redact(index.url)
    started = time.monotonic()

    def one(package: PipPackage, dest: Path, downloader: Downloader, cancel: threading.Event) -> int:
        if cancel.is_set():  # another file failed already
            raise Cancelled("cancelled")
        url = package.url.split("#", 1)[0]
        shown = redact(url)
        try:
            name = url_filename(url)
        except ValueError as exc:
            raise ToolFailed(
                f"target {target}: the PyPI index {index_shown} names a file of {package.name} {package.version} "
                f"that is not one plain file name ({shown}: {exc}); nothing was written",
                tip="the index is broken or hostile: fix it, or lock from another (--mirror pypi=URL)",
            ) from None
        try:
            got = downloader.fetch(url, dest, name, cancel=cancel)
        except Stalled as exc:
            raise ChannelUnreachable(
                f"target {target}: checking {name} from {index_shown}: the download of {shown} stalled ({exc})",
                tip=f"retry, or raise {STALL_ENV} (now {stall:g} s)",
            ) from None
        except TooLarge as exc:
            raise ToolFailed(
                f"target {target}: {name} from the PyPI index {index_shown} is larger than the {cap} byte cap "
                f"({MAX_BYTES_ENV}; {exc}); nothing was written",
                tip=f"the index serves something other than a package, or raise {MAX_BYTES_ENV}",
            ) from None
        except Cancelled:
            raise
        except OSError as exc:
            raise ChannelUnreachable(
                f"target {target}: checking {name} from the PyPI index {index_shown}: {shown} is unreachable: "
                f"{redact(str(exc))}",
                tip="check the network, or map the index: --mirror pypi=URL",
            ) from None
        got.path.unlink()
        if got.sha256 != package.sha256:
            raise IntegrityError(
                f"target {target}: the PyPI index {index_shown} lists sha256 {package.sha256} for {name}, but the "
                f"file it serves ({shown}) has sha256 {got.sha256}; a lockfile of it would never install, so "
                "nothing was written",
                tip="the index (or a proxy in front of it) is broken or was tampered with: fix it, or lock from "
                "another (--mirror pypi=URL)",
            )
        if seen is not None:
            seen.add((url, got.sha256))
        return got.size

    todo = [p for p in packages if p.sha256 and (seen is None or (p.url.split("#", 1)[0], p.sha256) not in seen)]
    if not todo:
        return Verified(0, 0, 0.0)
    work.mkdir(parents=True, exist_ok=True)
    cancel = threading.Event()  # the first failure stops the other downloads
    first: BaseException | None = None
    total = 0
    with (
        tempfile.TemporaryDirectory(prefix="envspec-verify-", dir=work) as tmp,
        Downloader(
            Limits(max_bytes=cap, stall_s=stall, retries=limits.retries), headers_for=_headers_for(index)
        ) as downloader,
        ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo)))) as pool,
    ):
        futures = []
        for i, package in enumerate(todo):  # one folder per file: two files of one name never meet
            folder = Path(tmp) / str(i)
            folder.mkdir()
            futures.append(pool.submit(one, package, folder, downloader, cancel))
        for future in as_completed(futures):
            try:
                total += future.result()
            except Cancelled:
                if first is None:  # pragma: no cover - only this function cancels
                    raise
            except BaseException as exc:
                if first is None:
                    first = exc
                    cancel.set()
    if first is not None:
        raise first
    return Verified(len(todo), total, time.monotonic() - started)
