"""A conda-compatible executable backed by py-rattler: exactly what conda-lock 4.0.x asks.

conda-lock drives a conda executable with a handful of commands (see its ``conda_solver.py``,
``invoke_conda.py``); this module answers them without conda, mamba or micromamba:

* ``--version``
* ``create --prefix P --dry-run --json [--override-channels] --channel URL... SPECS``
* ``info --json`` (only ``pkgs_dirs`` is read)
* ``list [--no-pip] -p P --json`` and ``install|update ... -p P --json --dry-run SPECS``
  (the ``--update`` path, over conda-lock's fake prefix of ``conda-meta/*.json`` records)

The TARGET's virtual packages come only from what conda-lock passes: its virtual-package channel
(a ``file://`` channel whose records are all ``virtual_system`` packages) and ``CONDA_OVERRIDE_*``
(a non-empty value sets the version — the build string for ``__archspec`` —, an empty one removes
the package). The subdir is ``CONDA_SUBDIR``. The host is never probed.

Exit codes and JSON are truthful even though py-rattler may crash at interpreter exit: the entry
point flushes and leaves with ``os._exit``. Failures print conda-style error JSON on stdout (which
conda-lock reads) and exit 1; when ``ENVSPEC_SHIM_REPORT`` names a file, the same JSON is written
there, so ``envspec lock`` can tell an unsatisfiable target from an unreachable channel.

**Mirrors are transport.** conda-lock passes the spec's canonical channel URLs
(``https://conda.anaconda.org/conda-forge``) and never sees a mirror. ``ENVSPEC_SHIM_MIRRORS``
(JSON, set by ``envspec lock`` in this process's environment only) maps each canonical channel to
the mirror to fetch from, with the mirror's credentials if it has some; the shim solves against
the mirror and answers with the canonical URLs, so conda-lock writes the same lockfile whichever
mirror served the repodata. The credentials go only into rattler's requests (an ``Authorization``
header added by a client middleware), never into argv, output, files or error messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

CONDA_VERSION = "25.11.0"  # the conda CLI whose behaviour (JSON shapes) this mimics
SHIM_NAME = "envspec-conda"
REPORT_ENV = "ENVSPEC_SHIM_REPORT"
#: The ``license`` every record of the tests' synthetic channel carries (tests/channel_factory.py):
#: a solve that picks one is reported, and envspec lock marks the lockfiles (never commit them).
TEST_CHANNEL_LICENSE = "LicenseRef-envspec-test-channel"
TEST_CHANNEL_REPORT_KEY = "envspec_test_channel"
MIRRORS_ENV = "ENVSPEC_SHIM_MIRRORS"
TIMEOUT_ENV = "ENVSPEC_CHANNEL_TIMEOUT"
RATTLER_CACHE_ENV = "ENVSPEC_RATTLER_CACHE"
#: ``envspec lock --exclude-newer``: an RFC 3339 UTC instant; records with a newer timestamp are ignored.
EXCLUDE_NEWER_ENV = "ENVSPEC_SHIM_EXCLUDE_NEWER"
_VIRTUAL_REPODATA_MAX_BYTES = 256 * 1024

# Virtual packages conda knows an override variable for: CONDA_OVERRIDE_<X> -> __<x>.
_OVERRIDABLE = ("archspec", "cuda", "glibc", "linux", "osx", "win", "unix")


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


# ---------------------------------------------------------------------------------------------
# Pure parts: the command line and the target's virtual packages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    action: str  # "version" | "create" | "install" | "update" | "info" | "list" | "config"
    prefix: str | None = None
    channels: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()
    json: bool = False
    dry_run: bool = False
    extra: tuple[str, ...] = field(default=())


_VALUE_OPTS = {"--prefix", "-p", "--name", "-n", "--channel", "-c", "--file", "--subdir", "--platform"}


def parse_command(argv: Sequence[str]) -> Command:
    """Parse the conda command line conda-lock builds. Unknown flags are kept, not fatal."""
    args = list(argv)
    if not args or args[0] in {"--version", "-V"}:
        return Command("version")
    action, rest = args[0], args[1:]
    prefix: str | None = None
    channels: list[str] = []
    specs: list[str] = []
    extra: list[str] = []
    flags: set[str] = set()
    i = 0
    while i < len(rest):
        arg = rest[i]
        if "=" in arg and arg.startswith("--") and arg.split("=", 1)[0] in _VALUE_OPTS:
            opt, value = arg.split("=", 1)
            rest[i : i + 1] = [opt, value]
            continue
        if arg in _VALUE_OPTS:
            value = rest[i + 1] if i + 1 < len(rest) else ""
            if arg in {"--prefix", "-p"}:
                prefix = value
            elif arg in {"--channel", "-c"}:
                channels.append(value)
            else:
                extra += [arg, value]
            i += 2
            continue
        if arg.startswith("-"):
            flags.add(arg)
        else:
            specs.append(arg)
        i += 1
    return Command(
        action=action,
        prefix=prefix,
        channels=tuple(channels),
        specs=tuple(specs),
        json="--json" in flags,
        dry_run="--dry-run" in flags or "-d" in flags,
        extra=tuple(sorted(flags)) + tuple(extra),
    )


def target_virtual_packages(
    subdir: str,
    channel_records: Sequence[Mapping[str, Any]],
    environ: Mapping[str, str],
) -> dict[str, tuple[str, str]]:
    """The target's virtual packages as ``{name: (version, build)}``.

    ``channel_records`` are the records of conda-lock's virtual-package channel for ``subdir``
    (highest version wins per name, like conda); ``CONDA_OVERRIDE_<X>`` then sets (non-empty) or
    removes (empty) ``__<x>``. With no virtual-package channel at all, ``__unix``/``__win`` follow
    the subdir. Never the host's packages.
    """
    from packaging.version import InvalidVersion, Version

    def key(version: str) -> tuple[int, Any]:
        try:
            return (1, Version(version))
        except InvalidVersion:
            return (0, version)

    packages: dict[str, tuple[str, str]] = {}
    for record in channel_records:
        name = str(record["name"])
        version = str(record.get("version", "0"))
        build = str(record.get("build_string") or record.get("build") or "0")
        if name not in packages or key(version) > key(packages[name][0]):
            packages[name] = (version, build)
    if not channel_records:
        family = subdir.split("-", maxsplit=1)[0]
        if family in {"linux", "osx"}:
            packages["__unix"] = ("0", "0")
        elif family == "win":
            packages["__win"] = ("0", "0")
    for short in _OVERRIDABLE:
        var = f"CONDA_OVERRIDE_{short.upper()}"
        if var not in environ:
            continue
        value = environ[var].strip()
        name = f"__{short}"
        if not value:
            packages.pop(name, None)
        elif short == "archspec":
            packages[name] = ("1", value)
        else:
            old_build = packages.get(name, ("", "0"))[1]
            packages[name] = (value, old_build)
    return dict(sorted(packages.items()))


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


def _read_virtual_channel(url: str, subdir: str) -> list[dict[str, Any]] | None:
    """Records of ``url`` if it is a virtual-package-only local channel, else None."""
    root = file_url_path(url)
    if root is None:
        return None
    found = False
    records: list[dict[str, Any]] = []
    for sub in (subdir, "noarch"):
        path = root / sub / "repodata.json"
        try:
            if path.stat().st_size > _VIRTUAL_REPODATA_MAX_BYTES:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        entries = [*data.get("packages", {}).values(), *data.get("packages.conda", {}).values()]
        if entries and not all(
            str(e.get("name", "")).startswith("__") and e.get("package_type") == "virtual_system" for e in entries
        ):
            return None
        found = found or bool(entries) or sub == subdir
        records += entries
    return records if found else None


@dataclass(frozen=True)
class Route:
    """Where the shim fetches each channel conda-lock named, and how answers map back."""

    channels: tuple[str, ...]  # what to fetch from (mirrors applied), in conda-lock's order
    canonical: Mapping[str, str]  # mirror URL -> the canonical channel URL conda-lock asked for
    auth: Mapping[str, tuple[str, str]]  # mirror URL -> (username, password)


def read_mirrors(environ: Mapping[str, str]) -> list[dict[str, str]]:
    """``ENVSPEC_SHIM_MIRRORS``: ``[{"channel": URL, "mirror": URL[, "username", "password"]}]``."""
    text = environ.get(MIRRORS_ENV, "").strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError:
        raise ShimError("usage", "CondaValueError", f"{MIRRORS_ENV} is not valid JSON") from None
    if not isinstance(data, list) or not all(
        isinstance(e, dict) and isinstance(e.get("channel"), str) and isinstance(e.get("mirror"), str) for e in data
    ):
        raise ShimError("usage", "CondaValueError", f"{MIRRORS_ENV}: expected a list of {{channel, mirror}}")
    return data


def route(channels: Sequence[str], mirrors: Sequence[Mapping[str, str]]) -> Route:
    """Map conda-lock's (canonical) channels to their mirrors (pure)."""
    by_channel = {str(m["channel"]).rstrip("/"): m for m in mirrors}
    out: list[str] = []
    canonical: dict[str, str] = {}
    auth: dict[str, tuple[str, str]] = {}
    for channel in channels:
        m = by_channel.get(channel.rstrip("/"))
        if m is None:
            out.append(channel)
            continue
        mirror = str(m["mirror"]).rstrip("/")
        out.append(mirror)
        canonical[mirror] = channel.rstrip("/")
        if m.get("username") is not None or m.get("password") is not None:
            auth[mirror] = (str(m.get("username", "")), str(m.get("password", "")))
    return Route(tuple(out), canonical, auth)


def canonical_url(url: str, canonical: Mapping[str, str]) -> str:
    """``url`` under a mirror -> the same path under the canonical channel (longest match)."""
    plain = url.rstrip("/")
    best = max((m for m in canonical if plain == m or plain.startswith(m + "/")), key=len, default=None)
    if best is None:
        return url
    return canonical[best] + url[len(best) :]


# ---------------------------------------------------------------------------------------------
# Effects: solving with py-rattler
# ---------------------------------------------------------------------------------------------


def _subdir(environ: Mapping[str, str]) -> str:
    subdir = environ.get("CONDA_SUBDIR", "").strip()
    if not subdir:
        raise ShimError(
            "usage",
            "CondaValueError",
            "CONDA_SUBDIR is not set: envspec's conda shim only solves for an explicit target "
            "subdir, never for the host",
        )
    return subdir


def _split_channels(channels: Sequence[str], subdir: str) -> tuple[list[str], list[dict[str, Any]]]:
    real: list[str] = []
    virtual: list[dict[str, Any]] = []
    for url in channels:
        if url in {"nodefaults", "msys2"}:
            continue
        records = _read_virtual_channel(url, subdir)
        if records is None:
            real.append(url)
        else:
            virtual += [r for r in records if r.get("subdir") in {subdir, "noarch", None}]
    return real, virtual


#: What one process opened, kept for its later solves: a serving process (:func:`serve`) opens each
#: subdir's repodata once per ``envspec lock`` run (noarch once, not once per target).
_SPARSE: dict[tuple[str, str], Any] = {}
_GATEWAYS: dict[tuple[str | None, tuple[tuple[str, str, str], ...]], Any] = {}


def _sparse_sources(channels: Sequence[str], subdir: str) -> list[Any] | None:
    """SparseRepoData for local channels (fast, lazy); None when a channel is remote."""
    from rattler import Channel, SparseRepoData

    sources: list[Any] = []
    for url in channels:
        root = file_url_path(url)
        if root is None:
            return None
        if not (root / "noarch" / "repodata.json").is_file():
            raise ShimError(
                "channel_unreachable",
                "UnavailableInvalidChannel",
                f"channel {url} is unreachable: {root / 'noarch' / 'repodata.json'} does not exist",
                url=url,
            )
        channel_url = root.as_uri() if not url.startswith("file://") else url
        for sub in (subdir, "noarch"):
            path = root / sub / "repodata.json"
            key = (channel_url, sub)
            if key not in _SPARSE and path.is_file():
                _SPARSE[key] = SparseRepoData(Channel(channel_url), sub, path)
            if key in _SPARSE:
                sources.append(_SPARSE[key])
    return sources


def _gateway(environ: Mapping[str, str], auth: Mapping[str, tuple[str, str]]) -> Any:
    """rattler's gateway (one per cache folder and credentials, kept: it holds the repodata it read)."""
    key = (environ.get(RATTLER_CACHE_ENV), tuple(sorted((m, u, p) for m, (u, p) in auth.items())))
    if key not in _GATEWAYS:
        _GATEWAYS[key] = _new_gateway(environ, auth)
    return _GATEWAYS[key]


def _new_gateway(environ: Mapping[str, str], auth: Mapping[str, tuple[str, str]]) -> Any:
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


def _channel_timeout(environ: Mapping[str, str]) -> float:
    try:
        return float(environ.get(TIMEOUT_ENV, "30"))
    except ValueError:
        return 30.0


def _too_slow(channels: Sequence[str], timeout: float) -> ShimError:
    return ShimError(
        "channel_unreachable",
        "CondaHTTPError",
        f"fetching repodata from {', '.join(channels)} took longer than {timeout:g} s",
        url=channels[0] if channels else "",
    )


def _explain_fetch_error(exc: BaseException, channels: Sequence[str]) -> ShimError:
    text = str(exc)
    url = next((c for c in channels if c in text), channels[0] if channels else "")
    return ShimError(
        "channel_unreachable",
        "CondaHTTPError",
        f"channel {url} is unreachable: {text.strip().splitlines()[0] if text.strip() else type(exc).__name__}",
        url=url,
    )


async def _solve(  # noqa: PLR0917 - one solve, all of its inputs
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

    timeout = _channel_timeout(environ)
    sparse = _sparse_sources(channels, subdir)
    cutoff = exclude_newer(environ)
    dated: dict[str, Any] = {"exclude_newer": cutoff, "timestamp_policy": "allow-missing"} if cutoff else {}
    try:
        if sparse is not None:
            solved: list[Any] = await solve_with_sparse_repodata(
                specs, sparse, locked_packages=list(locked), virtual_packages=virtual, **dated
            )
            return solved
        gateway = _gateway(environ, auth or {})
        return await asyncio.wait_for(
            solve(
                [Channel(c) for c in channels],
                specs,
                gateway=gateway,
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
    except TimeoutError:
        raise _too_slow(channels, timeout) from None
    except ShimError:
        raise
    except Exception as exc:  # rattler's fetch/gateway errors have no common base class
        raise _explain_fetch_error(exc, channels) from None


def _fetch_entry(record: Any, canonical: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(record.to_json())
    entry.setdefault("fn", record.file_name)
    entry["url"] = canonical_url(str(entry.get("url") or record.url), canonical)
    entry["channel"] = canonical_url(str(entry.get("channel") or record.channel), canonical).rstrip("/")
    entry.pop("indexed_timestamp", None)
    return entry


def _link_entry(record: Any, canonical: Mapping[str, str]) -> dict[str, Any]:
    fn = str(record.file_name)
    dist = fn.removesuffix(".conda").removesuffix(".tar.bz2")
    url = canonical_url(str(record.url), canonical)
    return {
        "base_url": url.rsplit("/", 2)[0],
        "build_number": int(record.build_number),
        "build_string": str(record.build),
        "channel": canonical_url(str(record.channel), canonical).rstrip("/"),
        "dist_name": dist,
        "name": record.name.normalized,
        "platform": str(record.subdir),
        "version": str(record.version),
    }


def _plan(records: Sequence[Any], prefix: str | None, canonical: Mapping[str, str] | None = None) -> dict[str, Any]:
    """conda's dry-run JSON; URLs under a mirror are reported under their canonical channel."""
    ordered = sorted(records, key=lambda r: r.name.normalized)
    back = canonical or {}
    return {
        "actions": {
            "FETCH": [_fetch_entry(r, back) for r in ordered],
            "LINK": [_link_entry(r, back) for r in ordered],
            "PREFIX": prefix or "",
        },
        "dry_run": True,
        "prefix": prefix or "",
        "success": True,
    }


def _note_test_channel(records: Sequence[Any], environ: Mapping[str, str]) -> None:
    """Records of the tests' synthetic channel in a solution: listed in the report file for envspec lock."""
    marked = sorted({r.name.normalized for r in records if getattr(r, "license", None) == TEST_CHANNEL_LICENSE})
    path = environ.get(REPORT_ENV)
    if marked and path:
        with contextlib.suppress(OSError):
            Path(path).write_text(json.dumps({TEST_CHANNEL_REPORT_KEY: marked}), encoding="utf-8")


def _installed(prefix: str) -> list[dict[str, Any]]:
    meta = Path(prefix) / "conda-meta"
    out: list[dict[str, Any]] = []
    for path in sorted(meta.glob("*.json")):
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def _record_for(entry: Mapping[str, Any], candidates: Sequence[Any]) -> Any | None:
    fn = str(entry.get("fn", ""))
    for record in candidates:
        if record.file_name == fn:
            return record
    return None


async def _locked_records(
    installed: Sequence[Mapping[str, Any]],
    channels: Sequence[str],
    subdir: str,
    environ: Mapping[str, str] | None = None,
    auth: Mapping[str, tuple[str, str]] | None = None,
) -> list[Any]:
    """The channel records of the installed (locked) packages, matched by file name."""
    sparse = _sparse_sources(channels, subdir)
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
        result = await _gateway(environ or {}, auth or {}).query(
            [Channel(c) for c in channels], platforms, names, recursive=False
        )
        for records in result:
            for found in records:
                by_name.setdefault(found.name.normalized, []).append(found)
    locked = []
    for entry in installed:
        match = _record_for(entry, by_name.get(str(entry["name"]), []))
        if match is not None:
            locked.append(match)
    return locked


def _do_create(cmd: Command, environ: Mapping[str, str]) -> dict[str, Any]:
    subdir = _subdir(environ)
    routed = route(cmd.channels, read_mirrors(environ))
    channels, virtual_records = _split_channels(routed.channels, subdir)
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    records = _solve_once(channels, subdir, cmd.specs, vpkgs, environ, routed.auth)
    _note_test_channel(records, environ)
    return _plan(records, cmd.prefix, routed.canonical)


#: A serving process's solves (:func:`serve`), by all they depend on (:func:`_solve_key`): a target
#: presolved while conda-lock imports (:func:`presolve`) is answered from here when conda-lock asks.
#: None in a one-shot shim process, which solves once anyway.
_SOLVED: dict[tuple[Any, ...], list[Any] | ShimError] | None = None
#: A serving process's count of the solves it ran and of those it answered from :data:`_SOLVED`.
_STATS: dict[str, int] = {"solved": 0, "reused": 0}


def _solve_key(  # noqa: PLR0917 - the inputs of one solve
    channels: Sequence[str],
    subdir: str,
    specs: Sequence[str],
    vpkgs: Mapping[str, tuple[str, str]],
    environ: Mapping[str, str],
    auth: Mapping[str, tuple[str, str]],
) -> tuple[Any, ...]:
    """Everything a create solve's records depend on: the very strings py-rattler is given."""
    return (
        tuple(channels),
        subdir,
        tuple(specs),
        tuple(sorted(vpkgs.items())),
        environ.get(EXCLUDE_NEWER_ENV, "").strip(),
        environ.get(RATTLER_CACHE_ENV),
        environ.get(TIMEOUT_ENV),
        tuple(sorted(auth.items())),
    )


def _solve_once(  # noqa: PLR0917 - the inputs of one solve
    channels: Sequence[str],
    subdir: str,
    specs: Sequence[str],
    vpkgs: Mapping[str, tuple[str, str]],
    environ: Mapping[str, str],
    auth: Mapping[str, tuple[str, str]],
) -> list[Any]:
    """:func:`_solve` (no locked packages), or what this serving process found for the same inputs
    before: its records, or its error (unsatisfiable, or a channel that failed: not asked twice)."""
    import asyncio

    if _SOLVED is None:
        return asyncio.run(_solve(channels, subdir, specs, vpkgs, (), environ, auth))
    key = _solve_key(channels, subdir, specs, vpkgs, environ, auth)
    if key in _SOLVED:
        _STATS["reused"] += 1
        found = _SOLVED[key]
        if isinstance(found, ShimError):
            raise found
        return found
    _STATS["solved"] += 1
    try:
        records = asyncio.run(_solve(channels, subdir, specs, vpkgs, (), environ, auth))
    except ShimError as err:
        _SOLVED[key] = err
        raise
    _SOLVED[key] = records
    return records


#: What :func:`presolve` reads of its request's ``env``: the variables a solve depends on.
PRESOLVE_ENV = (MIRRORS_ENV, EXCLUDE_NEWER_ENV, TIMEOUT_ENV, RATTLER_CACHE_ENV)


def presolve(request: Mapping[str, Any]) -> None:
    """Solve a target before conda-lock asks, and keep the answer (:data:`_SOLVED`).

    ``request``: ``{"subdir", "channels"`` (conda-lock's, canonical), ``"specs"`` (the environment
    file's), ``"virtual_packages"`` (``{name: "version[ build]"}``, the target's), ``"env"``
    (:data:`PRESOLVE_ENV`)``}``. Each spec is written as conda-lock writes it (``python=3.12`` ->
    ``python 3.12.*``) and the inputs are keyed as for conda-lock's own request (:func:`_solve_key`):
    its answer is used only where conda-lock asks for exactly the same solve; a prediction that
    differs (another spec order, say) only costs a second solve. Raises what the solve raises."""
    from rattler import MatchSpec

    environ = {str(k): str(v) for k, v in request.get("env", {}).items() if k in PRESOLVE_ENV}
    subdir = str(request["subdir"])
    environ["CONDA_SUBDIR"] = subdir
    routed = route([str(c) for c in request["channels"]], read_mirrors(environ))
    channels, virtual_records = _split_channels(routed.channels, subdir)
    for name, value in dict(request.get("virtual_packages", {})).items():
        version, _, build = str(value).partition(" ")
        virtual_records.append({"name": str(name), "version": version, "build_string": build or "0"})
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    specs = [str(MatchSpec(str(s))) for s in request["specs"]]  # a spec that does not parse: no presolve
    _solve_once(channels, subdir, specs, vpkgs, environ, routed.auth)


def _do_update(cmd: Command, environ: Mapping[str, str]) -> dict[str, Any]:
    """Move only the named packages: the rest of the prefix is locked (preferred) as is."""
    import asyncio

    from rattler import MatchSpec

    subdir = _subdir(environ)
    if cmd.prefix is None:
        raise ShimError("usage", "CondaValueError", f"{cmd.action} needs --prefix")
    routed = route(cmd.channels, read_mirrors(environ))
    channels, virtual_records = _split_channels(routed.channels, subdir)
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    installed = [e for e in _installed(cmd.prefix) if not str(e["name"]).startswith("__")]
    to_update = {MatchSpec(s, strict=False).name.normalized for s in cmd.specs}
    keep = [e for e in installed if e["name"] not in to_update]
    specs = [*cmd.specs, *(str(e["name"]) for e in keep)]

    async def run() -> list[Any]:
        timeout = _channel_timeout(environ)
        try:  # the same channel timeout as the solve: an unresponsive channel must not hang --update
            locked = await asyncio.wait_for(
                _locked_records(keep, channels, subdir, environ, routed.auth), timeout=timeout
            )
        except TimeoutError:
            raise _too_slow(channels, timeout) from None
        except ShimError:
            raise
        except Exception as exc:  # rattler's fetch/gateway errors have no common base class
            raise _explain_fetch_error(exc, channels) from None
        return await _solve(channels, subdir, specs, vpkgs, locked, environ, routed.auth)

    records = asyncio.run(run())
    _note_test_channel(records, environ)
    before = {str(e["name"]): str(e.get("fn", "")) for e in installed}
    changed = [r for r in records if before.get(r.name.normalized) != r.file_name]
    plan = _plan(changed, cmd.prefix, routed.canonical)
    gone = [e for e in installed if e["name"] not in {r.name.normalized for r in records}]
    plan["actions"]["UNLINK"] = [
        {"name": e["name"], "version": e.get("version"), "build_string": e.get("build")} for e in gone
    ] + [
        {"name": name, "version": None, "build_string": None}
        for name in sorted({r.name.normalized for r in changed} & set(before))
    ]
    return plan


def _do_list(cmd: Command) -> list[dict[str, Any]]:
    if cmd.prefix is None:
        raise ShimError("usage", "CondaValueError", "list needs --prefix")
    out = []
    for entry in _installed(cmd.prefix):
        url = str(entry.get("url", ""))
        fn = str(entry.get("fn", ""))
        out.append(
            {
                "base_url": url.rsplit("/", 2)[0] if url else "",
                "build_number": int(entry.get("build_number", 0)),
                "build_string": str(entry.get("build", "")),
                "channel": str(entry.get("channel", "")),
                "dist_name": fn.removesuffix(".conda").removesuffix(".tar.bz2"),
                "name": str(entry["name"]),
                "platform": str(entry.get("subdir", "")),
                "version": str(entry.get("version", "")),
            }
        )
    return out


def _pkgs_dirs(environ: Mapping[str, str]) -> list[str]:
    dirs = environ.get("CONDA_PKGS_DIRS", "")
    return [d for d in dirs.split(os.pathsep) if d] or [str(Path(tempfile.gettempdir()) / "envspec-conda-pkgs")]


def _do_info(environ: Mapping[str, str]) -> dict[str, Any]:
    subdir = environ.get("CONDA_SUBDIR", "")
    return {
        "conda_version": CONDA_VERSION,
        "pkgs_dirs": _pkgs_dirs(environ),
        "platform": subdir,
        "channels": [],
        "envs": [],
        "envspec_shim": True,
    }


def run(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[int, str]:
    """Answer one conda command: ``(exit code, stdout text)``. Raises nothing."""
    cmd = parse_command(argv)
    try:
        if cmd.action == "version":
            return 0, f"conda {CONDA_VERSION}\n"
        if cmd.action == "create":
            payload: Any = _do_create(cmd, environ)
        elif cmd.action in {"install", "update"}:
            payload = _do_update(cmd, environ)
        elif cmd.action == "list":
            payload = _do_list(cmd)
        elif cmd.action == "info":
            payload = _do_info(environ)
        elif cmd.action == "config" and "pkgs_dirs" in cmd.specs:
            payload = {"pkgs_dirs": _pkgs_dirs(environ)}
        else:
            raise ShimError(
                "usage",
                "CommandNotFoundError",
                f"envspec's conda shim does not implement `{' '.join(argv)}` "
                "(it answers what conda-lock asks; use --solver conda|mamba|micromamba for more)",
            )
    except ShimError as err:
        report = scrub(err.to_json(), environ)
        path = environ.get(REPORT_ENV)
        if path:
            with contextlib.suppress(OSError):
                Path(path).write_text(json.dumps(report, indent=2), encoding="utf-8")
        return 1, json.dumps(report, indent=2) + "\n"
    return 0, json.dumps(payload, indent=2) + "\n"


def scrub(report: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """An error report with every mirror password masked (rattler may quote a URL it fetched)."""
    from envspec.channels import MASK, redact

    secrets: list[str] = []
    with contextlib.suppress(ShimError):
        secrets = [str(m["password"]) for m in read_mirrors(environ) if m.get("password")]

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            text = redact(value)
            for secret in secrets:
                text = text.replace(secret, MASK)
            return text
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    out: dict[str, Any] = clean(report)
    return out


def _entry() -> None:
    """Process entry point: print, flush and ``os._exit`` (py-rattler may crash at exit)."""
    try:
        code, text = run(sys.argv[1:], os.environ)
    except BaseException as exc:  # the exit code must be truthful no matter what
        code, text = 1, json.dumps(scrub(ShimError("internal", "CondaError", repr(exc)).to_json(), os.environ)) + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


# ---------------------------------------------------------------------------------------------
# One process for a whole run: the solver service
# ---------------------------------------------------------------------------------------------

#: ``python -m envspec.lock.conda_shim --envspec-serve SOCKET``: see :func:`serve`.
SERVE_FLAG = "--envspec-serve"
#: The commands that need py-rattler (and so go to the service); the others are answered in place.
SOLVES = frozenset({"create", "install", "update"})


def _read_all(conn: Any) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def serve(path: str) -> None:
    """Answer shim commands sent to the Unix socket ``path`` until stdin closes (the ``envspec lock``
    run that started this process has ended), then leave with ``os._exit``. Each line written to
    stdin meanwhile is a ``{"presolve": ...}`` request (:func:`presolve`): targets solved while
    conda-lock imports, whose answers are ready when conda-lock asks.

    One such process per ``envspec lock`` run replaces one interpreter per solve, and keeps what it
    opened (each subdir's repodata, rattler's gateway) for the next target's solve. A request is one
    JSON line ``{"argv": [...], "env": {...}}``; the answer ``{"code": N, "stdout": TEXT}``, exactly
    what :func:`run` returns (``{"stats": true}``: :data:`_STATS`). Solves run one at a time, a
    request's before any presolve still to do. A py-rattler exception or panic answers as an
    error; a crash of this whole process ends the in-flight request (the client says so) and no more.
    """
    import socket
    import threading

    lock = threading.Lock()  # one solve at a time
    asked = threading.Condition()  # requests waiting or running: presolves wait for none
    pending = 0
    try:
        server = socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_STREAM)  # noqa: B009 - absent on Windows
        server.bind(path)
        server.listen(16)
    except OSError as exc:  # e.g. a path too long for a Unix socket: the runner runs the shim instead
        sys.stderr.write(f"envspec: no solver process ({exc}); solving with one shim process per solve\n")
        sys.stderr.flush()
        os._exit(1)

    def answer(conn: Any) -> None:
        nonlocal pending
        environ: dict[str, str] = {}
        with conn:
            try:
                request = json.loads(conn.makefile("rb").readline())
                if request.get("stats"):
                    code, text = 0, json.dumps(_STATS)
                else:
                    environ = {str(k): str(v) for k, v in request["env"].items()}
                    with asked:
                        pending += 1
                    try:
                        with lock:
                            code, text = run([str(a) for a in request["argv"]], environ)
                    finally:
                        with asked:
                            pending -= 1
                            asked.notify_all()
            except BaseException as exc:  # pyo3's PanicException is a BaseException: answered, not fatal
                error = ShimError("internal", "CondaError", repr(exc)).to_json()
                code, text = 1, json.dumps(scrub(error, environ)) + "\n"
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps({"code": code, "stdout": text}).encode("utf-8") + b"\n")

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    global _SOLVED  # noqa: PLW0603 - this process serves: it keeps its solves
    _SOLVED = {}
    threading.Thread(target=accept, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with contextlib.suppress(ImportError):
        import rattler  # noqa: F401 - now, not in the first solve
    for line in _lines(0):
        with asked:
            asked.wait_for(lambda: pending == 0)
        with lock, contextlib.suppress(BaseException):  # a failed presolve is solved again when asked
            presolve(json.loads(line)["presolve"])
    os._exit(0)


def _lines(fd: int) -> Iterator[bytes]:
    """The lines written to ``fd`` until it ends (or fails)."""
    pending = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(fd, 1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            yield from (line for line in lines if line.strip())


@dataclass
class Service:
    """A solver process (:func:`serve`) started by :func:`start_service`."""

    proc: subprocess.Popen[bytes]
    socket: str
    folder: str
    ready: bool | None = None  # unknown until :meth:`is_ready` has looked

    def presolve(self, request: Mapping[str, Any]) -> None:
        """Hand it a target to solve now (see :func:`presolve`); a service that is gone is left alone."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write(json.dumps({"presolve": request}).encode("utf-8") + b"\n")
            self.proc.stdin.flush()

    def is_ready(self, timeout: float = 60.0) -> bool:
        """Did it start (its ``ready`` line)? False if it ended or stayed silent ``timeout`` s."""
        if self.ready is None:
            self.ready = service_ready(self.proc, timeout)
        return self.ready

    def stop(self) -> None:
        """Close its stdin (it leaves once a presolve in progress ends), reap it, remove its folder."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_service(env: Mapping[str, str] | None = None) -> Service | None:
    """A solver process (:func:`serve`) on a socket in a private folder; None where Unix sockets
    do not exist. It leaves when its stdin closes (:meth:`Service.stop`, or this process ending)."""
    import socket

    if not hasattr(socket, "AF_UNIX"):
        return None
    try:
        folder = tempfile.mkdtemp(prefix="envspec-solve-")  # 0700: only this user reaches the socket
    except OSError:
        return None
    path = str(Path(folder) / "s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "envspec.lock.conda_shim", SERVE_FLAG, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=None if env is None else dict(env),
    )
    return Service(proc, path, folder)


def service_ready(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    """Did the service start (its ``ready`` line)? False if it ended or stayed silent."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready) and proc.stdout.readline().strip() == b"ready"


def service_stats(path: str) -> dict[str, int]:
    """How many solves the service at ``path`` ran, and how many answers it reused (a presolve's)."""
    import socket

    with socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_STREAM) as conn:  # noqa: B009 - absent on Windows
        conn.connect(path)
        conn.sendall(b'{"stats": true}\n')
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(_read_all(conn))
    stats: dict[str, int] = json.loads(reply["stdout"])
    return stats


def ask(path: str, argv: Sequence[str], environ: Mapping[str, str]) -> tuple[int, str]:
    """One command answered by the service at ``path``: ``(exit code, stdout text)`` as :func:`run`.

    Raises OSError when the service cannot be reached (the caller runs the shim itself instead);
    a service that ends before answering (py-rattler crashed it) is an error answer, reported like
    the shim's own errors (``ENVSPEC_SHIM_REPORT``)."""
    import socket

    family = getattr(socket, "AF_UNIX", None)  # absent on Windows, where no service is started
    if family is None:
        raise OSError("no Unix sockets here")
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall(json.dumps({"argv": list(argv), "env": dict(environ)}).encode("utf-8") + b"\n")
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)
        data = _read_all(conn)
    if data.endswith(b"\n"):
        reply = json.loads(data)
        return int(reply["code"]), str(reply["stdout"])
    err = ShimError(
        "internal",
        "CondaError",
        "py-rattler's solver process ended during this solve (it crashed); the other targets are unaffected",
    )
    report = scrub(err.to_json(), environ)
    if environ.get(REPORT_ENV):
        with contextlib.suppress(OSError):
            Path(environ[REPORT_ENV]).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 1, json.dumps(report, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# The executable conda-lock is given with --conda
# ---------------------------------------------------------------------------------------------


def _script_text() -> tuple[str, str]:
    package_parent = str(Path(__file__).resolve().parents[2])
    if os.name == "nt":
        return (
            f"{SHIM_NAME}.bat",
            (
                "@echo off\r\n"
                f'set "PYTHONPATH={package_parent};%PYTHONPATH%"\r\n'
                f'"{sys.executable}" -m envspec.lock.conda_shim %*\r\n'
            ),
        )
    quoted_py = sys.executable.replace("'", "'\\''")
    quoted_pp = package_parent.replace("'", "'\\''")
    return (
        SHIM_NAME,
        (
            "#!/bin/sh\n"
            "# Generated by envspec: a conda-compatible executable backed by py-rattler, for conda-lock.\n"
            f"PYTHONPATH='{quoted_pp}'${{PYTHONPATH:+:$PYTHONPATH}}\n"
            "export PYTHONPATH\n"
            f"exec '{quoted_py}' -m envspec.lock.conda_shim \"$@\"\n"
        ),
    )


def shim_executable(cache_dir: Path) -> Path:
    """Write (atomically, only when it changed) the ``envspec-conda`` wrapper; return its path."""
    name, text = _script_text()
    path = cache_dir / "bin" / name
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data and os.access(path, os.X_OK):
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(0o755)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE_FLAG] and len(sys.argv) == 3:
        serve(sys.argv[2])
    _entry()
