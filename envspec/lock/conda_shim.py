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

The solving is :mod:`envspec.lock.rattler_solve`'s; one process answering a whole run is
:mod:`envspec.lock.solver_service`. What is read by path (a local channel's ``repodata.json``,
conda-lock's virtual-package channel, the fake prefix's ``conda-meta`` records) is read only as a
regular file: a FIFO or a device there is refused in one line, never read (it could block or never end).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envspec.fsutil import NotRegularFile, read_regular_text
from envspec.lock.rattler_solve import (
    CreateSolve,
    ShimError,
    channel_errors,
    channel_timeout,
    file_url_path,
    locked_records,
    solve,
    solve_once,
)

CONDA_VERSION = "25.11.0"  # the conda CLI whose behaviour (JSON shapes) this mimics
SHIM_NAME = "envspec-conda"
REPORT_ENV = "ENVSPEC_SHIM_REPORT"
#: The ``license`` every record of the tests' synthetic channel carries (tests/channel_factory.py):
#: a solve that picks one is reported, and envspec lock marks the lockfiles (never commit them).
TEST_CHANNEL_LICENSE = "LicenseRef-envspec-test-channel"
TEST_CHANNEL_REPORT_KEY = "envspec_test_channel"
MIRRORS_ENV = "ENVSPEC_SHIM_MIRRORS"
_VIRTUAL_REPODATA_MAX_BYTES = 256 * 1024
_OVERRIDABLE = ("archspec", "cuda", "glibc", "linux", "osx", "win", "unix")


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
            data = json.loads(read_regular_text(path, _VIRTUAL_REPODATA_MAX_BYTES))
        except NotRegularFile:  # larger than a virtual channel's, or a FIFO/device: not one (never read)
            return None
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


def split_channels(channels: Sequence[str], subdir: str) -> tuple[list[str], list[dict[str, Any]]]:
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
    """The records of conda-lock's fake prefix (``conda-meta/*.json``): regular files only."""
    meta = Path(prefix) / "conda-meta"
    out: list[dict[str, Any]] = []
    for path in sorted(meta.glob("*.json")):
        try:
            out.append(json.loads(read_regular_text(path)))
        except NotRegularFile:
            raise ShimError("usage", "CondaValueError", f"{path} is not a regular file (or too large)") from None
    return out


def _do_create(cmd: Command, environ: Mapping[str, str]) -> dict[str, Any]:
    subdir = _subdir(environ)
    routed = route(cmd.channels, read_mirrors(environ))
    channels, virtual_records = split_channels(routed.channels, subdir)
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    records = solve_once(CreateSolve(channels, subdir, cmd.specs, vpkgs, environ, routed.auth))
    _note_test_channel(records, environ)
    return _plan(records, cmd.prefix, routed.canonical)


def _do_update(cmd: Command, environ: Mapping[str, str]) -> dict[str, Any]:
    """Move only the named packages: the rest of the prefix is locked (preferred) as is."""
    import asyncio

    from rattler import MatchSpec

    subdir = _subdir(environ)
    if cmd.prefix is None:
        raise ShimError("usage", "CondaValueError", f"{cmd.action} needs --prefix")
    routed = route(cmd.channels, read_mirrors(environ))
    channels, virtual_records = split_channels(routed.channels, subdir)
    vpkgs = target_virtual_packages(subdir, virtual_records, environ)
    installed = [e for e in _installed(cmd.prefix) if not str(e["name"]).startswith("__")]
    to_update = {MatchSpec(s, strict=False).name.normalized for s in cmd.specs}
    keep = [e for e in installed if e["name"] not in to_update]
    specs = [*cmd.specs, *(str(e["name"]) for e in keep)]

    async def run() -> list[Any]:
        timeout = channel_timeout(environ)
        with channel_errors(channels, timeout):  # the solve's timeout: an unresponsive channel must not hang --update
            locked = await asyncio.wait_for(
                locked_records(keep, channels, subdir, environ, routed.auth), timeout=timeout
            )
        return await solve(channels, subdir, specs, vpkgs, locked, environ, routed.auth)

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
    _entry()
