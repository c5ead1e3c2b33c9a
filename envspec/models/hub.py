"""Everything that talks to the Hugging Face Hub, through huggingface_hub: the only importer of it.

- ``resolve``: a revision to its commit and, on request, the repository's file listing with sizes
  and hashes (``HfApi.model_info(files_metadata=True)``: ``GET /api/models/{repo}/revision/{rev}?blobs=true``).
- ``fetch``: one file at a commit into the Hugging Face cache (``hf_hub_download``: ``HEAD`` then
  ``GET /{repo}/resolve/{commit}/{path}``, resuming with ``Range`` when a connection breaks).
- ``forget``: drop a cached file that failed verification, so the next pull downloads it again.

``session()`` wraps each of them: its HTTP client refuses a transfer that trickles (less than
``MIN_RATE`` bytes a second over an ``HF_HUB_DOWNLOAD_TIMEOUT`` window) as a read time-out, so
huggingface_hub resumes it and finally gives up instead of waiting forever; one file's tries are
bounded (``retries``: after a failed connection, a break or a stall; huggingface_hub alone would back
off for 23 s on a refused connection, and resume a stalling body for ever); progress is counted
instead of drawn; and every failure becomes an ``EnvspecError`` with a redacted one-line message.
It also turns Xet storage off (``HF_HUB_DISABLE_XET``, as huggingface_hub reads it: at each call):
where the Hub advertises Xet for a file (``X-Xet-Hash``, a ``xet-auth`` link), hf_xet would fetch it
from the CAS server the Hub names, in its own Rust client, outside that HTTP client (no stall guard,
no size cap, the token sent to whatever host the token route names); without Xet huggingface_hub
takes the same file from ``/resolve/`` over HTTP, and envspec checks its sha256 as always.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn, cast

import httpx2
import huggingface_hub
from huggingface_hub import constants, errors
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import _http

from envspec.download import retry_after
from envspec.errors import (
    AccessDenied,
    ChannelUnreachable,
    CheckFailed,
    EnvspecError,
    IntegrityError,
    SpecError,
    ToolFailed,
)
from envspec.models.plan import RemoteFile
from envspec.models.redact import redact
from envspec.settings import HUB_RETRIES

MIN_RATE: Final = 1024  # bytes per second, averaged over one HF_HUB_DOWNLOAD_TIMEOUT window
#: The longest ``Retry-After`` envspec waits for; huggingface_hub would sleep whatever the server asks.
RETRY_AFTER_CAP_S: Final = 60.0
#: The largest answer other than a file's own body (a listing, an error, a redirect) envspec reads: a
#: listing of thousands of files with their hashes is a few MiB; an endless one must not fill memory.
ANSWER_MAX_BYTES: Final = 32 << 20
#: The encodings envspec accepts for such an answer; it decodes them itself, counting what they inflate to
#: (a few KiB of gzip can inflate to gigabytes). A file's own body is asked for as it is (``identity``).
ANSWER_ENCODINGS: Final = "gzip, deflate"
#: What a server may name as a file's ETag or commit (huggingface_hub uses them as cache paths).
_ETAG = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
OFFLINE_TIP: Final = (
    "check the network, or HF_ENDPOINT if you use a mirror; files already in the Hugging Face cache "
    "(HF_HOME) are pulled without the network with HF_HUB_OFFLINE=1"
)
#: Locking resolves a revision to a commit: only the Hub answers that, so HF_HUB_OFFLINE=1 is no way
#: around an unreachable Hub for ``models lock`` (docs/models.md, "Offline").
LOCK_OFFLINE_TIP: Final = (
    "check the network, or HF_ENDPOINT if you use a mirror; locking needs the Hub (HF_HUB_OFFLINE=1 does not "
    "help here), while `envspec models lock --check` and pulling already-cached files work offline"
)


def offline_tip(doing: str) -> str:
    """The tip for an unreachable Hub, in the words of what was being done (lock or pull)."""
    return LOCK_OFFLINE_TIP if doing == "lock" else OFFLINE_TIP


@dataclass(frozen=True)
class Resolved:
    commit: str
    files: tuple[RemoteFile, ...]
    gated: bool


def endpoint() -> str:
    """The Hub's URL as shown to people (``HF_ENDPOINT`` without user-info, path token or query)."""
    from envspec.channels import redact as redact_url

    return redact_url(constants.ENDPOINT)


def repo_url(repo: str) -> str:
    return f"{endpoint()}/{repo}"


def offline() -> bool:
    return bool(constants.is_offline_mode())


def cache_dir() -> Path:
    return Path(constants.HF_HUB_CACHE)


# --- HTTP: a client whose transfers cannot trickle forever -----------------------------------------


@dataclass
class _Budget:
    """What one file's download may take: ``max_bytes`` per response body; ``retries`` tries after a
    failed one (a connection refused, a body that broke off or stalled: huggingface_hub would back off
    and try again, resetting its own count whenever a byte arrives), and as many Range requests."""

    what: str
    max_bytes: int
    retries: int = HUB_RETRIES
    resumes: int = 0
    failures: int = 0

    def refuse(self, limit: int) -> EnvspecError:
        return IntegrityError(
            f"{self.what}: the server sends more than the {limit} bytes the lockfile records; stopped",
            tip="the Hub or a proxy serves something other than the locked file: do not use it",
        )

    def failed(self, error: httpx2.TransportError, *, connecting: bool) -> None:
        """Count a failed try; past ``retries`` of them, give up now (before huggingface_hub's back-off)."""
        self.failures += 1
        if self.failures <= self.retries:
            return
        if connecting:
            raise ChannelUnreachable(
                f"cannot reach the Hub at {endpoint()} for {self.what}: {_shown(str(error))} ({self.failures} tries)",
                tip=OFFLINE_TIP,
            )
        raise ChannelUnreachable(
            f"{self.what}: the transfer broke off or stalled {self.failures} times ({_shown(str(error))}); stopped",
            tip="the server or a proxy is too slow or drops connections: retry later, or use another HF_ENDPOINT",
        )


_budget = threading.local()


def _current_budget() -> _Budget | None:
    budget = getattr(_budget, "value", None)
    return budget if isinstance(budget, _Budget) else None


def _normalized_etag(value: str) -> str:
    """As huggingface_hub normalises it (``W/"x"`` -> ``x``) before it joins it to a cache path."""
    return value.lstrip("W/").strip('"')


def check_headers(request: httpx2.Request, response: httpx2.Response) -> None:
    """Refuse an answer whose ETag or commit huggingface_hub would use as a path (``../``, absolute,
    anything but a hex hash), and a ``Retry-After`` longer than RETRY_AFTER_CAP_S (pure)."""
    headers = response.headers
    commit = headers.get("X-Repo-Commit")
    if commit is not None and not _COMMIT.match(commit):
        raise IntegrityError(
            f"{endpoint()} answered the commit {_shown(commit)!r}, which is not a 40-hex commit id; refused",
            tip="HF_ENDPOINT points at a server that is not a Hugging Face Hub (or a hostile one): fix HF_ENDPOINT",
        )
    if "/resolve/" in request.url.path and response.status_code < 400:
        etag = headers.get("X-Linked-Etag") or headers.get("ETag")
        if etag is not None and not _ETAG.match(_normalized_etag(etag)):
            raise IntegrityError(
                f"{endpoint()} answered the ETag {_shown(etag)!r} for a file, which is not a hash; refused "
                "(huggingface_hub would use it as a path in its cache)",
                tip="HF_ENDPOINT points at a server that is not a Hugging Face Hub (or a hostile one): fix HF_ENDPOINT",
            )
    if response.status_code in {429, 503}:
        wait = retry_after(headers.get("Retry-After"))
        if wait is not None and wait > RETRY_AFTER_CAP_S:
            raise ChannelUnreachable(
                f"{endpoint()} answered {response.status_code} and asks to retry after {wait:.0f} s, more than the "
                f"{RETRY_AFTER_CAP_S:g} s envspec waits; stopped",
                tip="try again later, or use another HF_ENDPOINT",
            )


def _shown(text: str) -> str:
    return redact(text)[:80]


class _GuardedStream(httpx2.SyncByteStream):
    """A response body that must keep flowing (``MIN_RATE`` over each ``window``) and, given ``cap``
    (a byte limit and the error that words it), stop past that many bytes; a file's own body counts
    a stall or a break against its ``budget``."""

    def __init__(
        self,
        inner: httpx2.SyncByteStream,
        request: httpx2.Request,
        window: float,
        cap: tuple[int, Callable[[int], EnvspecError]] | None = None,
        budget: _Budget | None = None,
    ) -> None:
        self._inner = inner
        self._request = request
        self._window = window
        self._cap = cap
        self._budget = budget

    def __iter__(self) -> Iterator[bytes]:
        started, received, total = time.monotonic(), 0, 0
        try:
            for chunk in self._inner:
                received += len(chunk)
                total += len(chunk)
                if self._cap is not None and total > self._cap[0]:
                    raise self._cap[1](self._cap[0])
                elapsed = time.monotonic() - started
                if elapsed >= self._window:
                    if received < MIN_RATE * elapsed:
                        raise httpx2.ReadTimeout(
                            f"transfer stalled: {received} bytes in {elapsed:.0f} s", request=self._request
                        )
                    started, received = time.monotonic(), 0
                yield chunk
        except httpx2.TransportError as exc:  # stalled (here, or the read time-out), or broken off
            if self._budget is not None:
                self._budget.failed(exc, connecting=False)
            raise

    def close(self) -> None:
        self._inner.close()


class _Inflated(httpx2.SyncByteStream):
    """A gzip or zlib-deflate answer decoded here, a bounded piece at a time, so the cap after it counts
    the inflated bytes (httpx would inflate it whole, past any cap, when huggingface_hub reads it)."""

    def __init__(self, inner: httpx2.SyncByteStream, request: httpx2.Request) -> None:
        import zlib

        self._inner = inner
        self._request = request
        self._inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)  # a gzip or zlib header, either

    def __iter__(self) -> Iterator[bytes]:
        import zlib

        try:
            for chunk in self._inner:
                data = chunk
                while data:
                    out = self._inflate.decompress(data, 1 << 20)
                    data = self._inflate.unconsumed_tail
                    if out:
                        yield out
            if tail := self._inflate.flush():
                yield tail
        except zlib.error as exc:
            raise IntegrityError(
                f"{endpoint()} answered {self._request.method} {_shown(self._request.url.path)} with a body that "
                f"does not decode as its Content-Encoding says ({exc})",
                tip="HF_ENDPOINT points at a server that is not a Hugging Face Hub (or a hostile one): fix HF_ENDPOINT",
            ) from None

    def close(self) -> None:
        self._inner.close()


def _decoded_here(request: httpx2.Request, response: httpx2.Response) -> httpx2.SyncByteStream:
    """The answer's body as its bytes are (an encoding envspec inflates itself; any other is refused)."""
    assert isinstance(response.stream, httpx2.SyncByteStream)
    values = response.headers.get_list("content-encoding", split_commas=True)
    encodings = [v.strip().lower() for v in values if v.strip().lower() not in ("", "identity")]
    if not encodings:
        return response.stream
    if encodings not in (["gzip"], ["deflate"]):
        response.close()
        raise IntegrityError(
            f"{endpoint()} answered {request.method} {_shown(request.url.path)} with Content-Encoding "
            f"{_shown(', '.join(encodings))}, which envspec did not ask for ({ANSWER_ENCODINGS})",
            tip="HF_ENDPOINT points at a server that is not a Hugging Face Hub (or a hostile one): fix HF_ENDPOINT",
        )
    del response.headers["content-encoding"]  # decoded here: httpx must not inflate it again
    response.headers.pop("content-length", None)
    return _Inflated(response.stream, request)


class _GuardedTransport(httpx2.BaseTransport):
    def __init__(self, inner: httpx2.BaseTransport, window: float) -> None:
        self._inner = inner
        self._window = window

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        budget = _current_budget()
        if budget is not None and request.method == "GET" and "range" in request.headers:
            budget.resumes += 1
            if budget.resumes > budget.retries:
                raise ChannelUnreachable(
                    f"{budget.what}: the transfer broke off or stalled {budget.retries} times; stopped",
                    tip="the server or a proxy hangs or ignores Range requests: retry later, or use another "
                    "HF_ENDPOINT",
                )
        try:
            response = self._inner.handle_request(request)
        except httpx2.TransportError as exc:  # no answer: refused, reset, timed out
            if budget is not None:
                budget.failed(exc, connecting=True)
            raise
        try:
            check_headers(request, response)
        except EnvspecError:
            response.close()
            raise
        if isinstance(response.stream, httpx2.SyncByteStream):
            cap: tuple[int, Callable[[int], EnvspecError]]
            if budget is not None and request.method == "GET" and 200 <= response.status_code < 300:
                cap = (budget.max_bytes, budget.refuse)  # the file itself: its locked size
                response.stream = _GuardedStream(response.stream, request, self._window, cap, budget)
            else:  # a listing, an error, a redirect: never the size of a file, counted inflated
                cap = (ANSWER_MAX_BYTES, functools.partial(_answer_too_long, request, response.status_code))
                response.stream = _GuardedStream(_decoded_here(request, response), request, self._window, cap)
        return response

    def close(self) -> None:
        self._inner.close()


def _answer_too_long(request: httpx2.Request, status: int, limit: int) -> EnvspecError:
    return IntegrityError(
        f"{endpoint()} answered {request.method} {_shown(request.url.path)} ({status}) with more than "
        f"{limit >> 20} MiB; stopped (a Hub's listings and errors are far smaller)",
        tip="HF_ENDPOINT points at a server that is not a Hugging Face Hub (or a hostile one): fix HF_ENDPOINT",
    )


def _guarded_client() -> httpx2.Client:
    return httpx2.Client(
        event_hooks={"request": [_http.hf_request_event_hook]},
        headers={"Accept-Encoding": ANSWER_ENCODINGS},  # a file's download asks for identity itself
        follow_redirects=True,
        timeout=None,
        transport=_GuardedTransport(httpx2.HTTPTransport(), float(constants.HF_HUB_DOWNLOAD_TIMEOUT)),
    )


@contextlib.contextmanager
def session() -> Iterator[None]:
    """huggingface_hub with the guarded client, Xet off and its own log lines (which quote URLs) silenced."""
    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", _http.default_client_factory)
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    xet_disabled = constants.HF_HUB_DISABLE_XET
    huggingface_hub.set_client_factory(_guarded_client)
    hub_logger.setLevel(logging.ERROR)
    constants.HF_HUB_DISABLE_XET = True  # read by is_xet_available() and the shared blob store, per call
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = xet_disabled
        hub_logger.setLevel(level)
        huggingface_hub.set_client_factory(previous)


# --- progress: counted, never drawn -----------------------------------------------------------------


class _Meter:
    """Stands in for huggingface_hub's tqdm bar: forwards byte counts, prints nothing."""

    def __init__(self, on_bytes: Callable[[int], None], **kwargs: Any) -> None:
        self._on_bytes = on_bytes
        self.n = int(kwargs.get("initial") or 0)
        self.total = kwargs.get("total")
        self.format_dict: dict[str, Any] = {}

    def __enter__(self) -> _Meter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def update(self, n: int | float | None = 1) -> None:
        step = int(n or 0)
        self.n += step
        self._on_bytes(step)

    def update_transfer(self, n: int) -> None:  # Xet transfers: the written bytes are what count
        return None

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        return None

    def set_transfer_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        return None

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None


# --- the calls ---------------------------------------------------------------------------------------


def resolve(repo: str, revision: str, *, with_files: bool) -> Resolved:
    """The commit ``revision`` points at now, and (``with_files``) every file's path, size and hash."""
    api = huggingface_hub.HfApi()
    try:
        info = api.model_info(
            repo, revision=revision, files_metadata=with_files, timeout=float(constants.HF_HUB_ETAG_TIMEOUT)
        )
    except Exception as exc:
        _raise_translated(exc, repo=repo, revision=revision, doing="lock")
    commit = info.sha
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        raise ToolFailed(f"{endpoint()}: the Hub's answer for {repo}@{revision} names no commit", tip=LOCK_OFFLINE_TIP)
    files: list[RemoteFile] = []
    if with_files:
        for sibling in info.siblings or []:
            files.append(_remote_file(sibling, f"{endpoint()}: the Hub's listing of {repo}@{revision}"))
    return Resolved(commit=commit, files=tuple(files), gated=bool(info.gated))


def _listed_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 53 else None


def _listed_hex(value: object, length: int) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(f"[0-9a-f]{{{length}}}", value) else None


def _remote_file(sibling: Any, where: str) -> RemoteFile:
    """One listing entry, its types and shapes checked: a malformed name, size or hash is a
    one-line ToolFailed naming it (escaped), never a traceback or a terminal control sequence."""
    name = getattr(sibling, "rfilename", None)
    shown = ascii(name)[:120]
    if not isinstance(name, str):
        raise ToolFailed(f"{where} has a file name that is not text: {shown}")
    lfs = sibling.lfs
    size = _listed_int(lfs.size if lfs is not None else sibling.size)
    if size is None:
        raise ToolFailed(f"{where} gives no valid size for {shown}", tip=OFFLINE_TIP)
    sha256 = _listed_hex(lfs.sha256, 64) if lfs is not None else None
    blob = _listed_hex(sibling.blob_id, 40) if lfs is None else None
    if (lfs is not None and sha256 is None) or (lfs is None and blob is None):
        raise ToolFailed(f"{where} gives no valid hash for {shown}", tip=OFFLINE_TIP)
    return RemoteFile(path=name, size=size, sha256=sha256, git_sha1=blob)


def fetch(
    repo: str,
    path: str,
    commit: str,
    on_bytes: Callable[[int], None],
    *,
    size: int | None = None,
    retries: int = HUB_RETRIES,
) -> Path:
    """``path`` at ``commit`` in the Hugging Face cache (downloaded if it is not there yet); the cached file.

    ``size`` (the lockfile's) bounds every response body, and both Range requests and requests after
    a failed connection are bounded to ``retries``: an endless body, a server that ignores Range and
    stalls, or one that cannot be reached, ends instead of running forever (or backing off for 23 s).
    The cached file must lie inside the Hugging Face cache (see :func:`in_cache`).
    """
    what = f"{repo}/{path}@{commit[:12]}"
    _budget.value = None if size is None else _Budget(what, size, retries)
    written = [0]

    def counted(n: int) -> None:
        # What huggingface_hub writes, after any Content-Encoding was decoded (a gzip bomb is small
        # on the wire): never more than the locked size.
        written[0] += n
        if size is not None and written[0] > size:
            raise IntegrityError(
                f"{what}: the server sends more than the {size} bytes the lockfile records "
                "(after decoding its Content-Encoding); stopped",
                tip="the Hub or a proxy serves something other than the locked file: do not use it",
            )
        on_bytes(n)

    try:
        cached = huggingface_hub.hf_hub_download(
            repo, path, revision=commit, tqdm_class=cast(Any, functools.partial(_Meter, counted))
        )
    except Exception as exc:
        _raise_translated(exc, repo=repo, revision=commit, doing="pull", path=path)
    finally:
        _budget.value = None
    result = Path(cached)
    if not in_cache(result):
        raise IntegrityError(
            f"{what}: huggingface_hub placed it at {result}, outside the Hugging Face cache; refused",
            tip="HF_ENDPOINT points at a hostile server, or HF_HUB_CACHE holds links out of it: clear it",
        )
    return result


def in_cache(path: Path) -> bool:
    """Whether ``path`` and what it resolves to (a snapshot link to its blob) lie inside the cache."""
    root = cache_dir().resolve()
    try:
        return path.absolute().resolve().is_relative_to(root)
    except (OSError, RuntimeError):
        return False


def forget(cached: Path) -> None:
    """Remove a cached file and the blob it points at (it failed verification); never anything
    outside the Hugging Face cache, whatever a link there resolves to."""
    with contextlib.suppress(OSError):
        blob = cached.resolve()
        if in_cache(blob):
            blob.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if in_cache(cached.parent):
            cached.unlink(missing_ok=True)


# --- errors ------------------------------------------------------------------------------------------


def _login_token() -> list[str]:
    """The token huggingface_hub would send (HF_TOKEN, or the file `hf auth login` wrote), to cut from messages."""
    try:
        token = huggingface_hub.get_token()
    except Exception:  # an unreadable token file, an OIDC exchange that failed: nothing to cut then
        return []
    return [token] if token else []


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _raise_translated(exc: Exception, *, repo: str, revision: str, doing: str, path: str | None = None) -> NoReturn:
    raise translate(exc, repo=repo, revision=revision, doing=doing, path=path) from None


def translate(exc: BaseException, *, repo: str, revision: str, doing: str, path: str | None = None) -> EnvspecError:
    """One EnvspecError, with a redacted one-line message, for a huggingface_hub failure."""
    what = f"{repo}/{path}@{revision[:12]}" if path else f"{repo}@{revision}"
    detail = redact(str(exc), _login_token()) or type(exc).__name__
    url = repo_url(repo)
    login = "set HF_TOKEN or run `hf auth login` (huggingface-cli login with older huggingface_hub)"
    if isinstance(exc, EnvspecError):
        return exc
    if isinstance(exc, errors.GatedRepoError):
        if _status(exc) == 403:
            return AccessDenied(
                f"{repo} is gated and this token has not been granted access",
                tip=f"accept the licence at {url} with the account the token belongs to",
            )
        return AccessDenied(f"{repo} is gated: it needs a token", tip=f"{login}, and accept the licence at {url}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        if _status(exc) == 401:
            return AccessDenied(
                f"{repo}: not found, or private and it needs a token",
                tip=f"check the repo id in envspec.yml; for a private or gated repo {login}",
            )
        return SpecError(f"no repository {repo} on {endpoint()}", tip="check the repo id in envspec.yml")
    if isinstance(exc, errors.RevisionNotFoundError):
        if doing == "pull":
            return CheckFailed(
                f"{repo}: the locked commit {revision[:12]} is gone from the Hub (history rewritten?)",
                tip="run `envspec models lock --update` and pull again",
            )
        return SpecError(f"{repo} has no revision {revision!r}", tip="fix the revision in envspec.yml")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return CheckFailed(
            f"{what}: no such file at the locked commit",
            tip="the lockfile does not match the repository: run `envspec models lock --update`",
        )
    if isinstance(exc, (errors.LocalEntryNotFoundError, OfflineModeIsEnabled)) and offline() and doing == "lock":
        return ChannelUnreachable(
            f"locking {what} needs the Hub, and HF_HUB_OFFLINE=1 forbids reaching it",
            tip="unset HF_HUB_OFFLINE: locking resolves the revision on the Hub "
            "(`envspec models lock --check` works offline, and so does pulling cached files)",
        )
    if isinstance(exc, (errors.LocalEntryNotFoundError, OfflineModeIsEnabled)) and offline():
        return ChannelUnreachable(
            f"{what} is not in the Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it",
            tip="unset HF_HUB_OFFLINE to download it, or point HF_HOME at a cache that has it",
        )
    if isinstance(exc, OfflineModeIsEnabled):
        return ChannelUnreachable(
            f"cannot {doing} {what} offline (HF_HUB_OFFLINE is set)",
            tip="unset HF_HUB_OFFLINE: locking needs the Hub (`envspec models lock --check` works offline), "
            "pulling needs it unless the files are cached",
        )
    if isinstance(exc, errors.LocalEntryNotFoundError):  # the Hub did not answer and the cache lacks the file
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, errors.HfHubHTTPError):  # it did answer: with a refusal or a server error
            return translate(cause, repo=repo, revision=revision, doing=doing, path=path)
        reason = redact(str(cause), _login_token()) if cause is not None else detail
        return ChannelUnreachable(f"cannot reach the Hub at {endpoint()} for {what}: {reason}", tip=offline_tip(doing))
    if isinstance(exc, errors.HfHubHTTPError):
        status = _status(exc)
        if status == 401:
            return AccessDenied(f"{what}: the Hub refused access (401): {detail}", tip=login)
        if status == 403:
            return AccessDenied(
                f"{what}: the Hub refused access (403): {detail}",
                tip="check that the token (HF_TOKEN, or the one `hf auth login` stored) may read this repository",
            )
        return ChannelUnreachable(f"{what}: the Hub answered {status}: {detail}", tip=offline_tip(doing))
    if isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return ChannelUnreachable(f"cannot reach the Hub at {endpoint()} for {what}: {detail}", tip=offline_tip(doing))
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return IntegrityError(
            f"{what}: the download did not have the size the Hub announced: {detail}",
            tip="pull again; if it repeats, the server or a proxy is serving something else",
        )
    if isinstance(exc, (errors.HFValidationError, ValueError)):
        return SpecError(f"{what}: {detail}", tip="check the repo id and revision in envspec.yml")
    if isinstance(exc, OSError):
        return ToolFailed(f"{what}: {detail}", tip="check free disk space and that HF_HOME is writable")
    return ToolFailed(f"huggingface_hub failed on {what}: {type(exc).__name__}: {detail}")
