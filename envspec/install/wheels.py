"""The PyPI part of an install, step 2: the verified wheels installed with pypa ``installer``.

No pip runs and nothing is rewritten afterwards: every file is written once, into the staging
folder, already right for the *final* prefix.

* Paths come from the target's :class:`Layout` (data, keyed by conda subdir): ``purelib`` and
  ``platlib`` are the environment's site-packages (``lib/pythonX.Y/site-packages`` or
  ``Lib/site-packages``, X.Y read from the environment's own ``conda-meta`` python record),
  ``scripts`` is ``bin`` or ``Scripts``, ``data`` the prefix.
* Console scripts name the final prefix's python: a ``#!`` line on POSIX (``/bin/sh`` trampoline
  when the path is long or has spaces), a Windows launcher (``installer``'s ``t64.exe`` + shebang +
  zip) for ``win-*`` subdirs, picked by the target's subdir, not by the machine running envspec.
* ``INSTALLER`` says ``envspec``; ``REQUESTED`` is written only for what the spec's ``pip:`` asks
  for; ``RECORD`` lists every file written, bytecode included, with its true sha256 and size
  (relative paths, so it stays true after the staging folder is renamed to the prefix).
* Bytecode is compiled as pip does (every ``.py`` under site-packages, optimisation level 0,
  failures skipped), embedding final-prefix paths; by this interpreter when it is the same
  CPython minor as the environment's, otherwise by the environment's own python (one process
  for all files). An environment whose python cannot run here gets none, and the progress says why.
* A path that would leave its scheme's folder (``..``, absolute) or overwrite an existing file (a
  conda package's, which is a hard link into the package cache) is refused: ``installer`` raises,
  the install fails, the staging folder is removed (:mod:`envspec.install.execute`).
* An allowed sdist (``pip_allow_sdist``) is first built into a wheel by the environment's own pip
  (``pip wheel --no-deps --no-build-isolation --no-index``), then installed like the others.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import Hash, RecordEntry
from installer.sources import WheelFile
from installer.utils import Scheme, construct_record_file, parse_wheel_filename

from envspec.errors import IntegrityError, ToolFailed
from envspec.spec import pip_name

Progress = Callable[[str], None]
LauncherKind = Literal["posix", "win-amd64", "win-arm64"]

INSTALLER_NAME: Final = b"envspec\n"
#: Longest ``#!`` line the kernel takes whole (Linux's limit; distlib and installer use it too).
SHEBANG_MAX: Final = 127


@dataclass(frozen=True)
class Layout:
    """Where a conda environment keeps Python's parts, relative to the prefix (``{py}`` is X.Y)."""

    site_packages: str
    scripts: str
    include: str
    python: str
    launcher: LauncherKind


_POSIX: Final = {
    "site_packages": "lib/python{py}/site-packages",
    "scripts": "bin",
    "include": "include/python{py}",
    "python": "bin/python",
}
_WINDOWS: Final = {
    "site_packages": "Lib/site-packages",
    "scripts": "Scripts",
    "include": "Include",
    "python": "python.exe",
}

#: Every subdir of :data:`envspec.spec.schema.Subdir` (a test keeps the two in step).
LAYOUTS: Final[Mapping[str, Layout]] = {
    "linux-64": Layout(**_POSIX, launcher="posix"),
    "linux-aarch64": Layout(**_POSIX, launcher="posix"),
    "linux-ppc64le": Layout(**_POSIX, launcher="posix"),
    "osx-64": Layout(**_POSIX, launcher="posix"),
    "osx-arm64": Layout(**_POSIX, launcher="posix"),
    "win-64": Layout(**_WINDOWS, launcher="win-amd64"),
    "win-arm64": Layout(**_WINDOWS, launcher="win-arm64"),
}


@dataclass(frozen=True)
class EnvPython:
    """The environment's python as its conda record describes it."""

    version: str  # X.Y
    build: str

    @property
    def cache_tag(self) -> str | None:
        """``cpython-XY`` for CPython (what its ``__pycache__`` files are named after), else None."""
        return None if "pypy" in self.build else f"cpython-{self.version.replace('.', '')}"


def env_python(prefix: Path) -> EnvPython | None:
    """The ``python`` record of ``prefix/conda-meta`` (None when the environment has no python)."""
    for meta in sorted((prefix / "conda-meta").glob("python-[0-9]*.json")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name") == "python" and isinstance(data.get("version"), str):
            major_minor = ".".join(data["version"].split(".")[:2])
            return EnvPython(major_minor, str(data.get("build", "")))
    return None


def scheme_dict(layout: Layout, root: Path, py: str, dist: str) -> dict[str, str]:
    """installer's scheme → folder mapping of one distribution under ``root`` (staging or final)."""
    site = str(root / layout.site_packages.format(py=py))
    return {
        "purelib": site,
        "platlib": site,
        "headers": str(root / layout.include.format(py=py) / dist),
        "scripts": str(root / layout.scripts),
        "data": str(root),
    }


def shebang(interpreter: str) -> bytes:
    """A POSIX script's first line(s) running ``interpreter`` (a ``/bin/sh`` trampoline if it must)."""
    raw = interpreter.encode("utf-8")
    if b" " not in raw and len(raw) + 3 <= SHEBANG_MAX:
        return b"#!" + raw + b"\n"
    quoted = "'" + interpreter.replace("'", "'\"'\"'") + "'"
    return b"#!/bin/sh\n'''exec' " + quoted.encode("utf-8") + b' "$0" "$@"\n' + b"' '''\n"


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


class Destination(SchemeDictionaryDestination):
    """installer's destination, with ``#!python`` scripts given :func:`shebang` and each RECORD held
    back (``finished``) until the bytecode exists (:func:`write_records`)."""

    def __init__(self, scheme_dict: dict[str, str], interpreter: str, script_kind: LauncherKind) -> None:
        super().__init__(scheme_dict, interpreter=interpreter, script_kind=script_kind)
        self.finished: list[tuple[Scheme, str, list[tuple[Scheme, RecordEntry]]]] = []

    def write_file(
        self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        if scheme == "scripts" and self.script_kind == "posix" and stream.read(8).startswith(b"#!python"):
            stream.seek(0)
            stream.readline()
            stream = io.BytesIO(shebang(self.interpreter) + stream.read())
        stream.seek(0)
        return self.write_to_fs(scheme, os.fspath(path), stream, is_executable)

    def finalize_installation(
        self, scheme: Scheme, record_file_path: str, records: Iterable[tuple[Scheme, RecordEntry]]
    ) -> None:
        self.finished.append((scheme, record_file_path, list(records)))

    def sources(self) -> list[Path]:
        """The ``.py`` files written under site-packages."""
        return [
            Path(self.scheme_dict[s]) / e.path
            for _, _, records in self.finished
            for s, e in records
            if s in ("purelib", "platlib") and e.path.endswith(".py")
        ]

    def write_records(self, compiled: Mapping[Path, Path]) -> None:
        """Write each held-back RECORD, with the bytecode ``compiled`` made of its ``.py`` files."""
        for scheme, record_path, records in self.finished:
            rows = list(records)
            for file_scheme, entry in records:
                pyc = compiled.get(Path(self.scheme_dict[file_scheme]) / entry.path)
                if pyc is not None:
                    data = pyc.read_bytes()
                    path = _relative(str(pyc), self.scheme_dict[file_scheme])
                    rows.append((file_scheme, RecordEntry(path, Hash("sha256", _record_hash(data)), len(data))))
            root = self.scheme_dict[scheme]

            def prefix(file_scheme: Scheme, scheme: Scheme = scheme, root: str = root) -> str | None:
                return None if file_scheme == scheme else _relative(self.scheme_dict[file_scheme], root) + "/"

            with construct_record_file(rows, prefix) as stream:
                self.write_to_fs(scheme, record_path, stream, is_executable=False)


# ---------------------------------------------------------------------------------------------
# Bytecode
# ---------------------------------------------------------------------------------------------

#: Run by the environment's python: compile each NUL-separated source path read from stdin (the
#: pyc names the final prefix's path); print the NUL-separated pyc paths, one per source ("" where
#: compiling failed: skipped, as pip does).
_COMPILE_SCRIPT: Final = """
import py_compile, sys
strip, prepend = sys.argv[1], sys.argv[2]
out = []
for src in sys.stdin.buffer.read().decode("utf-8", "surrogateescape").split("\\0"):
    try:
        out.append(py_compile.compile(src, dfile=prepend + src[len(strip):], doraise=True))
    except Exception:
        out.append("")
sys.stdout.buffer.write("\\0".join(out).encode("utf-8", "surrogateescape"))
"""

#: sources -> {source: its pyc}, for those that compiled.
Compiler = Callable[[Sequence[Path]], dict[Path, Path]]


def host_compiler(staging: Path, final: Path) -> Compiler:
    """Compile in this process (only right when this CPython's minor is the environment's)."""
    import py_compile

    def run(sources: Sequence[Path]) -> dict[Path, Path]:
        made = {}
        for src in sources:
            dfile = str(final) + str(src)[len(str(staging)) :]
            try:
                pyc = py_compile.compile(str(src), dfile=dfile, doraise=True)
            except (py_compile.PyCompileError, OSError, ValueError):
                continue
            if pyc is not None:
                made[src] = Path(pyc)
        return made

    return run


def env_compiler(python: Path, staging: Path, final: Path) -> Compiler:
    """Compile with the environment's own python, in one process."""

    def run(sources: Sequence[Path]) -> dict[Path, Path]:
        if not sources:
            return {}
        listing = "\0".join(str(s) for s in sources).encode("utf-8", "surrogateescape")
        try:
            proc = subprocess.run(
                [str(python), "-I", "-c", _COMPILE_SCRIPT, str(staging), str(final)],
                input=listing,
                capture_output=True,
                check=False,
            )
        except OSError as exc:
            raise ToolFailed(f"the environment's python {python} cannot run to compile bytecode: {exc}") from None
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise ToolFailed(
                f"the environment's python {python} failed compiling bytecode (exit {proc.returncode}): "
                + " ".join(tail),
                tip="nothing was installed; rerun with `envspec --debug` for details",
            )
        made = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
        if len(made) != len(sources):
            raise ToolFailed(f"the environment's python {python} answered {len(made)} paths for {len(sources)} modules")
        return {src: Path(pyc) for src, pyc in zip(sources, made, strict=True) if pyc}

    return run


def choose_compiler(py: EnvPython, python: Path, staging: Path, final: Path, host_tag: str | None) -> Compiler:
    """This interpreter when its cache tag is the environment's (no process), else the environment's."""
    if py.cache_tag is not None and py.cache_tag == host_tag:
        return host_compiler(staging, final)
    return env_compiler(python, staging, final)


# ---------------------------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where and for whom wheels are installed."""

    staging: Path  # the folder being written
    final: Path  # where it will live (the interpreter scripts name)
    layout: Layout
    py: str  # X.Y


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _relative(path: str, start: str) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def launcher_interpreter(where: Target) -> str:
    """The final prefix's python as scripts name it; quoted for a Windows launcher when it has a space
    (the launcher splits its ``#!`` line at spaces; POSIX scripts get :func:`shebang`'s trampoline)."""
    path = str(where.final / where.layout.python)
    return f'"{path}"' if where.layout.launcher != "posix" and " " in path else path


def _install_one(wheel: Path, where: Target, requested: bool) -> Destination:
    dist = parse_wheel_filename(wheel.name).distribution
    dest = Destination(
        scheme_dict(where.layout, where.staging, where.py, dist),
        interpreter=launcher_interpreter(where),
        script_kind=where.layout.launcher,
    )
    extra = {"INSTALLER": INSTALLER_NAME, **({"REQUESTED": b""} if requested else {})}
    try:
        with WheelFile.open(wheel) as source:
            install(source, dest, additional_metadata=extra)
    except FileExistsError as exc:
        raise IntegrityError(
            f"{wheel.name} would overwrite a file already in the environment ({exc}); nothing was installed",
            tip="a pip package and a conda package ship the same file: drop one of them from envspec.yml",
        ) from None
    except (InstallerError, ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:  # ValueError: outside its folder
        raise IntegrityError(
            f"{wheel.name} cannot be installed: {' '.join(str(exc).split())[:300]}; nothing was installed",
            tip="the wheel is broken or hostile: re-lock to another release, or report it to its project",
        ) from None
    return dest


def install_wheels(
    wheels: Sequence[Path], where: Target, requested: frozenset[str], compiler: Compiler | None, progress: Progress
) -> list[str]:
    """Install ``wheels`` into ``where.staging``; returns the canonical names installed.

    ``requested`` holds canonical names (the spec's ``pip:``); ``compiler`` None skips bytecode.
    """
    dests = []
    names = []
    for n, wheel in enumerate(wheels, 1):
        name = _canonical(parse_wheel_filename(wheel.name).distribution)
        dests.append(_install_one(wheel, where, name in requested))
        names.append(name)
        progress(f"pip: {n}/{len(wheels)} installed ({wheel.name})")
    compiled: dict[Path, Path] = {}
    if compiler is not None:
        sources = [src for dest in dests for src in dest.sources()]
        compiled = compiler(sources)
        progress(f"pip: {len(compiled)} of {len(sources)} module(s) compiled to bytecode")
    for dest in dests:
        dest.write_records(compiled)
    return names


def build_sdists(python: Path, sdists: Sequence[Path], out: Path, progress: Progress) -> list[Path]:
    """Build each allowed sdist into a wheel with the environment's own pip (its build backend must be
    in the environment: there is no index to fetch it from). Returns the wheels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHONUSERBASE"))}
    env["PYTHONNOUSERSITE"] = "1"
    built = []
    for sdist in sdists:
        dest = Path(tempfile.mkdtemp(prefix="sdist-", dir=out))
        progress(f"pip: building {sdist.name} with the environment's pip (pip_allow_sdist)")
        cmd = [str(python), "-m", "pip", "wheel", "--isolated", "--no-input", "--disable-pip-version-check",
               "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(dest), str(sdist)]  # fmt: skip
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, check=False)
        made = sorted(dest.glob("*.whl"))
        if proc.returncode != 0 or len(made) != 1:
            lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
            tail = " | ".join([line for line in lines if not line.startswith(("note:", "hint:"))][-3:])
            raise ToolFailed(
                f"building {sdist.name} failed (pip exit code {proc.returncode}): {tail}",
                tip="its build backend and compiler must be in the environment; nothing was installed",
            )
        check_built(sdist.name, made[0].name)
        built.append(made[0])
    return built


def check_built(sdist: str, wheel: str) -> None:
    """The wheel built from ``sdist`` must be the distribution and version that was locked."""
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename, parse_wheel_filename

    try:
        want = parse_sdist_filename(sdist)
    except InvalidSdistFilename:
        return  # a legacy file name (pre PEP 625): the wheel's own name is all there is
    got = parse_wheel_filename(wheel)[:2]
    if (got[0], got[1]) != (want[0], want[1]):
        raise IntegrityError(
            f"building {sdist} made {wheel}: not the locked {want[0]} {want[1]}; nothing was installed",
            tip="the sdist's metadata disagrees with its name: re-lock to a wheel, or report it to its project",
        )


def install_files(
    files: Sequence[Path],
    staging: Path,
    final: Path,
    *,
    subdir: str,
    requested: Iterable[str],
    progress: Progress,
    work: Path,
) -> list[str]:
    """The hook's body: wheels (and allowed sdists, built first) of the lockfile into ``staging``;
    ``requested`` are the spec's ``pip:`` requirements."""
    layout = LAYOUTS[subdir]
    py = env_python(staging)
    python = staging / layout.python
    if py is None or not python.exists():
        raise ToolFailed(
            f"the lockfile has {len(files)} pip package(s) but the environment has no python ({python})",
            tip="add python to the spec's dependencies, then `envspec render` and `envspec lock`",
        )
    wheels = [f for f in files if f.name.endswith(".whl")]
    sdists = [f for f in files if not f.name.endswith(".whl")]
    wheels += build_sdists(python, sdists, work, progress) if sdists else []
    host_tag = sys.implementation.cache_tag if sys.implementation.name == "cpython" else None
    compiler = choose_compiler(py, python, staging, final, host_tag)
    where = Target(staging, final, layout, py.version)
    return install_wheels(wheels, where, frozenset(pip_name(r) for r in requested), compiler, progress)
