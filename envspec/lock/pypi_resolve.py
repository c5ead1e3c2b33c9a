"""The PyPI part of a target, resolved by uv on top of the target's conda solution.

conda-lock solves the conda part alone; then, per target, ``uv pip compile`` resolves the pip
requirements for the target's platform (``--python-platform``: the manylinux level from
``__glibc``, the macOS deployment target from ``__osx`` as ``MACOSX_DEPLOYMENT_TARGET``) and its
python (the conda solution's), with ``--generate-hashes``, ``--no-build`` (a project of
``pip_allow_sdist`` that has no wheel for the target gets a second run, :func:`run_uv`, where it
alone may be built) and, as its **first index**, a local folder of metadata-only
stand-in wheels: one per PyPI distribution the conda solution provides (by the shipped mapping,
:mod:`envspec.lock.pypi_mapping`), named and versioned as conda solved it and with no
dependencies. uv's default ``first-index`` strategy then never asks the real index about those
names: torch is conda's pytorch at its version, so PyPI torch's metadata (and its ``nvidia-*`` and
``triton`` wheels) never enter, and a requirement that contradicts the conda solution fails at
once with uv's explanation. The stand-ins are dropped from the result; everything else uv
returns is written, or refused by name (:mod:`envspec.lock.pypi`): nothing is dropped silently.

The output is uv's PEP 751 ``pylock.toml``; of the compatible wheels it lists for a package, the
one the target installs (by its tags) is locked, with its URL and sha256.

Why stand-ins rather than uv's ``--overrides NAME==VERSION`` plus ``dependency-metadata``
(measured 2026-12-07, uv 0.13.10): that route still asks the index about every conda-provided
name (torch's page lists thousands of files) and fails when the index lacks the name or conda's
exact version (a mirror or private index without numpy: "numpy was not found in the package
registry"), while the stand-ins need nothing from the index. It was faster against pypi.org
(~1.0 s against 1.5-2.4 s of uv time for ten requirements on linux-64); both are within the
2x-of-``uv pip compile`` goal (``benchmarks/bench_pypi.py``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from envspec.errors import ChannelUnreachable, EnvspecError, SpecError, ToolFailed, UnsatisfiableError

STANDIN_INDEX: Final = "envspec-conda"  # uv's name of the stand-in index
#: The stand-ins' upload time (PEP 700): before any cutoff, so `--exclude-newer` never drops one
STANDIN_UPLOAD_TIME: Final = "1970-01-01T00:00:00Z"
SIMPLE_JSON: Final = "application/vnd.pypi.simple.v1+json"  # PEP 691
PYPI_INDEX: Final = "envspec-pypi"  # uv's name of the real index (credentials: UV_INDEX_ENVSPEC_PYPI_*)
_GLIBC_DEFAULT: Final = "2.17"  # conda-forge's floor when a target names no __glibc
#: manylinux levels uv's --python-platform knows (glibc 2.N), highest first.
_MANYLINUX: Final = (40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 28, 17)
#: conda subdir -> (uv --python-platform, or its stem for Linux; marker values).
_PLATFORMS: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "linux-64": ("x86_64-manylinux_2_{minor}", {"sys_platform": "linux", "platform_system": "Linux",
                                                "platform_machine": "x86_64", "os_name": "posix"}),
    "linux-aarch64": ("aarch64-manylinux_2_{minor}", {"sys_platform": "linux", "platform_system": "Linux",
                                                      "platform_machine": "aarch64", "os_name": "posix"}),
    "osx-64": ("x86_64-apple-darwin", {"sys_platform": "darwin", "platform_system": "Darwin",
                                       "platform_machine": "x86_64", "os_name": "posix"}),
    "osx-arm64": ("aarch64-apple-darwin", {"sys_platform": "darwin", "platform_system": "Darwin",
                                           "platform_machine": "arm64", "os_name": "posix"}),
    "win-64": ("x86_64-pc-windows-msvc", {"sys_platform": "win32", "platform_system": "Windows",
                                          "platform_machine": "AMD64", "os_name": "nt"}),
    "win-arm64": ("aarch64-pc-windows-msvc", {"sys_platform": "win32", "platform_system": "Windows",
                                              "platform_machine": "ARM64", "os_name": "nt"}),
}  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------------------------------------
# What the conda solution provides
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CondaRecord:
    name: str
    version: str
    build: str
    depends_on_python: bool = False


@dataclass(frozen=True)
class Provided:
    """A PyPI distribution the conda solution provides (a stand-in in the resolution)."""

    pypi: str  # canonical PyPI name
    version: str  # the conda version, as PEP 440 text
    conda: CondaRecord

    def describe(self) -> str:
        return f"conda package {self.conda.name} {self.conda.version} ({self.conda.build})"


def conda_records(lock_text: str, subdir: str) -> list[CondaRecord]:
    """The conda packages of conda-lock's output for ``subdir`` (with whether they need python)."""
    import yaml

    from envspec.lock.condalock import build_from_url

    loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar as text: 2.10 stays "2.10"
    data = yaml.load(lock_text, Loader=loader)
    entries = data.get("package") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ToolFailed("conda-lock wrote a lockfile without a package list")
    return [
        CondaRecord(
            str(e["name"]),
            str(e.get("version", "")),
            str(e.get("build") or build_from_url(str(e.get("url", ""))) or ""),
            isinstance(e.get("dependencies"), dict) and "python" in e["dependencies"],
        )
        for e in entries
        if isinstance(e, dict) and e.get("platform") == subdir and e.get("manager", "conda") == "conda"
        and isinstance(e.get("name"), str) and not e["name"].startswith("__")
    ]  # fmt: skip


def provided(
    records: Iterable[CondaRecord], mapping: Mapping[str, tuple[str, ...]]
) -> tuple[list[Provided], list[CondaRecord]]:
    """(the stand-ins, the conda packages that provide a PyPI name but have no PEP 440 version).

    A conda package provides the PyPI names the mapping lists for it; one the mapping does not
    know provides its own name when it depends on python (conda-lock's rule)."""
    from packaging.version import InvalidVersion, Version

    out: dict[str, Provided] = {}
    unversioned: list[CondaRecord] = []
    for record in records:
        names = mapping.get(record.name) or ((canonical(record.name),) if record.depends_on_python else ())
        if not names or record.name == "python":
            continue
        try:
            version = str(Version(record.version))
        except InvalidVersion:
            unversioned.append(record)
            continue
        for name in names:
            out.setdefault(canonical(name), Provided(canonical(name), version, record))
    return sorted(out.values(), key=lambda p: p.pypi), unversioned


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def standin_wheel(name: str, version: str, note: str) -> tuple[str, bytes]:
    """A metadata-only wheel: ``Name``/``Version``, no ``Requires-Dist``, nothing to install."""
    dist = re.sub(r"[-_.]+", "_", name)
    info = f"{dist}-{version}.dist-info"
    files = [
        (f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {note}\n".encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: envspec\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in files) + f"{info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in [*files, (f"{info}/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return f"{dist}-{version}-py3-none-any.whl", buf.getvalue()


def standin_files(standins: Sequence[Provided]) -> dict[str, bytes]:
    """The stand-in index as ``{URL path: body}``: PEP 691 JSON pages (with a PEP 700 upload time, so
    ``--exclude-newer`` keeps them: the conda solve they stand for is dated already), wheels and
    PEP 658 ``.metadata``."""
    files: dict[str, bytes] = {}
    for p in standins:
        filename, data = standin_wheel(p.pypi, p.version, f"stand-in for {p.describe()}")
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            metadata = zf.read(next(n for n in zf.namelist() if n.endswith("/METADATA")))
        files[f"/files/{filename}"] = data
        files[f"/files/{filename}.metadata"] = metadata
        page = {
            "meta": {"api-version": "1.1"},
            "name": p.pypi,
            "versions": [p.version],
            "files": [
                {
                    "filename": filename,
                    "url": f"/files/{filename}",
                    "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                    "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
                    "upload-time": STANDIN_UPLOAD_TIME,
                }
            ],
        }
        files[f"/simple/{p.pypi}/"] = json.dumps(page).encode()
    return files


@contextlib.contextmanager
def serve_standins(standins: Sequence[Provided]) -> Iterator[str]:
    """The stand-in index, served from memory on 127.0.0.1 while uv runs (no file per stand-in:
    an environment has a few hundred); yields its ``/simple`` URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = standin_files(standins)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: uv asks about every name it meets

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            body = files.get(path) if path.startswith("/files/") else files.get(path.rstrip("/") + "/")
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            kind = SIMPLE_JSON if path.startswith("/simple/") else "application/octet-stream"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="envspec-standins", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# The target's platform as uv sees it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    python_platform: str  # uv --python-platform
    python_version: str  # the conda solution's python (X.Y.Z)
    env: Mapping[str, str]  # extra environment for uv (MACOSX_DEPLOYMENT_TARGET)
    markers: Mapping[str, str]  # PEP 508 marker values of the target

    def wheel_platforms(self) -> list[str]:
        """The target's wheel platform tags, best first (as pip on the target would rank them)."""
        from packaging.tags import mac_platforms

        plat = self.python_platform
        arch = self.markers["platform_machine"]
        if "manylinux_2_" in plat:
            level = int(plat.rsplit("_", 1)[1])
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            tags = [f"manylinux_2_{m}_{arch}" for m in range(level, 4, -1)]
            tags += [f"{legacy[m]}_{arch}" for m in sorted(legacy, reverse=True) if m <= level]
            return [*tags, f"linux_{arch}"]
        if plat.endswith("apple-darwin"):
            default = "11.0" if arch == "arm64" else "10.12"  # uv's defaults without MACOSX_DEPLOYMENT_TARGET
            major, minor = (int(x) for x in (self.env.get("MACOSX_DEPLOYMENT_TARGET", default) + ".0").split(".")[:2])
            return list(mac_platforms((major, minor), arch))
        return ["win_arm64" if arch == "ARM64" else "win_amd64"]

    def tag_ranks(self) -> dict[str, int]:
        """``{str(tag): rank}`` of every tag a wheel for the target may carry, 0 the best."""
        from packaging.tags import compatible_tags, cpython_tags

        version = tuple(int(x) for x in self.python_version.split(".")[:2])
        cp = f"cp{version[0]}{version[1]}"
        plats = self.wheel_platforms()
        tags = [*cpython_tags(version, abis=[cp, "abi3", "none"], platforms=plats),
                *compatible_tags(version, interpreter=cp, platforms=plats)]  # fmt: skip
        return {str(t): i for i, t in reversed(list(enumerate(tags)))}


def virtual_packages(vpkg_text: str, subdir: str) -> dict[str, str]:
    """``{"__glibc": "2.28", ...}`` of a rendered ``<t>.virtual-packages.yml``."""
    import yaml

    data = yaml.safe_load(vpkg_text) or {}
    packages = ((data.get("subdirs") or {}).get(subdir) or {}).get("packages") or {}
    return {str(k): str(v).split()[0] for k, v in packages.items()}


def platform_for(subdir: str, vpkgs: Mapping[str, str], python: str) -> Platform:
    if subdir not in _PLATFORMS:
        raise SpecError(
            f"PyPI packages are not supported for subdir {subdir}",
            tip=f"supported: {', '.join(_PLATFORMS)}; move the pip requirement to a target of one of them",
        )
    template, markers = _PLATFORMS[subdir]
    env: dict[str, str] = {}
    if "{minor}" in template:
        glibc = vpkgs.get("__glibc", _GLIBC_DEFAULT).split(".")
        known = len(glibc) > 1 and glibc[0] == "2" and glibc[1].isascii() and glibc[1].isdigit()
        minor = int(glibc[1]) if known else 17
        level = next((m for m in _MANYLINUX if m <= minor), None)
        if level is None:
            raise SpecError(f"__glibc {vpkgs.get('__glibc')}: below manylinux_2_17, no PyPI wheel fits")
        template = template.format(minor=level)
    if "__osx" in vpkgs:
        env["MACOSX_DEPLOYMENT_TARGET"] = vpkgs["__osx"]
    major_minor = ".".join(python.split(".")[:2])
    full = {**markers, "python_version": major_minor, "python_full_version": python,
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
    return Platform(template, python, env, full)


# ---------------------------------------------------------------------------------------------
# Running uv
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    name: str  # canonical
    version: str
    url: str
    sha256: str | None
    marker: str | None = None

    @property
    def is_sdist(self) -> bool:
        return not self.url.split("#", 1)[0].endswith(".whl")


@dataclass(frozen=True)
class Request:
    requirements: tuple[str, ...]
    index_url: str
    index_env: Mapping[str, str]  # credentials for PYPI_INDEX, as uv reads them
    allow_sdist: frozenset[str]
    platform: Platform
    standins: tuple[Provided, ...]
    preferences: tuple[Resolved, ...] = ()  # the previous pins, kept where possible (--update)
    upgrade: tuple[str, ...] = ()  # names that may move (--update NAME)
    exclude_newer: str | None = None  # RFC 3339 cutoff (`envspec lock --exclude-newer`); stand-ins exempt


def uv_binary() -> str:
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - a dependency of envspec
        raise ToolFailed("the `uv` package is not installed", tip="pip install uv (envspec depends on it)") from None
    return str(find_uv_bin())


def uv_command(request: Request, work: Path, standin_url: str, build: frozenset[str] = frozenset()) -> list[str]:
    """uv's command line; ``build``: the projects (of ``pip_allow_sdist``) it may build, none by default."""
    cmd = [
        uv_binary(), "pip", "compile", str(work / "requirements.in"),
        "--output-file", str(work / "pylock.toml"), "--format", "pylock.toml",
        "--python-platform", request.platform.python_platform,
        "--python-version", request.platform.python_version,
        "--generate-hashes", "--no-header", "--no-annotate", "--quiet", "--color", "never", "--no-progress",
        "--no-python-downloads", "--python", sys.executable,
        "--index", f"{STANDIN_INDEX}={standin_url}", "--default-index", f"{PYPI_INDEX}={request.index_url}",
        "--index-strategy", "first-index", "--keyring-provider", "disabled",
    ]  # fmt: skip
    if build:  # these projects alone: no other build backend may run, not even for metadata
        cmd += ["--only-binary", ":all:", *(a for name in sorted(build) for a in ("--no-binary", name))]
    else:
        cmd.append("--no-build")
    for name in request.upgrade:
        cmd += ["--upgrade-package", name]
    if request.exclude_newer:  # the stand-ins carry an upload time before any cutoff (standin_files)
        cmd += ["--exclude-newer", request.exclude_newer]
    return cmd


#: The UV_* settings a user's environment passes on: how hard uv tries the network (a refused index is
#: retried with back-off, 9 s with uv's default 3 retries), never what it resolves or from where.
UV_NETWORK_SETTINGS: Final = frozenset({"UV_HTTP_RETRIES", "UV_HTTP_TIMEOUT"})


def uv_environment(request: Request, cache: Path) -> dict[str, str]:
    """The child's environment: no user/system uv configuration or UV_* settings leak in, but
    ``UV_NETWORK_SETTINGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_")) or k in UV_NETWORK_SETTINGS}
    env.update({"UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(cache), **request.platform.env, **request.index_env})
    for key in ("NO_PROXY", "no_proxy"):  # the stand-ins are on 127.0.0.1: never through a proxy
        env[key] = ",".join(filter(None, [env.get(key, ""), "127.0.0.1", "localhost"]))
    return env


#: How uv says that a project has no wheel it may use (its hint, and its explanation's words).
_NEEDS_BUILD = re.compile(
    r"Wheels are required for `([^`]+)` because building from source is disabled"
    r"|(?<![\w.-])([A-Za-z0-9][\w.-]*)(?:==[^\s,;]+)? has no usable wheels"
)


def needs_build(stderr: str) -> set[str]:
    """The projects uv's messages say have no wheel it may use (canonical names)."""
    return {canonical(a or b) for a, b in _NEEDS_BUILD.findall(stderr)}


def run_uv(request: Request, work: Path, cache: Path, timeout: float, memory: int) -> tuple[int, str, str, str]:
    """Run ``uv pip compile``: (exit status, pylock.toml text, stderr, the stand-ins' URL prefix),
    within ``timeout`` seconds in all, uv's data capped at ``memory`` bytes (:mod:`envspec.lock.pypi_bounds`).

    First with ``--no-build``: no build backend runs, not even to read metadata. Only when uv says
    that a project of ``pip_allow_sdist`` has no usable wheel does it run again with
    ``--only-binary :all: --no-binary NAME`` for exactly those projects (repeated while it names
    more of them), so the build backend of a project nobody allowed never runs."""
    deadline = time.monotonic() + timeout
    build: frozenset[str] = frozenset()
    with serve_standins(request.standins) as standin_url:
        while True:
            left = deadline - time.monotonic()
            code, out, err = _run_uv(request, work, cache, left, standin_url, build=build, memory=memory)
            needed = needs_build(err) & request.allow_sdist
            if code == 0 or needed <= build:
                break
            build |= needed
    return code, out, err, standin_url.removesuffix("/simple") + "/files/"


def _run_uv(
    request: Request,
    work: Path,
    cache: Path,
    timeout: float,
    standin_url: str,
    *,
    build: frozenset[str] = frozenset(),
    memory: int,
) -> tuple[int, str, str]:
    from envspec.lock import pypi_bounds as bounds

    work.mkdir(parents=True, exist_ok=True)
    (work / "requirements.in").write_text("".join(f"{r}\n" for r in request.requirements), encoding="utf-8")
    out_file = work / "pylock.toml"
    out_file.unlink(missing_ok=True)
    if request.preferences:  # uv keeps the pins of an existing output file where it can
        out_file.write_text(pylock_text(request.preferences), encoding="utf-8")
    cmd = uv_command(request, work, standin_url, build)
    code, err = bounds.run(cmd, uv_environment(request, cache), work / "uv.stderr", timeout, request.index_url, memory)
    return code, bounds.read_pylock(out_file), err


def pylock_text(packages: Sequence[Resolved]) -> str:
    """A minimal PEP 751 ``pylock.toml`` of ``packages`` (uv reads it as preferences)."""
    import json

    lines = ['lock-version = "1.0"', 'created-by = "envspec"', ""]
    for p in packages:
        file = f"{{ url = {json.dumps(p.url)}, hashes = {{ sha256 = {json.dumps(p.sha256 or '')} }} }}"
        kind = f"sdist = {file}" if p.is_sdist else f"wheels = [{file}]"
        lines += ["[[packages]]", f"name = {json.dumps(p.name)}", f"version = {json.dumps(p.version)}", kind, ""]
    return "\n".join(lines)


def best_file(files: Sequence[Mapping[str, Any]], ranks: Mapping[str, int] | None) -> Mapping[str, Any] | None:
    """The wheel the target installs among ``files`` (uv lists every compatible one: ``abi3`` and
    ``py3-none-any`` alike), else the sdist; None when no wheel fits and there is no sdist."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    wheels = [f for f in files if str(f.get("url", "")).split("#", 1)[0].endswith(".whl")]
    if len(files) == 1 or ranks is None:
        return files[0] if len(files) == 1 else None
    scored = []
    for f in wheels:
        try:
            _, _, _, tags = parse_wheel_filename(str(f["url"]).split("#", 1)[0].rsplit("/", 1)[-1])
        except InvalidWheelFilename:
            continue
        rank = min((ranks[str(t)] for t in tags if str(t) in ranks), default=None)
        if rank is not None:
            scored.append((rank, str(f["url"]), f))
    if scored:
        return min(scored, key=lambda s: (s[0], s[1]))[2]
    return next((f for f in files if f not in wheels), None)


def parse_pylock(text: str, platform: Platform | None = None) -> list[Resolved]:
    """The packages of uv's ``pylock.toml``, each with the one file the target installs (the best
    wheel for ``platform`` when uv lists several; raises ToolFailed when none fits)."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ToolFailed(f"uv wrote a pylock.toml envspec cannot read: {exc}") from None
    ranks = platform.tag_ranks() if platform is not None else None
    out: list[Resolved] = []
    for pkg in data.get("packages") or []:
        name, version = canonical(str(pkg.get("name", ""))), str(pkg.get("version", ""))
        files = [f for f in [*(pkg.get("wheels") or []), pkg.get("sdist")] if isinstance(f, dict) and f.get("url")]
        chosen = best_file(files, ranks)
        if chosen is None:
            listed = ", ".join(str(f["url"]).rsplit("/", 1)[-1] for f in files) or "none"
            raise ToolFailed(f"uv's pylock.toml has no file of {name} {version} for this target (files: {listed})")
        sha = (chosen.get("hashes") or {}).get("sha256")
        out.append(Resolved(name, version, str(chosen["url"]), str(sha).lower() if sha else None, pkg.get("marker")))
    return sorted(out, key=lambda p: p.name)


# ---------------------------------------------------------------------------------------------
# uv's failures, as envspec's errors
# ---------------------------------------------------------------------------------------------

_NETWORK = re.compile(
    r"error sending request|dns error|Connection refused|failed to lookup address|Failed to fetch|"
    r"timed out|tcp connect error|HTTP status server error|status code 5\d\d|401 Unauthorized|403 Forbidden"
)


def classify(
    stderr: str, *, target: str, subdir: str, index_url: str, standins: Sequence[Provided], scrub: Any
) -> EnvspecError:
    text = scrub(stderr)
    sdists = re.findall(r"Wheels are required for `([^`]+)` because building from source is disabled", text)
    if "No solution found" in text or "unsatisfiable" in text:
        chain = explain(text, standins)
        flat = " ".join(text.split())
        names = sorted(n for n in set(sdists) if _only_sdists(n, flat))
        if names:
            return UnsatisfiableError(
                f"target {target} ({subdir}): no wheel fits this target for {', '.join(names)}; only a source "
                f"distribution, which needs building (often a compiler): {chain}",
                tip="pin a version that has a wheel for the target's python and platform, or allow the build: "
                f"pip_allow_sdist: [{', '.join(names)}] in envspec.yml",
            )
        return UnsatisfiableError(
            f"target {target} ({subdir}): its pip requirements cannot be met on top of its conda packages: {chain}",
            tip=f"relax the pip requirement (pip: or targets.{target}.pip in envspec.yml), or the conda package it "
            "meets, then `envspec render` and `envspec lock`",
        )
    if _NETWORK.search(text):
        last = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no response")
        return ChannelUnreachable(
            f"PyPI index {index_url} is unreachable while locking {target}: {_redact_urls(last)[:300]}",
            tip="check the network/URL, or map it to a reachable index: --mirror pypi=URL "
            "(or ENVSPEC_MIRRORS=pypi=URL), e.g. pypi=https://mirror.example/pypi/simple",
        )
    tail = " ".join(" ".join(text.strip().splitlines()[-6:]).split())
    return ToolFailed(
        f"uv failed to resolve the PyPI packages of {target}: {_redact_urls(tail)[:500]}",
        tip=f"rerun with `envspec lock --target {target} -v` for uv's full output",
    )


def _only_sdists(name: str, flat: str) -> bool:
    """Does uv say that no version of ``name`` (a direct need) has a wheel for the target?"""
    n = re.escape(name)
    return bool(
        re.search(rf"all versions of {n} cannot be used|{n}[^\s,;]* has no usable wheels and you require {n}", flat)
    )


def _redact_urls(text: str) -> str:
    from envspec.channels import redact  # the one redaction: user-info, path and query tokens

    return redact(text)


_SENTENCE = re.compile(
    r"(?:^|(?<=\.\s))(?:And because|Because)\s+(?P<why>.+?),\s+we can conclude that\s+(?P<then>.+?)\.(?=\s|$)"
)


_SPEC = r"(?:[<>=!~]=?[^\s,;]+)(?:,[<>=!~]=?[^\s,;]+)*"
_DEPENDS = re.compile(
    rf"(?P<who>[A-Za-z0-9][\w.-]*(?:{_SPEC})?) depends on (?P<dep>[A-Za-z0-9][\w.-]*)(?P<spec>{_SPEC})?"
)
_REQUIRE = re.compile(r"you require (?P<req>.+?), we can conclude that your requirements are unsatisfiable")


def explain(stderr: str, standins: Sequence[Provided]) -> str:
    """uv's explanation as one line. Where the conflict meets the conda solution: each requirement
    on a conda-provided distribution uv names, what conda provides, and what the spec asks for
    ("torchvision==0.24.0 depends on torch==2.9.0; conda provides torch 2.7.1 (conda package pytorch
    2.7.1 (cuda129_...)); you require torchvision>=0.24"). Otherwise uv's last conclusion and its reasons."""
    body = stderr.split("No solution found when resolving dependencies", 1)[-1]
    body = body.split("\nhint:", 1)[0]
    flat = " ".join(re.sub(r"\(\d+\)", "", body.replace("cause:", " ")).split()).lstrip(": ")
    by_name = {p.pypi: p for p in standins}
    edges = list(dict.fromkeys(
        f"{m.group('who')} depends on {m.group('dep')}{m.group('spec') or ''}"
        for m in _DEPENDS.finditer(flat) if canonical(m.group("dep")) in by_name
    ))  # fmt: skip
    required = _REQUIRE.search(flat)
    if edges:
        met = list(dict.fromkeys(canonical(m.group("dep")) for m in _DEPENDS.finditer(flat)))
        conda = [f"conda provides {n} {by_name[n].version} ({by_name[n].describe()})" for n in met if n in by_name]
        shown = edges[:4] + ([f"{len(edges) - 4} more such"] if len(edges) > 4 else [])
        line = "; ".join([*shown, *conda, *([f"you require {required.group('req')}"] if required else [])])
        return line[:1000]
    sentences = [(m.group("why"), m.group("then")) for m in _SENTENCE.finditer(flat)]
    if len(sentences) > 1:
        (why, then), (last, _) = sentences[-2], sentences[-1]
        line = f"{why}, so {then}; {last}"
    elif sentences:
        line = sentences[-1][0]
    else:
        line = flat[:600]
    return " ".join(line.split())[:1000]
