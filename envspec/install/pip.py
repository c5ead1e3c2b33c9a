"""The PyPI part of an install: the lockfile's wheels, hash-checked, installed by pypa ``installer``.

``lockfiles/<t>.lock`` carries conda-lock's ``# pip NAME @ URL#sha256=HEX`` lines (plain conda skips
them) and ``lockfiles/<t>.pip.txt`` the same packages as ``NAME==VERSION --hash=sha256:HEX``; the
two must agree. After the conda packages are linked (into the staging folder, before the swap),

1. every file is downloaded from its locked URL (``--mirror pypi=URL`` only adds that mirror's
   credentials to URLs on its host; they are never printed) while its sha256 is computed; one
   mismatch aborts the install (exit 7) before anything is installed, naming every bad file;
2. the verified files are installed by pypa ``installer`` into the staging folder, already right
   for the final prefix (scripts, Windows launchers, RECORD, bytecode): :mod:`envspec.install.wheels`.

A failure anywhere leaves no environment behind (the staging folder is removed). ``--with
conda|mamba|micromamba`` runs both steps on the prefix the tool created.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

from envspec.errors import ChannelUnreachable, IntegrityError, SpecError
from envspec.install.wheels import install_files
from envspec.lock.pypi import MIRROR_NAME, pip_file, pip_index, read_pins, redact

Progress = Callable[[str], None]

_LOCK_LINE = re.compile(
    r"^#\s*pip\s+(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*@\s*(?P<url>\S+?)#sha256=(?P<sha>[0-9a-f]{64})\s*$"
)
HTTP_TIMEOUT_S: Final = 60.0
CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class PipWheel:
    name: str
    version: str
    url: str  # as locked (no credentials)
    sha256: str

    @property
    def filename(self) -> str:
        return unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])

    @property
    def is_sdist(self) -> bool:
        return not self.filename.endswith(".whl")


@dataclass(frozen=True)
class PipPlan:
    wheels: tuple[PipWheel, ...]
    source: str  # the .pip.txt, for messages
    auth: tuple[str, str, str] | None = None  # (netloc, username, password) of the pypi mirror


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def plan_pip(lock_text: str, lock_path: Path, source: str, mirrors: Mapping[str, str]) -> PipPlan | None:
    """The pip part of the lockfile ``lock_path`` (None when it has none). Pure but for reading
    ``<t>.pip.txt`` beside it; raises SpecError / IntegrityError when the two files disagree."""
    urls = {}
    for line in lock_text.splitlines():
        m = _LOCK_LINE.match(line.strip())
        if m:
            urls[_canonical(m.group("name"))] = (m.group("url"), m.group("sha"))
    pip_path = pip_file(lock_path)
    pip_source = source.removesuffix(".lock") + ".pip.txt"
    try:
        pins = read_pins(pip_path.read_text(encoding="utf-8"), pip_source)
    except FileNotFoundError:
        if not urls:
            return None
        raise SpecError(
            f"{source} has {len(urls)} pip package(s) but {pip_source} does not exist",
            tip="re-create both with `envspec lock`, or restore them from git",
        ) from None
    by_pin = {p.name: p for p in pins}
    if set(by_pin) != set(urls):
        only = sorted(set(by_pin) ^ set(urls))
        raise IntegrityError(
            f"{source} and {pip_source} disagree about the pip packages ({', '.join(only)})",
            tip="re-create both with `envspec lock`, or restore them from git",
        )
    bad = [n for n, p in by_pin.items() if urls[n][1] != p.sha256]
    if bad:
        raise IntegrityError(
            f"{source} and {pip_source} give different sha256 for {', '.join(sorted(bad))}",
            tip="one of them was edited: re-create both with `envspec lock`, or restore them from git",
        )
    wheels = tuple(PipWheel(p.name, p.version, urls[p.name][0], p.sha256) for p in pins)
    auth = None
    if MIRROR_NAME in mirrors:
        index = pip_index(mirrors)
        if index.username is not None:
            auth = (urlsplit(index.url).netloc, index.username, index.password or "")
    return PipPlan(wheels, pip_source, auth)


# ---------------------------------------------------------------------------------------------
# Step 1: fetch and verify
# ---------------------------------------------------------------------------------------------


def _open(url: str, auth: tuple[str, str, str] | None) -> Any:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path)).open("rb")
    headers = {"User-Agent": "envspec"}
    if auth is not None and parts.netloc == auth[0]:
        token = base64.b64encode(f"{auth[1]}:{auth[2]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(urlunsplit(parts), headers=headers)
    return urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)


def fetch(plan: PipPlan, dest: Path, progress: Progress) -> list[Path]:
    """Download every file of ``plan`` into ``dest``, verified; raises IntegrityError on a mismatch."""
    out: list[Path] = []
    bad: list[str] = []
    for n, wheel in enumerate(plan.wheels, 1):
        path = dest / wheel.filename
        sha = hashlib.sha256()
        try:
            with _open(wheel.url, plan.auth) as src, path.open("wb") as dst:
                while chunk := src.read(CHUNK):
                    sha.update(chunk)
                    dst.write(chunk)
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ChannelUnreachable(
                f"pip package {wheel.name} {wheel.version}: {redact(wheel.url)} is unreachable: {redact(str(reason))}",
                tip=f"check the network, or give the index it was locked from: --mirror {MIRROR_NAME}=URL "
                "(credentials in the URL are used, never printed)",
            ) from None
        if sha.hexdigest() != wheel.sha256:
            bad.append(f"{wheel.filename} (sha256 {sha.hexdigest()}, lockfile {wheel.sha256})")
            path.unlink()
            continue
        out.append(path)
        progress(f"pip: {n}/{len(plan.wheels)} verified ({wheel.filename})")
    if bad:
        raise IntegrityError(
            f"{len(bad)} pip package(s) do not match the lockfile hash: {'; '.join(bad)}; nothing was installed",
            tip="the index or a proxy served different files than were locked: check it, or re-lock if the "
            "release was replaced on purpose",
        )
    return out


@contextlib.contextmanager
def fetched(plan: PipPlan | None, progress: Progress) -> Iterator[Path | None]:
    """A temporary folder holding the verified files of ``plan`` (None when there is no pip part)."""
    if plan is None or not plan.wheels:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="envspec-pip-") as tmp:
        fetch(plan, Path(tmp), progress)
        yield Path(tmp)


# ---------------------------------------------------------------------------------------------
# Step 2: installed with pypa installer (envspec.install.wheels)
# ---------------------------------------------------------------------------------------------


def step(
    plan: PipPlan | None, wheel_dir: Path | None, *, subdir: str, requested: Sequence[str], progress: Progress
) -> Callable[[Path, Path], None] | None:
    """The hook the installer calls with (folder being built, final prefix) after the conda part.
    ``requested``: the spec's ``pip:`` requirements (they get ``REQUESTED``)."""
    if plan is None or wheel_dir is None:
        return None
    files = [wheel_dir / w.filename for w in plan.wheels]

    def run(prefix: Path, final_prefix: Path) -> None:
        progress(f"pip: installing {len(files)} package(s) with pypa installer")
        install_files(
            files, prefix, final_prefix, subdir=subdir, requested=requested, progress=progress, work=wheel_dir
        )

    return run


def pip_names(lock_text: str) -> Sequence[str]:
    """The names of the ``# pip`` lines of an explicit lockfile (for summaries)."""
    return [m.group("name") for line in lock_text.splitlines() if (m := _LOCK_LINE.match(line.strip()))]
