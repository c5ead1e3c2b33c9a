"""conda-lock's unified lockfile (``<target>.conda-lock.yml``, format version 1), read in one place.

``envspec lock`` (package names for ``--update``, the summary table), ``envspec diff``, ``envspec
report``, the installer and the doctor all read it through ``read_conda_lock`` (conda packages) and
``read_pip_packages`` (PyPI packages). A file that is not such a lockfile is a
``SpecError`` naming its source, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from envspec.errors import SpecError

FORMAT_VERSION: Final = 1
_ARCHIVE_SUFFIXES: Final = (".conda", ".tar.bz2")
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_TIP: Final = "re-create it with `envspec lock`, or restore it from git"
#: conda-forge's Apple-silicon torch builds have MPS enabled although their build string says
#: ``cpu_generic`` (their build test asserts MPS works): a target must not require ``*mps*``.
MPS_BUILD_SUBDIRS: Final = frozenset({"osx-arm64"})


def torch_build_label(build: str, subdir: str) -> str:
    """A torch build string as people should read it: ``cpu_generic_…`` on osx-arm64 is the MPS build."""
    if subdir in MPS_BUILD_SUBDIRS and build.startswith("cpu"):
        return f"{build}, the MPS build"
    return build


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    build: str | None
    url: str
    platform: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


def build_from_url(url: str) -> str | None:
    """The build string of a package URL: ``<name>-<version>-<build>.conda|.tar.bz2`` (None when
    the URL does not name a conda package). Build strings never contain ``-``."""
    filename = url.rsplit("/", 1)[-1].split("#", 1)[0]
    for suffix in _ARCHIVE_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename.removesuffix(suffix)
            return stem.rsplit("-", 1)[-1] if stem.count("-") >= 2 else None
    return None


@dataclass(frozen=True)
class PipPackage:
    """A PyPI package of a conda-lock file (``manager: pip``)."""

    name: str  # canonical (PEP 503) name
    version: str
    url: str
    sha256: str | None

    @property
    def filename(self) -> str:
        return urlsplit(self.url).path.rsplit("/", 1)[-1]

    @property
    def is_sdist(self) -> bool:
        return not self.filename.endswith(".whl")

    @property
    def tag(self) -> str:
        """The wheel's compatibility tag (``py3-none-any``), or ``sdist``."""
        if self.is_sdist:
            return "sdist"
        return "-".join(self.filename.removesuffix(".whl").split("-")[-3:])


def read_pip_packages(text: str, source: str, platform: str | None = None) -> list[PipPackage]:
    """The pip packages of a conda-lock v1 file (of ``platform`` only, when given), by name."""
    from packaging.utils import canonicalize_name

    out: list[PipPackage] = []
    for _, entry in _package_entries(text, source):
        if entry.get("manager") != "pip" or (platform is not None and entry.get("platform") != platform):
            continue
        sha = _hash(entry["hash"].get("sha256")) if isinstance(entry.get("hash"), dict) else None
        out.append(
            PipPackage(
                name=str(canonicalize_name(str(entry.get("name", "")))),
                version=str(entry.get("version", "")),
                url=str(entry.get("url", "")),
                sha256=sha if sha is not None and _SHA256.match(sha) else None,
            )
        )
    return sorted(out, key=lambda p: p.name)


def _package_entries(text: str, source: str) -> list[tuple[int, dict[str, Any]]]:
    """``(index, entry)`` of every package mapping of a conda-lock v1 file; a SpecError otherwise."""
    import yaml

    # Every scalar as text (BaseLoader): an all-digit md5 must not become an int and lose its
    # leading zeros; the few numbers the format has are converted below.
    loader: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SpecError(f"{source}: not a conda-lock.yml: not valid YAML ({problem})", tip=_TIP) from None
    packages = data.get("package") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(packages, list):
        raise SpecError(f"{source}: not a conda-lock.yml: no 'package' list", tip=_TIP)
    if data.get("version") != str(FORMAT_VERSION):
        raise SpecError(
            f"{source}: conda-lock format version {_version(data.get('version'))}; "
            f"envspec reads version {FORMAT_VERSION}",
            tip=_TIP,
        )
    return [(index, entry) for index, entry in enumerate(packages) if isinstance(entry, dict)]


def read_conda_lock(text: str, source: str, platform: str | None = None) -> list[LockedPackage]:
    """The conda packages of a conda-lock v1 file (of ``platform`` only, when given)."""
    out: list[LockedPackage] = []
    for index, entry in _package_entries(text, source):
        if entry.get("manager", "conda") != "conda":
            continue
        if not all(isinstance(entry.get(key), str) and entry[key] for key in ("name", "version")):
            raise SpecError(f"{source}: package.{index}: needs a 'name' and a 'version'", tip=_TIP)
        if platform is not None and entry.get("platform") != platform:
            continue
        url = str(entry.get("url", ""))
        build = str(entry["build"]) if isinstance(entry.get("build"), str) and entry["build"] else build_from_url(url)
        hashes: dict[str, Any] = entry["hash"] if isinstance(entry.get("hash"), dict) else {}
        size = entry.get("size")
        out.append(
            LockedPackage(
                name=str(entry["name"]),
                version=str(entry["version"]),
                build=build,
                url=url,
                platform=str(entry.get("platform", "")),
                md5=_hash(hashes.get("md5")),
                sha256=_hash(hashes.get("sha256")),
                size=int(size) if isinstance(size, str) and size.isascii() and size.isdigit() else None,
            )
        )
    return out


def _hash(value: object) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _version(value: object) -> str:
    """The format version as YAML would read it: ``2`` for a number, ``'2.0'`` quoted otherwise."""
    return value if isinstance(value, str) and value.isascii() and value.isdigit() else repr(value)


#: The package whose build says which torch a lock holds (cuda*/cpu*/...): conda-forge's ``pytorch``
#: (``envspec.spec.schema.TORCH_PACKAGE``), never ``libtorch`` (its C++ library, listed first in lock order).
TORCH_PACKAGE: Final = "pytorch"


@dataclass(frozen=True)
class CondaLockSummary:
    """What the lock stage's summary table and the report show of one platform of a conda-lock file."""

    packages: int  # conda packages (virtual ``__`` ones left out)
    torch: LockedPackage | None  # the ``pytorch`` package, if the lock has one
    subdir: str = ""

    @property
    def torch_text(self) -> str:
        """``"2.9.1 cuda129_h0"`` (osx-arm64's ``cpu_generic`` builds labelled as the MPS build), or ``"-"``."""
        if self.torch is None:
            return "-"
        build = torch_build_label(self.torch.build, self.subdir) if self.torch.build else "?"
        return f"{self.torch.version} {build}"


def summarize(text: str, source: str, platform: str) -> CondaLockSummary:
    """The one summary of a conda-lock file's ``platform``, shared by ``envspec lock`` and the report."""
    return summary_of(read_conda_lock(text, source, platform), platform)


def summary_of(packages: Iterable[LockedPackage], platform: str) -> CondaLockSummary:
    """:func:`summarize` of the packages :func:`read_conda_lock` read (of every platform)."""
    mine = [p for p in packages if p.platform == platform and not p.name.startswith("__")]
    torch = next((p for p in mine if p.name == TORCH_PACKAGE), None)
    return CondaLockSummary(packages=len(mine), torch=torch, subdir=platform)
