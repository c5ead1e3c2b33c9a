"""Solving with py-rattler, for envspec's conda shim (:mod:`envspec.lock.conda_shim`).

A local channel is read with ``SparseRepoData`` (lazily, each subdir once per process), a remote
one through rattler's gateway (its credentials, if a mirror has some, only in an ``Authorization``
header). Every failure is a :class:`ShimError`, reported to conda-lock as conda's error JSON:
unsatisfiable (the solver's explanation), a channel that cannot be read or answers too slowly, or
py-rattler itself. A serving process (:func:`envspec.lock.solver_service.serve`) keeps its solves
(:func:`keep_solves`): one asked for again with the same inputs is answered from memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

TIMEOUT_ENV = "ENVSPEC_CHANNEL_TIMEOUT"
RATTLER_CACHE_ENV = "ENVSPEC_RATTLER_CACHE"
#: ``envspec lock --exclude-newer``: an RFC 3339 UTC instant; records with a newer timestamp are ignored.
EXCLUDE_NEWER_ENV = "ENVSPEC_SHIM_EXCLUDE_NEWER"


class ShimError(Exception):
    """A failure reported to the caller as conda-style error JSON."""

    def __init__(self, kind: str, exception_name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.exception_name = exception_name
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {
            "caused_by": "None",
            "error": f"{self.exception_name}: {self.message}",
            "exception_name": self.exception_name,
            "exception_type": f"<class 'conda.exceptions.{self.exception_name}'>",
            "message": self.message,
            "envspec_kind": self.kind,
            **self.extra,
        }


def file_url_path(url: str) -> Path | None:
    """The local folder of a ``file://`` channel URL (or a plain absolute path), else None."""
    if url.startswith("file://"):
        path = unquote(urlsplit(url).path)
        if os.name == "nt" and path.startswith("/") and len(path) > 2 and path[2] == ":":
            path = path[1:]
        return Path(path)
    if Path(url).is_absolute():
        return Path(url)
    return None


#: What one process opened, kept for its later solves: a serving process
#: (:func:`envspec.lock.solver_service.serve`) opens each subdir's repodata once per ``envspec lock``
#: run (noarch once, not once per target).
_SPARSE: dict[tuple[str, str], Any] = {}
_GATEWAYS: dict[tuple[str | None, tuple[tuple[str, str, str], ...]], Any] = {}


def sparse_sources(channels: Sequence[str], subdir: str) -> list[Any] | None:
    """SparseRepoData for local channels (fast, lazy); None when a channel is remote."""
    from rattler import Channel, SparseRepoData

    sources: list[Any] = []
    for url in channels:
        root = file_url_path(url)
        if root is None:
            return None
        channel_url = root.as_uri() if not url.startswith("file://") else url
        for sub in (subdir, "noarch"):
            path = root / sub / "repodata.json"
            key = (channel_url, sub)
            problem = None if key in _SPARSE else repodata_problem(path)
            if problem is not None and (sub == "noarch" or problem != "does not exist"):  # a subdir may lack one
                raise ShimError(
                    "channel_unreachable",
                    "UnavailableInvalidChannel",
                    f"channel {url} is unreachable: {path} {problem}",
                    url=url,
                )
            if key not in _SPARSE and problem is None:
                _SPARSE[key] = SparseRepoData(Channel(channel_url), sub, path)
            if key in _SPARSE:
                sources.append(_SPARSE[key])
    return sources


def repodata_problem(path: Path) -> str | None:
    """Why a local channel's ``repodata.json`` cannot be read (``"does not exist"``, ``"is not a
    regular file ..."``: a FIFO would block the read, /dev/zero never end it), or None."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else "is not a regular file (a FIFO, device or folder)"


def gateway(environ: Mapping[str, str], auth: Mapping[str, tuple[str, str]]) -> Any:
    """rattler's gateway (one per cache folder and credentials, kept: it holds the repodata it read)."""
    key = (environ.get(RATTLER_CACHE_ENV), tuple(sorted((m, u, p) for m, (u, p) in auth.items())))
    if key not in _GATEWAYS:
        _GATEWAYS[key] = new_gateway(environ, auth)
    return _GATEWAYS[key]


def new_gateway(environ: Mapping[str, str], auth: Mapping[str, tuple[str, str]]) -> Any:
    """rattler's gateway; with mirror credentials, its client adds their ``Authorization`` header
    to every request under the mirror (rattler's own default middlewares stay in place)."""
    from rattler import Gateway

    cache = environ.get(RATTLER_CACHE_ENV)
    cache_dir = Path(cache) if cache else None
    if not auth:
        return Gateway(cache_dir=cache_dir)
    import base64

    from rattler.networking import (
        AddHeadersMiddleware,
        AuthenticationMiddleware,
        Client,
        GCSMiddleware,
        OciMiddleware,
        RetryMiddleware,
        S3Middleware,
    )

    keyed: list[tuple[str, str, str]] = []  # (host, path prefix, header)
    for mirror, (user, password) in auth.items():
        parts = urlsplit(mirror)
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        keyed.append(((parts.hostname or "").lower(), parts.path.rstrip("/"), f"Basic {token}"))
    keyed.sort(key=lambda k: len(k[1]), reverse=True)

    def headers(host: str, path: str) -> dict[str, str] | None:
        for h, prefix, value in keyed:
            if host.lower() == h and (path == prefix or path.startswith(prefix + "/")):
                return {"Authorization": value}
        return None

    client = Client(
        [
            AddHeadersMiddleware(headers),
            RetryMiddleware(3),
            AuthenticationMiddleware(),
            OciMiddleware(),
            GCSMiddleware(),
            S3Middleware(),
        ]
    )
    return Gateway(cache_dir=cache_dir, client=client)


def exclude_newer(environ: Mapping[str, str]) -> Any:
    """The solve's cutoff as an aware UTC ``datetime`` (None without one). rattler's solver drops
    records whose timestamp is newer; records without a timestamp are kept (``allow-missing``): there is
    no date to compare (1,055 of the 22,713 real conda-forge records in the shared snapshot lack one)."""
    from datetime import UTC, datetime

    text = environ.get(EXCLUDE_NEWER_ENV, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ShimError(
            "usage", "CondaValueError", f"{EXCLUDE_NEWER_ENV}={text!r} is not an RFC 3339 datetime"
        ) from None
    if moment.tzinfo is None:
        raise ShimError("usage", "CondaValueError", f"{EXCLUDE_NEWER_ENV}={text!r} has no time zone")
    # rattler replaces the tzinfo with UTC without converting: hand it the UTC wall time
    return moment.astimezone(UTC)


def channel_timeout(environ: Mapping[str, str]) -> float:
    try:
        return float(environ.get(TIMEOUT_ENV, "30"))
    except ValueError:
        return 30.0


def too_slow(channels: Sequence[str], timeout: float) -> ShimError:
    return ShimError(
        "channel_unreachable",
        "CondaHTTPError",
        f"fetching repodata from {', '.join(channels)} took longer than {timeout:g} s",
        url=channels[0] if channels else "",
    )


def explain_fetch_error(exc: BaseException, channels: Sequence[str]) -> ShimError:
    text = str(exc)
    url = next((c for c in channels if c in text), channels[0] if channels else "")
    return ShimError(
        "channel_unreachable",
        "CondaHTTPError",
        f"channel {url} is unreachable: {text.strip().splitlines()[0] if text.strip() else type(exc).__name__}",
        url=url,
    )


@contextlib.contextmanager
def channel_errors(channels: Sequence[str], timeout: float) -> Iterator[None]:
    """What reaching the channels raised, as the shim's one-line errors: a time-out
    (:func:`too_slow`), rattler's fetch and gateway errors (:func:`explain_fetch_error`: they have
    no common base class); a ShimError as it is."""
    try:
        yield
    except TimeoutError:
        raise too_slow(channels, timeout) from None
    except ShimError:
        raise
    except Exception as exc:
        raise explain_fetch_error(exc, channels) from None


async def solve(
    channels: Sequence[str],
    subdir: str,
    specs: Sequence[str],
    vpkgs: Mapping[str, tuple[str, str]],
    locked: Sequence[Any],
    environ: Mapping[str, str],
    auth: Mapping[str, tuple[str, str]] | None = None,
) -> list[Any]:
    from rattler import (
        BuildString,
        Channel,
        GenericVirtualPackage,
        PackageName,
        Subdir,
        Version,
        solve,
        solve_with_sparse_repodata,
    )
    from rattler.exceptions import SolverError

    virtual = [
        GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0"))
        for name, (version, build) in vpkgs.items()
    ]
    import asyncio

    timeout = channel_timeout(environ)
    sparse = sparse_sources(channels, subdir)
    cutoff = exclude_newer(environ)
    dated: dict[str, Any] = {"exclude_newer": cutoff, "timestamp_policy": "allow-missing"} if cutoff else {}
    with channel_errors(channels, timeout):
        try:
            if sparse is not None:
                solved: list[Any] = await solve_with_sparse_repodata(
                    specs, sparse, locked_packages=list(locked), virtual_packages=virtual, **dated
                )
                return solved
            remote = gateway(environ, auth or {})
            return await asyncio.wait_for(
                solve(
                    [Channel(c) for c in channels],
                    specs,
                    gateway=remote,
                    platforms=[Subdir(subdir), Subdir("noarch")],
                    locked_packages=list(locked),
                    virtual_packages=virtual,
                    channel_relations="disabled",
                    **dated,
                ),
                timeout=timeout,
            )
        except SolverError as exc:
            raise ShimError(
                "unsatisfiable",
                "UnsatisfiableError",
                f"{exc}".strip(),
                subdir=subdir,
                specs=list(specs),
                virtual_packages={k: v[0] if v[1] == "0" else " ".join(v) for k, v in vpkgs.items()},
            ) from None


#: A serving process's solves (:func:`serve`), by all they depend on (:meth:`CreateSolve.key`): a target
#: presolved while conda-lock imports (:func:`presolve`) is answered from here when conda-lock asks.
#: None in a one-shot shim process, which solves once anyway.
_SOLVED: dict[tuple[Any, ...], list[Any] | ShimError] | None = None
#: A serving process's count of the solves it ran and of those it answered from :data:`_SOLVED`.
_STATS: dict[str, int] = {"solved": 0, "reused": 0}


def keep_solves() -> None:
    """From now on this process keeps its solves (:func:`solve_once`): it serves a whole run."""
    global _SOLVED  # noqa: PLW0603 - one switch, set once by the serving process
    if _SOLVED is None:
        _SOLVED = {}


def solve_stats() -> dict[str, int]:
    """How many solves this process ran, and how many answers it gave from a kept one."""
    return dict(_STATS)


@dataclass(frozen=True)
class CreateSolve:
    """The inputs of a create solve (no locked packages): channels (routed), the subdir, the specs,
    the target's virtual packages, the environment the solve reads and the channels' credentials."""

    channels: Sequence[str]
    subdir: str
    specs: Sequence[str]
    vpkgs: Mapping[str, tuple[str, str]]
    environ: Mapping[str, str]
    auth: Mapping[str, tuple[str, str]]

    def key(self) -> tuple[Any, ...]:
        """Everything the solve's records depend on: the very strings py-rattler is given."""
        return (
            tuple(self.channels),
            self.subdir,
            tuple(self.specs),
            tuple(sorted(self.vpkgs.items())),
            self.environ.get(EXCLUDE_NEWER_ENV, "").strip(),
            self.environ.get(RATTLER_CACHE_ENV),
            self.environ.get(TIMEOUT_ENV),
            tuple(sorted(self.auth.items())),
        )


def solve_once(request: CreateSolve, *, ahead: bool = False) -> list[Any]:
    """:func:`solve` (no locked packages), or what this serving process found for the same inputs
    before: its records, or its error (unsatisfiable, or a channel that failed: not asked twice).
    ``ahead``: a presolve (one found solved already is no answer reused)."""
    import asyncio

    r = request
    if _SOLVED is None:
        return asyncio.run(solve(r.channels, r.subdir, r.specs, r.vpkgs, (), r.environ, r.auth))
    key = r.key()
    if key in _SOLVED:
        _STATS["reused"] += not ahead
        found = _SOLVED[key]
        if isinstance(found, ShimError):
            raise found
        return found
    _STATS["solved"] += 1
    try:
        records = asyncio.run(solve(r.channels, r.subdir, r.specs, r.vpkgs, (), r.environ, r.auth))
    except ShimError as err:
        _SOLVED[key] = err
        raise
    _SOLVED[key] = records
    return records


async def locked_records(
    installed: Sequence[Mapping[str, Any]],
    channels: Sequence[str],
    subdir: str,
    environ: Mapping[str, str] | None = None,
    auth: Mapping[str, tuple[str, str]] | None = None,
) -> list[Any]:
    """The channel records of the installed (locked) packages, matched by file name."""
    sparse = sparse_sources(channels, subdir)
    names = sorted({str(e["name"]) for e in installed if not str(e["name"]).startswith("__")})
    by_name: dict[str, list[Any]] = {}
    if sparse is not None:
        for source in sparse:
            available = set(source.package_names())
            for name in names:
                if name in available:
                    by_name.setdefault(name, []).extend(source.load_records(name))
    else:
        from rattler import Channel, Subdir

        platforms = [Subdir(subdir), Subdir("noarch")]
        result = await gateway(environ or {}, auth or {}).query(
            [Channel(c) for c in channels], platforms, names, recursive=False
        )
        for records in result:
            for found in records:
                by_name.setdefault(found.name.normalized, []).append(found)
    locked = []
    for entry in installed:
        match = record_for(entry, by_name.get(str(entry["name"]), []))
        if match is not None:
            locked.append(match)
    return locked


def record_for(entry: Mapping[str, Any], candidates: Sequence[Any]) -> Any | None:
    fn = str(entry.get("fn", ""))
    for record in candidates:
        if record.file_name == fn:
            return record
    return None
