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
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from envspec.channels import redact
from envspec.errors import ChannelUnreachable, IntegrityError, SpecError
from envspec.fsutil import read_regular_text
from envspec.install.wheels import install_files
from envspec.lock import PYPI_MIRROR_NAME, pip_file, pip_index, read_pins
from envspec.settings import MAX_PACKAGE_BYTES_ENV as MAX_BYTES_ENV
from envspec.settings import STALL_TIMEOUT_ENV as STALL_ENV
from envspec.settings import FetchLimits

Progress = Callable[[str], None]

_LOCK_LINE = re.compile(
    r"^#\s*pip\s+(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*@\s*(?P<url>\S+?)#sha256=(?P<sha>[0-9a-f]{64})\s*$"
)


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
        pins = read_pins(read_regular_text(pip_path), pip_source)  # never a FIFO or /dev/zero
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
    if PYPI_MIRROR_NAME in mirrors:
        index = pip_index(mirrors)
        if index.username is not None:
            auth = (urlsplit(index.url).netloc, index.username, index.password or "")
    return PipPlan(wheels, pip_source, auth)


# ---------------------------------------------------------------------------------------------
# Step 1: fetch and verify
# ---------------------------------------------------------------------------------------------


def _auth_headers(auth: tuple[str, str, str] | None) -> Callable[[str], dict[str, str]]:
    """The pypi mirror's credentials for a URL on the mirror's own host; the downloader sends them
    to that origin only (never along a redirect to another one)."""

    def headers(url: str) -> dict[str, str]:
        if auth is None or urlsplit(url).netloc != auth[0]:
            return {}
        token = base64.b64encode(f"{auth[1]}:{auth[2]}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    return headers


def _unreachable(wheel: PipWheel, reason: object) -> ChannelUnreachable:
    return ChannelUnreachable(
        f"pip package {wheel.name} {wheel.version}: {redact(wheel.url)} is unreachable: {redact(str(reason))}",
        tip=f"check the network, or give the index it was locked from: --mirror {PYPI_MIRROR_NAME}=URL "
        "(credentials in the URL are used, never printed)",
    )


def fetch(plan: PipPlan, dest: Path, progress: Progress, limits: FetchLimits | None = None) -> list[Path]:
    """Download every file of ``plan`` into ``dest``, verified; raises IntegrityError on a mismatch.

    Through :mod:`envspec.download`: the stall guard, the size cap (``limits``, from
    ``ENVSPEC_STALL_TIMEOUT`` and ``ENVSPEC_MAX_PACKAGE_BYTES``; None: the defaults), bounded retries
    and resumes, regular files only for ``file://``; a file name is the URL's last segment decoded
    once and must be one plain name, so nothing lands (or is deleted) outside ``dest``.
    """
    from envspec.download import Cancelled, Downloader, Limits, Stalled, TooLarge, url_filename

    out: list[Path] = []
    bad: list[str] = []
    limits = limits or FetchLimits()
    stall, cap = limits.stall_s, limits.max_package_bytes
    with Downloader(
        Limits(max_bytes=cap, stall_s=stall, retries=limits.retries), headers_for=_auth_headers(plan.auth)
    ) as downloader:
        for n, wheel in enumerate(plan.wheels, 1):
            try:
                name = url_filename(wheel.url)
            except ValueError as exc:
                raise IntegrityError(
                    f"{plan.source}: pip package {wheel.name} {wheel.version}: {redact(wheel.url)}: {exc}; "
                    "nothing was downloaded",
                    tip="the lockfile names a file outside its folder: restore it from git or re-lock",
                ) from None
            try:
                got = downloader.fetch(wheel.url, dest, name)
            except Stalled as exc:
                raise ChannelUnreachable(
                    f"pip package {wheel.name} {wheel.version}: the download of {redact(wheel.url)} stalled ({exc})",
                    tip=f"retry, or raise {STALL_ENV} (now {stall:g} s)",
                ) from None
            except TooLarge as exc:
                raise IntegrityError(
                    f"pip package {wheel.name} {wheel.version}: {redact(wheel.url)} is larger than the {cap} byte "
                    f"cap ({MAX_BYTES_ENV}; {exc}); stopped, nothing was installed",
                    tip="the index serves something other than the locked file; fix the source or re-lock",
                ) from None
            except Cancelled:
                raise
            except OSError as exc:
                raise _unreachable(wheel, exc) from None
            if got.sha256 != wheel.sha256:
                bad.append(f"{name} (sha256 {got.sha256}, lockfile {wheel.sha256})")
                got.path.unlink()
                continue
            out.append(got.path)
            progress(f"pip: {n}/{len(plan.wheels)} verified ({name})")
    if bad:
        raise IntegrityError(
            f"{len(bad)} pip package(s) do not match the lockfile hash: {'; '.join(bad)}; nothing was installed",
            tip="the index or a proxy served different files than were locked: check it, or re-lock if the "
            "release was replaced on purpose",
        )
    return out


@contextlib.contextmanager
def fetched(plan: PipPlan | None, progress: Progress, limits: FetchLimits | None = None) -> Iterator[Path | None]:
    """A temporary folder holding the verified files of ``plan`` (None when there is no pip part)."""
    if plan is None or not plan.wheels:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="envspec-pip-") as tmp:
        fetch(plan, Path(tmp), progress, limits)
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
