"""The one downloader: every file envspec fetches itself (conda packages, wheels) goes through it.

One :class:`Downloader` per run keeps one pool of keep-alive connections per origin (scheme, host,
port; ``http.client``, so importing this module costs nothing on the CLI's fast paths) and bounds
every transfer:

* **size**: never more than ``max_bytes`` are written (the expected size when the lockfile
  records one, else ``ENVSPEC_MAX_PACKAGE_BYTES``); a ``Content-Length`` above it stops before the
  body is read (:class:`TooLarge`);
* **stall**: less than ``stall_min_bytes`` in ``stall_s`` seconds, or no byte at all for
  ``stall_s`` (``ENVSPEC_STALL_TIMEOUT``), is a stall (:class:`Stalled`);
* **retries**: a refused connection, a 429 or a 5xx is retried ``retries`` times with exponential
  back-off; a ``Retry-After`` is honoured up to ``retry_after_cap_s`` and one above the cap gives up
  at once (never a 28-hour sleep);
* **resumes**: a body that breaks off, or stalls after real progress, is resumed with ``Range`` at
  most ``resumes`` times in all; a server that ignores ``Range`` (200 instead of 206) restarts
  from byte 0, which counts;
* **redirects**: at most ``max_redirects``, to ``http(s)://`` only; the credentials of the first
  URL's origin (``Authorization``) are sent to that origin alone, never to another one;
* **files**: ``file://`` reads regular files only (no ``/dev/zero``, FIFO or device), opened
  without blocking;
* **paths**: the file lands in ``dest_dir`` under a plain name (:func:`safe_name`: one path
  segment, decoded once, no ``..``, separator, drive or control character), written to a temp file
  beside it and renamed into place only when complete; nothing outside ``dest_dir`` is ever
  written or deleted.

Cancellation (``cancel``, a ``threading.Event``) is checked after every read and during back-off.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urljoin, urlsplit

CHUNK: Final = 1 << 20
CONNECT_TIMEOUT_S: Final = 30.0
STALL_TIMEOUT_S: Final = 60.0
STALL_MIN_BYTES: Final = 64 * 1024
RETRIES: Final = 4
RESUMES: Final = 5
RETRY_AFTER_CAP_S: Final = 60.0
BACKOFF_S: Final = 0.5
BACKOFF_MAX_S: Final = 8.0
MAX_REDIRECTS: Final = 10
#: The status line and headers must be complete within this many stall windows.
HEADER_DEADLINE_STALLS: Final = 2
POOL_PER_ORIGIN: Final = 8
USER_AGENT: Final = "envspec"

Origin = tuple[str, str, int]
OnBytes = Callable[[int], None]
#: Headers (credentials) for a URL's origin: called once per download with the first URL.
HeadersFor = Callable[[str], Mapping[str, str]]


class DownloadError(OSError):
    """A download that failed for good (after its retries); ``str`` is one line, credential-free."""


class Stalled(DownloadError):
    pass


class TooLarge(DownloadError):
    pass


class Cancelled(DownloadError):
    pass


class Refused(DownloadError):
    """What the download must never do: read a non-regular file, write outside its folder."""


class HTTPStatus(DownloadError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    stall_s: float = STALL_TIMEOUT_S
    stall_min_bytes: int = STALL_MIN_BYTES
    retries: int = RETRIES
    resumes: int = RESUMES
    retry_after_cap_s: float = RETRY_AFTER_CAP_S
    backoff_s: float = BACKOFF_S
    max_redirects: int = MAX_REDIRECTS


@dataclass(frozen=True)
class Downloaded:
    path: Path
    md5: str
    sha256: str
    size: int


# ---------------------------------------------------------------------------------------------
# Names and origins (pure)
# ---------------------------------------------------------------------------------------------

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_name(name: str) -> str:
    """``name`` if it is one plain file name (no separator, ``..``, drive, control or bidi
    character, at most 255 bytes); ValueError otherwise (pure)."""
    if (
        not name
        or name in {".", ".."}
        or _UNSAFE_CHARS.search(name)
        or len(name.encode("utf-8", "surrogateescape")) > 255
    ):
        raise ValueError(f"not a plain file name: {name[:80]!r}")
    return name


def url_filename(url: str) -> str:
    """The file name of ``url``: its last path segment, percent-decoded exactly once, and
    :func:`safe_name` (so ``..%2F..%2Fx`` or ``%2Fetc%2Fpasswd`` is a ValueError, never a path)."""
    segment = urlsplit(url).path.rsplit("/", 1)[-1]
    return safe_name(unquote(segment, errors="strict"))


def confined(folder: Path, name: str) -> Path:
    """``folder/name`` for a :func:`safe_name`, checked to resolve inside ``folder``."""
    path = folder / safe_name(name)
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{name[:80]!r} leaves {folder}")
    return path


def origin(url: str) -> Origin:
    """(scheme, host, port) of an http(s) URL; ValueError for a malformed host or port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {scheme}://")
    port = parts.port or (443 if scheme == "https" else 80)  # parts.port raises ValueError when malformed
    return scheme, parts.hostname.lower(), port


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is True, float("²") fails
        return float(text[:12])
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


# ---------------------------------------------------------------------------------------------
# The downloader
# ---------------------------------------------------------------------------------------------


@dataclass
class _Transfer:
    """One file being written: its temp file, hashes and progress, across attempts."""

    out: int
    limit: int
    on_bytes: OnBytes
    size: int = 0
    received: int = 0  # every byte taken, across restarts: did an attempt make progress?
    md5: hashlib._Hash = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)

    def restart(self) -> None:
        os.lseek(self.out, 0, os.SEEK_SET)
        os.ftruncate(self.out, 0)
        self.on_bytes(-self.size)
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        if self.size + len(chunk) > self.limit:
            raise TooLarge(f"more than {self.limit} bytes")
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.out, view) :]
        self.md5.update(chunk)
        self.sha.update(chunk)
        self.size += len(chunk)
        self.received += len(chunk)
        self.on_bytes(len(chunk))


class Downloader:
    """Pooled, bounded downloads (see the module doc). Thread-safe; ``close()`` drops the pool."""

    def __init__(self, limits: Limits, *, headers_for: HeadersFor | None = None) -> None:
        self.limits = limits
        self._headers_for = headers_for
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self.connections_opened = 0  # for tests and benchmarks: keep-alive reuse is visible

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            conns = [c for pool in self._idle.values() for c in pool]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # --- connections ----------------------------------------------------------------------

    def _connect(self, key: Origin, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``key`` and whether it is a reused one (it may have been closed by now)."""
        with self._lock:
            pool = self._idle.get(key)
            if pool and not fresh:
                return pool.pop(), True
            self.connections_opened += 1
        scheme, host, port = key
        timeout = min(CONNECT_TIMEOUT_S, self.limits.stall_s)
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout), False
        return http.client.HTTPConnection(host, port, timeout=timeout), False

    def _release(self, key: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            pool = self._idle.setdefault(key, [])
            if len(pool) < POOL_PER_ORIGIN:
                pool.append(conn)
                return
        conn.close()

    # --- the public call ------------------------------------------------------------------

    def fetch(
        self,
        url: str,
        dest_dir: Path,
        name: str,
        *,
        on_bytes: OnBytes = lambda n: None,
        max_bytes: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Downloaded:
        """``url`` into ``dest_dir/name`` (complete, or not at all), hashed while written."""
        final = confined(dest_dir, name)
        limit = self.limits.max_bytes if max_bytes is None else max_bytes
        fd, tmp = tempfile.mkstemp(prefix=".envspec-", suffix=".part", dir=dest_dir)
        try:
            transfer = _Transfer(fd, limit, on_bytes)
            if urlsplit(url).scheme.lower() == "file":
                self._copy_file(url, transfer, cancel)
            else:
                self._http(url, transfer, cancel)
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            os.close(fd)
            fd = -1
            os.replace(tmp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return Downloaded(final, transfer.md5.hexdigest(), transfer.sha.hexdigest(), transfer.size)

    # --- file:// ----------------------------------------------------------------------------

    def _copy_file(self, url: str, transfer: _Transfer, cancel: threading.Event | None) -> None:
        path = file_path(url)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        try:
            src = os.open(path, flags)  # O_NONBLOCK: opening a FIFO must not wait for a writer
        except OSError as exc:
            raise DownloadError(f"cannot open {path}: {exc.strerror}") from None
        try:
            info = os.fstat(src)
            if not stat.S_ISREG(info.st_mode):
                raise Refused(f"{path} is not a regular file")
            if info.st_size > transfer.limit:
                raise TooLarge(f"the file has {info.st_size} bytes")
            if hasattr(os, "set_blocking"):
                os.set_blocking(src, True)
            while chunk := os.read(src, min(CHUNK, transfer.limit - transfer.size + 1)):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                transfer.add(chunk)
        finally:
            os.close(src)

    # --- http(s):// -------------------------------------------------------------------------

    def _http(self, url: str, transfer: _Transfer, cancel: threading.Event | None) -> None:
        try:
            self._http_bounded(url, transfer, cancel)
        except ValueError as exc:  # a malformed host or port, here or in a redirect
            raise DownloadError(f"not a valid URL ({_reason(exc)})") from None

    def _http_bounded(self, url: str, transfer: _Transfer, cancel: threading.Event | None) -> None:
        limits = self.limits
        first = origin(url)
        credentials = dict(self._headers_for(url)) if self._headers_for is not None else {}
        retries = resumes = 0
        current = url
        redirects = 0
        while True:
            key = origin(current)
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            if key == first:  # credentials go to the origin they were given for, never elsewhere
                headers.update(credentials)
            if transfer.size:
                headers["Range"] = f"bytes={transfer.size}-"
            before = transfer.received
            try:
                outcome = self._attempt(key, current, headers, transfer, cancel)
            except (Stalled, _Broken) as exc:
                # A stall is resumed only after real progress (a transfer that broke off): one
                # that never got going (a trickle, a dead server) is not worth another window.
                progressed = transfer.received - before >= limits.stall_min_bytes
                if resumes >= limits.resumes or (isinstance(exc, Stalled) and not progressed):
                    raise (exc if isinstance(exc, Stalled) else DownloadError(str(exc))) from None
                resumes += 1
                continue
            except _Retry as exc:
                if retries >= limits.retries:
                    raise exc.error from None
                wait = exc.after if exc.after is not None else min(BACKOFF_MAX_S, limits.backoff_s * 2**retries)
                if wait > limits.retry_after_cap_s:
                    raise DownloadError(
                        f"{exc.error}; the server asks to retry after {wait:.0f} s, "
                        f"more than the {limits.retry_after_cap_s:g} s envspec waits"
                    ) from None
                retries += 1
                if (cancel or threading.Event()).wait(wait):  # a back-off that a cancel cuts short
                    raise Cancelled("cancelled") from None
                continue
            if outcome is None:
                return
            redirects += 1
            if redirects > limits.max_redirects:
                raise DownloadError(f"more than {limits.max_redirects} redirects")
            current = outcome

    def _attempt(
        self,
        key: Origin,
        url: str,
        headers: Mapping[str, str],
        transfer: _Transfer,
        cancel: threading.Event | None,
    ) -> str | None:
        """One request: None when the body is complete, the next URL on a redirect."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn, reused = self._connect(key)
        reusable = False
        deadline = _HeaderDeadline(HEADER_DEADLINE_STALLS * self.limits.stall_s)
        try:
            try:
                try:
                    conn.request("GET", target, headers=dict(headers))
                    response = deadline.getresponse(conn)
                except (ConnectionError, http.client.HTTPException):
                    if not reused or deadline.expired:
                        raise
                    conn.close()  # the server closed the idle keep-alive connection: one fresh try
                    conn, reused = self._connect(key, fresh=True)
                    conn.request("GET", target, headers=dict(headers))
                    response = deadline.getresponse(conn)
            except TimeoutError:
                raise Stalled(f"no answer for {self.limits.stall_s:g} s") from None
            except http.client.InvalidURL as exc:  # never better on a retry
                raise DownloadError(f"not a valid URL ({_reason(exc)})") from None
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                if deadline.expired:  # a status line and headers trickled in a byte at a time
                    raise Stalled(f"no complete answer in {deadline.seconds:g} s") from None
                raise _Retry(DownloadError(_reason(exc))) from None
            status = response.status
            if status in {301, 302, 303, 307, 308}:
                location = response.getheader("Location")
                response.read(64 * 1024)
                reusable = response.isclosed() and not response.will_close
                if not location:
                    raise DownloadError(f"HTTP {status} without a Location")
                nxt = urljoin(url, location.strip())
                if urlsplit(nxt).scheme.lower() not in {"http", "https"}:
                    raise Refused(f"a redirect to {urlsplit(nxt).scheme}:// is not followed")
                return nxt
            if status == 429 or 500 <= status <= 599:
                after = retry_after(response.getheader("Retry-After"))
                raise _Retry(HTTPStatus(status, response.reason), after)
            if status == 200 and transfer.size:
                transfer.restart()  # the server ignored Range: start over (counted as a resume)
            elif status == 206:
                if not _range_starts_at(response.getheader("Content-Range"), transfer.size):
                    transfer.restart()
                    raise _Broken("a partial answer that does not start where the download stopped")
            elif status != 200:
                raise HTTPStatus(status, response.reason)
            length = response.getheader("Content-Length")
            digits = length.strip() if length is not None else ""
            if digits.isascii() and digits.isdigit() and transfer.size + int(digits[:20]) > transfer.limit:
                raise TooLarge(f"the server announces {int(digits[:20])} bytes")
            self._body(response, transfer, cancel)
            response.close()  # complete: the connection may carry the next request
            reusable = not response.will_close
            return None
        finally:
            if reusable:
                self._release(key, conn)
            else:
                conn.close()

    def _body(self, response: http.client.HTTPResponse, transfer: _Transfer, cancel: threading.Event | None) -> None:
        limits = self.limits
        window_start, window_bytes = time.monotonic(), 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            try:
                chunk = response.read1(min(CHUNK, transfer.limit - transfer.size + 1))
            except TimeoutError:
                raise Stalled(f"no data for {limits.stall_s:g} s") from None
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                raise _Broken(_reason(exc)) from None
            if not chunk:
                if response.length:  # Content-Length promised more than came
                    raise _Broken(f"the connection closed {response.length} bytes early")
                return
            transfer.add(chunk)
            window_bytes += len(chunk)
            now = time.monotonic()
            if now - window_start >= limits.stall_s:
                if window_bytes < limits.stall_min_bytes:
                    raise Stalled(f"{window_bytes} bytes in the last {now - window_start:.0f} s")
                window_start, window_bytes = now, 0


class _HeaderDeadline:
    """Bounds the status line and headers as a whole: the socket time-out only bounds each read, so a
    server sending one header byte a second would otherwise never be done. When it expires the
    socket is shut down from a timer thread, which ends the blocked read."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False

    def getresponse(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
        def expire() -> None:
            self.expired = True
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(self.seconds, expire)
        timer.daemon = True
        timer.start()
        try:
            response = conn.getresponse()
        finally:
            timer.cancel()
        if self.expired:  # the shut-down socket looked like the end of the headers: it was not
            raise Stalled(f"no complete answer in {self.seconds:g} s")
        return response


class _Retry(Exception):
    def __init__(self, error: DownloadError, after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.after = after


class _Broken(Exception):
    """A body that broke off; resumable."""


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _range_starts_at(content_range: str | None, offset: int) -> bool:
    m = re.match(r"^\s*bytes\s+(\d{1,20})-", content_range or "")
    return m is not None and int(m.group(1)) == offset


def file_path(url: str) -> str:
    """The local path of a ``file://`` URL (decoded once; ``/C:/x`` -> ``C:/x`` on Windows)."""
    path = unquote(urlsplit(url).path)
    if os.name == "nt" and path.startswith("/") and len(path) > 2 and path[2] == ":":
        path = path[1:]
    return path
