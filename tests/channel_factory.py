"""Build a LOCAL conda channel of small but real ``.conda`` packages, shaped like conda-forge.

The package set is a data table (:func:`stack_packages`), so the benchmark can generate a
realistic-size channel (:func:`filler_packages`) with the same code. Each package is a real
``.conda`` archive (zip: ``metadata.json``, ``info-*.tar.zst`` with ``info/index.json`` and
``info/paths.json``, ``pkg-*.tar.zst`` with a file), indexed by py-rattler's ``index_fs``.

Shape mirrored from conda-forge (torch 2.13 era):

* python 3.12 and a newer 3.13 (trap: an unpinned spec would take it), ``python_abi`` per minor;
* ``pytorch`` on linux-64 (``cpu_*``, ``cuda129_*``, ``cuda130_*``) and win-64 (``cpu_*``,
  ``cuda128_*``, ``cuda130_*``); CUDA builds depend on ``__cuda`` and ``cuda-version`` and carry a
  HIGHER build number; trap: a NEWER CPU-only pytorch next to them;
* osx-arm64 pytorch needing ``__osx >=14``, and a newer trap build needing ``__osx >=15``;
  an osx-64 build;
* noarch python packages of the spec (diffusers, transformers, accelerate, huggingface_hub, tqdm,
  ...), per-subdir compiled ones (numpy, pillow, safetensors, tokenizers), ``cuda-version``.

Everything is deterministic (fixed timestamps, fixed archive metadata), so two builds of the same
table give byte-identical packages and hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import zstandard

from envspec.lock.conda_shim import TEST_CHANNEL_LICENSE

SUBDIRS: tuple[str, ...] = ("linux-64", "osx-64", "osx-arm64", "win-64")
ALL_SUBDIRS: tuple[str, ...] = (*SUBDIRS, "noarch")
TIMESTAMP_MS = 1_761_955_200_000  # 2025-11-01, fixed so archives are reproducible
_ZIP_DATE = (2025, 11, 1, 0, 0, 0)
#: Payload files under these folders are written executable (0o755), like a real package's bin/.
EXECUTABLE_DIRS: tuple[str, ...] = ("bin/",)


@dataclass(frozen=True)
class Pkg:
    """One package record of the channel: the row of the data table."""

    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    noarch: str | None = None
    files: tuple[tuple[str, str], ...] = field(default=())
    timestamp: int = TIMESTAMP_MS  # ms since the epoch (``envspec lock --exclude-newer`` tests publish later ones)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.conda"

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.version}-{self.build}"


def _h(*parts: str) -> str:
    """conda-forge-like build hash: ``h`` and 8 hex digits, derived from the parts."""
    return "h" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


# --------------------------------------------------------------------------------------------
# The stack (the data table)
# --------------------------------------------------------------------------------------------

PYTHONS: tuple[tuple[str, str], ...] = (("3.12.11", "312"), ("3.13.7", "313"))

_OS_BASE: dict[str, tuple[str, ...]] = {
    "linux-64": ("libgcc >=14", "__glibc >=2.17,<3.0.a0"),
    "osx-64": ("__osx >=10.13",),
    "osx-arm64": ("__osx >=11.0",),
    "win-64": ("ucrt >=10.0.20348.0", "vc14_runtime >=14.44.35208"),
}

# (subdir, version, variant, build number, extra depends, python tags)
# variant "cpu" or "cudaXYZ"; CUDA builds get build number 200+ (they win when allowed).
TORCH_BUILDS: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("linux-64", "2.12.1", "cpu", 2, ()),
    ("linux-64", "2.12.1", "cuda129", 202, ()),
    ("linux-64", "2.13.0", "cpu", 1, ()),
    ("linux-64", "2.13.0", "cuda129", 201, ()),
    ("linux-64", "2.13.0", "cuda130", 201, ()),
    ("linux-64", "2.14.0", "cpu", 0, ()),  # trap: newer, CPU only
    ("win-64", "2.13.0", "cpu", 1, ()),
    ("win-64", "2.13.0", "cuda128", 201, ()),
    ("win-64", "2.13.0", "cuda130", 201, ()),
    ("win-64", "2.14.0", "cpu", 0, ()),  # trap: newer, CPU only
    ("osx-arm64", "2.8.0", "cpu", 3, ("__osx >=11.0",)),
    ("osx-arm64", "2.13.0", "cpu", 1, ("__osx >=14.0",)),
    ("osx-arm64", "2.14.0", "cpu", 0, ("__osx >=15.0",)),  # trap: needs a newer macOS
    ("osx-64", "2.13.0", "cpu", 1, ("__osx >=10.15",)),
)

CUDA_VERSIONS: tuple[str, ...] = ("12.6", "12.8", "12.9", "13.0")


def _cuda_dotted(variant: str) -> str:
    digits = variant.removeprefix("cuda")
    return f"{digits[:-1]}.{digits[-1]}"


def _next_major(version: str) -> str:
    return f"{int(version.split('.', maxsplit=1)[0]) + 1}"


def _py_deps(tag: str) -> tuple[str, ...]:
    minor = f"3.{tag[1:]}"
    upper = f"3.{int(tag[1:]) + 1}"
    return (f"python >={minor},<{upper}.0a0", f"python_abi {minor}.* *_cp{tag}")


def _compiled(name: str, version: str, subdir: str, deps: tuple[str, ...], bn: int = 0) -> Iterator[Pkg]:
    for _, tag in PYTHONS:
        build = f"py{tag}{_h(name, version, subdir, tag)}_{bn}"
        yield Pkg(name, version, build, bn, subdir, (*_py_deps(tag), *deps, *_OS_BASE[subdir]))


def _noarch(name: str, version: str, deps: tuple[str, ...], bn: int = 0) -> Pkg:
    return Pkg(
        name,
        version,
        f"pyhd8ed1ab_{bn}",
        bn,
        "noarch",
        ("python >=3.10", *deps),
        noarch="python",
    )


NOARCH_PY: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tqdm", "4.67.1", ("colorama",)),
    ("colorama", "0.4.6", ()),
    ("filelock", "3.20.0", ()),
    ("typing_extensions", "4.15.0", ()),
    ("fsspec", "2025.10.0", ()),
    ("networkx", "3.5", ()),
    ("packaging", "25.0", ()),
    (
        "huggingface_hub",
        "0.35.3",
        ("filelock", "fsspec >=2023.5.0", "packaging >=20.9", "tqdm >=4.42.1", "typing_extensions >=3.7.4.3"),
    ),
    (
        "huggingface_hub",
        "0.36.0",
        ("filelock", "fsspec >=2023.5.0", "packaging >=20.9", "tqdm >=4.42.1", "typing_extensions >=3.7.4.3"),
    ),
    ("diffusers", "0.35.2", ("filelock", "huggingface_hub >=0.34.0", "numpy", "pillow", "safetensors >=0.3.1")),
    ("diffusers", "0.36.0", ("filelock", "huggingface_hub >=0.34.0", "numpy", "pillow", "safetensors >=0.3.1")),
    (
        "transformers",
        "4.57.1",
        (
            "filelock",
            "huggingface_hub >=0.34.0,<1.0",
            "numpy >=1.17",
            "packaging >=20.0",
            "safetensors >=0.4.3",
            "tokenizers >=0.22.0,<=0.23.0",
            "tqdm >=4.27",
        ),
    ),
    (
        "accelerate",
        "1.11.0",
        ("huggingface_hub >=0.21.0", "numpy >=1.17", "packaging >=20.0", "pytorch >=2.0.0", "safetensors >=0.4.3"),
    ),
)


def stack_packages() -> list[Pkg]:
    """The conda-forge-shaped package set for our stack (a few hundred records)."""
    pkgs: list[Pkg] = []
    for subdir in SUBDIRS:
        # python and friends
        for version, tag in PYTHONS:
            minor = f"3.{tag[1:]}"
            build = f"{_h('python', version, subdir)}_0_cpython"
            pkgs.append(Pkg("python", version, build, 0, subdir, ("libzlib >=1.3.1", *_OS_BASE[subdir])))
            pkgs.append(Pkg("python_abi", minor, f"8_cp{tag}", 8, subdir, ()))
        pkgs.append(Pkg("libzlib", "1.3.1", f"{_h('libzlib', subdir)}_2", 2, subdir, _OS_BASE[subdir]))
        if subdir.startswith("linux"):
            pkgs.append(Pkg("libgcc", "15.2.0", f"{_h('libgcc', subdir)}_7", 7, subdir, ("__glibc >=2.17,<3.0.a0",)))
        if subdir.startswith("win"):
            pkgs.append(Pkg("ucrt", "10.0.22621.0", "h57928b3_1", 1, subdir, ()))
            pkgs.append(Pkg("vc14_runtime", "14.44.35208", "h818238b_31", 31, subdir, ("ucrt >=10.0.20348.0",)))
        if subdir.startswith("osx"):
            pkgs.append(Pkg("llvm-openmp", "21.1.4", _h("llvm-openmp", subdir) + "_0", 0, subdir, _OS_BASE[subdir]))
        # compiled python packages
        pkgs += _compiled("numpy", "2.3.4", subdir, ())
        pkgs += _compiled("numpy", "2.2.6", subdir, ())
        pkgs += _compiled("pillow", "12.0.0", subdir, ("libzlib >=1.3.1",))
        pkgs += _compiled("safetensors", "0.6.2", subdir, ())
        pkgs += _compiled("tokenizers", "0.22.1", subdir, ("huggingface_hub >=0.16.4,<2.0",))
    # CUDA runtime bits (linux-64 / win-64)
    for subdir in ("linux-64", "win-64"):
        for cv in CUDA_VERSIONS:
            pkgs.append(
                Pkg(
                    "cuda-cudart",
                    f"{cv}.79",
                    f"{_h('cudart', cv, subdir)}_0",
                    0,
                    subdir,
                    (f"cuda-version >={cv},<{_next_major(cv)}.0a0", *_OS_BASE[subdir]),
                )
            )
    # pytorch
    for subdir, version, variant, bn, extra in TORCH_BUILDS:
        for _, tag in PYTHONS:
            flavour = "generic" if subdir.startswith("osx") else "mkl"
            build = f"{variant}_{flavour}_py{tag}{_h('pytorch', version, variant, subdir, tag)}_{bn}"
            deps = [
                *_py_deps(tag),
                "filelock",
                "fsspec",
                "networkx",
                "numpy >=1.23,<3",
                "typing_extensions >=4.10.0",
                *extra,
                *_OS_BASE[subdir],
            ]
            if subdir.startswith("osx"):
                deps.append("llvm-openmp >=21.1.4")
            if variant.startswith("cuda"):
                cv = _cuda_dotted(variant)
                deps += [
                    "__cuda",
                    f"cuda-version >={cv},<{_next_major(cv)}",
                    f"cuda-cudart >={cv}",
                ]
            pkgs.append(Pkg("pytorch", version, build, bn, subdir, tuple(deps)))
    # noarch
    for cv in CUDA_VERSIONS:
        pkgs.append(
            Pkg(
                "cuda-version",
                cv,
                "h4f385c5_3",
                3,
                "noarch",
                (),
                constrains=(f"__cuda >={cv}", f"cudatoolkit {cv}|{cv}.*"),
                noarch="generic",
            )
        )
    for name, version, deps in NOARCH_PY:
        pkgs.append(_noarch(name, version, deps))
    return pkgs


def with_python_launcher(pkgs: Iterable[Pkg], interpreter: str, subdir: str = "linux-64") -> list[Pkg]:
    """``pkgs`` with each ``python`` of ``subdir`` shipping ``bin/python``: a POSIX shell script that
    execs ``interpreter``. An environment installed from the channel then runs real Python code
    (the smoke test) with whatever that interpreter has installed (torch, diffusers, ...)."""
    launcher = f'#!/bin/sh\nexec "{interpreter}" "$@"\n'
    return [
        replace(p, files=(("bin/python", launcher),)) if p.name == "python" and p.subdir == subdir else p for p in pkgs
    ]


def bump_packages() -> list[Pkg]:
    """Newer releases published "later": what ``--update`` tests move to (or must not)."""
    hub = ("filelock", "huggingface_hub >=0.34.0", "numpy", "pillow", "safetensors >=0.3.1")
    return [_noarch("diffusers", "0.37.0", hub), _noarch("tqdm", "4.68.0", ("colorama",))]


def history_packages(n_versions: int = 30) -> list[Pkg]:
    """Older releases of the stack's own names (what makes a real solve search): per subdir and
    Python for compiled packages, noarch for the rest. None of them beats the current ones."""
    pkgs: list[Pkg] = []
    for i in range(n_versions):
        for subdir in SUBDIRS:
            pkgs += _compiled("numpy", f"1.{i}.0", subdir, ())
            pkgs += _compiled("pillow", f"9.{i}.0", subdir, ("libzlib >=1.3.1",))
            pkgs += _compiled("safetensors", f"0.3.{i}", subdir, ())
            pkgs += _compiled("tokenizers", f"0.{i % 21}.{i}", subdir, ("huggingface_hub >=0.16.4,<2.0",))
        for name, deps in {name: deps for name, _, deps in NOARCH_PY}.items():
            pkgs.append(_noarch(name, f"0.0.{i}", deps))
    return pkgs


def filler_packages(n_records: int, seed_names: int = 400) -> list[Pkg]:
    """Realistic-size padding: many names, many versions and builds per name, all subdirs.

    Records depend on each other (a chain within a name family) so repodata looks real,
    but none of them is needed by the stack, like most of conda-forge.
    """
    pkgs: list[Pkg] = []
    i = 0
    while len(pkgs) < n_records:
        name = f"fill-{i % seed_names:04d}"
        major = i // seed_names
        subdir = ALL_SUBDIRS[i % len(ALL_SUBDIRS)]
        for minor in range(5):
            for bn in range(2):
                version = f"{major}.{minor}.0"
                dep = f"fill-{(i + 1) % seed_names:04d} >={max(major - 1, 0)}"
                if subdir == "noarch":
                    pkgs.append(
                        Pkg(name, version, f"pyhd8ed1ab_{bn}", bn, subdir, ("python >=3.10", dep), noarch="python")
                    )
                else:
                    pkgs += list(_compiled(name, version, subdir, (dep,), bn))
        i += 1
    return pkgs[:n_records] if len(pkgs) > n_records else pkgs


# --------------------------------------------------------------------------------------------
# Writing real .conda archives
# --------------------------------------------------------------------------------------------


def _tar_zst(members: Iterable[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = TIMESTAMP_MS // 1000
            info.mode = 0o755 if name.startswith(EXECUTABLE_DIRS) else 0o644
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor(level=3).compress(raw.getvalue())


def _index_json(pkg: Pkg) -> dict[str, object]:
    index: dict[str, object] = {
        "arch": None
        if pkg.subdir == "noarch"
        else ("x86_64" if pkg.subdir.endswith("64") and not pkg.subdir.endswith("arm64") else "arm64"),
        "build": pkg.build,
        "build_number": pkg.build_number,
        "depends": list(pkg.depends),
        "license": TEST_CHANNEL_LICENSE,  # the mark envspec lock records: never commit what it solves
        "name": pkg.name,
        "platform": None if pkg.subdir == "noarch" else pkg.subdir.split("-")[0],
        "subdir": pkg.subdir,
        "timestamp": pkg.timestamp,
        "version": pkg.version,
    }
    if pkg.constrains:
        index["constrains"] = list(pkg.constrains)
    if pkg.noarch:
        index["noarch"] = pkg.noarch
    return index


def conda_archive(pkg: Pkg) -> bytes:
    """The bytes of a real ``.conda`` package for ``pkg``."""
    files = pkg.files or (
        (
            f"site-packages/{pkg.name.replace('-', '_')}/__init__.py"
            if pkg.noarch == "python"
            else f"share/envspec-test/{pkg.name}.txt",
            f"# {pkg.name} {pkg.version} {pkg.build}\n",
        ),
    )
    payload = [(path, text.encode()) for path, text in files]
    paths_json = {
        "paths": [
            {
                "_path": path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
            for path, data in payload
        ],
        "paths_version": 1,
    }
    info = [
        ("info/index.json", json.dumps(_index_json(pkg), indent=2, sort_keys=True).encode()),
        ("info/paths.json", json.dumps(paths_json, indent=2, sort_keys=True).encode()),
        ("info/about.json", json.dumps({"summary": f"envspec test package {pkg.name}"}).encode()),
    ]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for arcname, data in (
            ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
            (f"pkg-{pkg.stem}.tar.zst", _tar_zst(payload)),
            (f"info-{pkg.stem}.tar.zst", _tar_zst(info)),
        ):
            zinfo = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            zinfo.compress_type = zipfile.ZIP_STORED
            zf.writestr(zinfo, data)
    return out.getvalue()


def write_packages(root: Path, pkgs: Iterable[Pkg]) -> int:
    count = 0
    for subdir in ALL_SUBDIRS:
        (root / subdir).mkdir(parents=True, exist_ok=True)
    for pkg in pkgs:
        (root / pkg.subdir / pkg.filename).write_bytes(conda_archive(pkg))
        count += 1
    return count


def index_channel(root: Path) -> None:
    """Index with py-rattler (repodata.json per subdir). Run in a child process by callers
    that need a true exit code: py-rattler may crash at interpreter exit."""
    from rattler.index import index_fs

    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    _published_when_indexed(root)


def _published_when_indexed(root: Path) -> None:
    """rattler's indexer stamps each record with ``indexed_timestamp`` = now, which a solve with a
    cutoff (``envspec lock --exclude-newer``) prefers to ``timestamp``; a channel of this factory is
    taken to index each package when it was published, so repodata stays the same from run to run."""
    for repodata in root.glob("*/repodata.json"):
        data = json.loads(repodata.read_text(encoding="utf-8"))
        for key in ("packages", "packages.conda"):
            for record in data.get(key, {}).values():
                if "indexed_timestamp" in record:
                    record["indexed_timestamp"] = record.get("timestamp", record["indexed_timestamp"])
        repodata.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def build_channel(root: Path, pkgs: Iterable[Pkg] | None = None) -> Path:
    """Write the packages and index them; returns ``root``. Default: :func:`stack_packages`."""
    root.mkdir(parents=True, exist_ok=True)
    write_packages(root, stack_packages() if pkgs is None else pkgs)
    index_channel(root)
    return root


def main(argv: list[str] | None = None) -> int:
    """``python tests/channel_factory.py DIR [--filler N]``: build a channel (used by fixtures)."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--filler", type=int, default=0, help="add N synthetic records")
    parser.add_argument("--bump", action="store_true", help="add bump_packages() to an existing channel")
    parser.add_argument(
        "--published", type=int, default=TIMESTAMP_MS, metavar="MS", help="timestamp of the --bump packages (ms)"
    )
    parser.add_argument(
        "--python-launcher", metavar="PYTHON", help="linux-64 python packages ship bin/python exec'ing PYTHON"
    )
    args = parser.parse_args(argv)
    if args.bump:
        pkgs = [replace(p, timestamp=args.published) for p in bump_packages()]
        write_packages(args.root, pkgs)
        index_channel(args.root)
    else:
        pkgs = stack_packages()
        if args.filler:
            pkgs += history_packages()
            pkgs += filler_packages(max(0, args.filler - len(pkgs)))
        if args.python_launcher:
            pkgs = with_python_launcher(pkgs, args.python_launcher)
        build_channel(args.root, pkgs)
    print(f"{len(pkgs)} packages in {args.root}", flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
