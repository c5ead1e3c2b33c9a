"""Create an environment from an explicit lockfile: no solve, every package hash-checked first.

Steps (each takes the previous result):

1. **fetch**: every package of the lockfile is either a *verified cache hit* (its extracted folder
   in the package cache was made from an archive whose md5/sha256 envspec checked against a
   lockfile, recorded in ``<cache>/.envspec/<stem>.json`` together with rattler's own cache stamp)
   or is downloaded (``file://`` copied, ``http(s)://`` fetched; ``--mirror`` applied) while being
   hashed. A mismatch aborts with :class:`IntegrityError` naming every bad package, before
   anything is linked.
2. **link**: py-rattler links the packages into a *staging* folder beside the prefix (paths in
   files are patched for the final prefix), and conda's ``conda-meta/state`` gets the target's
   activation variables.
3. **swap**: the staging folder is renamed to the prefix (an existing environment is moved aside
   first and deleted afterwards). A failure at any step removes the staging folder: a new prefix
   never appears, an existing one is left as it was.

py-rattler can crash at interpreter exit after its work: callers run this in the ``envspec`` CLI
(which leaves with ``os._exit``) or in a child process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from envspec.errors import EnvspecError, ExitCode, ToolFailed
from envspec.fsutil import atomic_write_bytes, current_umask, run_lock
from envspec.install.fetch import DOWNLOAD_DIR, SIDECAR_DIR, fetch_all
from envspec.install.link import link, made_by_envspec, share_metadata, write_marker, write_state
from envspec.install.plan import (
    InstallPlan,
    tool_command,
)
from envspec.settings import FetchLimits

Progress = Callable[[str], None]


class PrefixNotEnvironment(EnvspecError):
    """The prefix exists and holds something envspec must not replace (exit 2)."""

    exit_code = ExitCode.USAGE


INSTALL_SCHEMA: Final = "envspec.install/1"


@dataclass
class InstallResult:
    prefix: Path
    packages: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    cache_hits: int = 0
    replaced_existing: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    pip_packages: int = 0  # PyPI packages installed after the conda ones (envspec.install.pip)

    def to_json(self, *, target: str, tool: str, lockfile: str | None) -> dict[str, Any]:
        """The ``envspec install --json`` document (schema ``envspec.install/1``, docs/json.md)."""
        return {
            "schema": INSTALL_SCHEMA,
            "target": target,
            "prefix": str(self.prefix),
            "tool": tool,
            "lockfile": lockfile,
            "packages": self.packages,
            "pip_packages": self.pip_packages,
            "downloaded": self.downloaded,
            "downloaded_bytes": self.downloaded_bytes,
            "cache_hits": self.cache_hits,
            "replaced_existing": self.replaced_existing,
            "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
        }


# ---------------------------------------------------------------------------------------------
# Step 3: swap, and the whole run
# ---------------------------------------------------------------------------------------------


#: What a conda *installation* (base) has and an environment does not.
_BASE_SIGNS: Final = ("condabin", "pkgs", "envs", "bin/conda", "Scripts/conda.exe", "_conda.exe")


def _protected(prefix: Path) -> str | None:
    """Why ``prefix`` may never be replaced (a base install, a holder of environments), or None."""
    envs = sorted(p.parent.name for p in prefix.glob("envs/*/conda-meta") if p.is_dir())
    if envs:
        return f"it holds other environments (envs/{', envs/'.join(envs[:3])}{', ...' if len(envs) > 3 else ''})"
    signs = [sign for sign in _BASE_SIGNS if (prefix / sign).exists()]
    if signs:
        return f"it is a conda installation, not an environment (it has {', '.join(signs)})"
    return None


def check_prefix(prefix: Path, *, replace: bool = False) -> int | None:
    """None when ``prefix`` does not exist; else the number of packages of what will be replaced.

    An empty folder is replaced (0). An environment is replaced only when envspec made it (its
    ``conda-meta/envspec.marker``) or ``replace`` says so; a conda base installation or a folder
    holding environments (``envs/*/conda-meta``) never is, and neither is anything else.
    """
    if not prefix.exists():
        return None
    if not prefix.is_dir():
        raise PrefixNotEnvironment(f"{prefix} exists and is not a folder")
    if not any(prefix.iterdir()):
        return 0
    if not (prefix / "conda-meta").is_dir():
        raise PrefixNotEnvironment(
            f"{prefix} exists and is not a conda environment (no conda-meta/); refusing to replace it",
            tip="choose a new or empty --prefix",
        )
    why = _protected(prefix)
    if why is not None:
        raise PrefixNotEnvironment(
            f"refusing to replace {prefix}: {why}; replacing it would delete all of it",
            tip=f"install into a new prefix, e.g. --prefix {prefix / 'envs' / 'sd'}",
        )
    if not (replace or made_by_envspec(prefix)):
        raise PrefixNotEnvironment(
            f"{prefix} is a conda environment envspec did not create; refusing to replace it",
            tip="pass --replace to replace it as a whole, or choose a new --prefix",
        )
    return sum(1 for _ in (prefix / "conda-meta").glob("*.json"))


def _announce_replace(prefix: Path, existing: int | None, progress: Progress) -> None:
    if existing:
        why = "made by envspec" if made_by_envspec(prefix) else "--replace"
        progress(f"replace: the existing environment {prefix} ({existing} packages, {why}) is replaced as a whole")


def _swap(staging: Path, prefix: Path) -> bool:
    if not prefix.exists():
        staging.rename(prefix)
        return False
    old = prefix.with_name(f"{_old_prefix(prefix)}{os.getpid()}-{time.time_ns()}")
    prefix.rename(old)
    try:
        staging.rename(prefix)
    except BaseException:
        old.rename(prefix)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True


#: The staging folder's name is ``.<up to 12 characters of the prefix's name>~<pid>``: at most 21
#: characters whatever the prefix is called, and never more than 9 over a short one, because every
#: file of the environment is linked inside it first and Windows without long paths stops at 260.
STAGING_NAME_CHARS: Final = 12


def _staging_prefix(prefix: Path) -> str:
    return f".{prefix.name[:STAGING_NAME_CHARS]}~"


def _legacy_staging_prefix(prefix: Path) -> str:
    """What envspec before 2026-12 called its staging folders (cleaned up like today's)."""
    return f".{prefix.name}.envspec-new-"


def _old_prefix(prefix: Path) -> str:
    return f".{prefix.name}.envspec-old-"


def _dead_runs(prefix: Path, name_prefix: str) -> list[Path]:
    """Folders ``<name_prefix><pid>-...`` beside ``prefix`` whose process is gone, newest first."""
    found: list[tuple[int, Path]] = []
    for path in prefix.parent.glob(name_prefix + "*"):
        pid_text, _, rest = path.name.removeprefix(name_prefix).partition("-")
        if not (pid_text.isascii() and pid_text.isdigit()):
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            stamp = rest.split("-", 1)[0]
            found.append((int(stamp) if stamp.isascii() and stamp.isdigit() else 0, path))
        except OSError:
            continue
    return [path for _, path in sorted(found, reverse=True)]


def remove_stale_staging(prefix: Path) -> list[Path]:
    """Folders of ``prefix`` left by killed runs (their process is gone); POSIX only.

    Staging folders are removed. An environment a run had moved aside (``.envspec-old-``) is put
    back when the prefix is missing (killed between the two renames of the swap), else removed
    (killed while deleting it).
    """
    removed: list[Path] = []
    if os.name != "posix" or not prefix.parent.is_dir():
        return removed
    for path in [*_dead_runs(prefix, _staging_prefix(prefix)), *_dead_runs(prefix, _legacy_staging_prefix(prefix))]:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    for path in _dead_runs(prefix, _old_prefix(prefix)):
        if not prefix.exists() and not prefix.is_symlink() and (path / "conda-meta").is_dir():
            path.rename(prefix)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _new_staging(prefix: Path) -> Path:
    """``.<name>~<pid>``, made here and now (``-<n>`` after it if a folder of that name is in the way)."""
    base = f"{_staging_prefix(prefix)}{os.getpid()}"
    for n in range(1000):
        staging = prefix.parent / (base if n == 0 else f"{base}-{n}")
        try:
            staging.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return staging
    raise FileExistsError(f"{prefix.parent}: no free staging folder name {base}-N")


@contextlib.contextmanager
def _staging_dir(prefix: Path) -> Any:
    """A fresh folder beside ``prefix`` (same filesystem, so the final rename is atomic)."""
    created: list[Path] = []
    parent = prefix.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    prefix.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(prefix)
    staging = _new_staging(prefix)
    try:
        if os.name == "posix":  # mkdtemp makes it owner-only; a prefix follows the umask, as conda's do
            staging.chmod(0o777 & ~current_umask())
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not prefix.exists():
            for folder in created:  # innermost first: only folders this run made, only if empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise


def install_rattler(
    plan: InstallPlan,
    *,
    cache: Path,
    progress: Progress,
    verify_cache: bool = False,
    replace: bool = False,
    after_link: Callable[[Path, Path], None] | None = None,
    limits: FetchLimits | None = None,
) -> InstallResult:
    """Fetch + verify everything, link into a staging folder, then swap it into place.
    ``after_link(staging, prefix)`` runs before the swap (the PyPI packages, envspec.install.pip);
    ``limits`` bound the downloads (None: the defaults)."""
    lock, prefix = plan.lock, plan.prefix
    if prefix.is_symlink():  # replace the environment it points to, not the link
        prefix = prefix.resolve()
    report = InstallResult(prefix=prefix, packages=len(lock.entries))
    existing = check_prefix(prefix, replace=replace)
    _announce_replace(prefix, existing, progress)
    cache = cache.absolute()
    cache.mkdir(parents=True, exist_ok=True)
    with run_lock(cache / SIDECAR_DIR / "install.lock", "installing from this package cache"):
        # Downloads live only for one run (the lock makes the folder this run's alone): whatever
        # an aborted run left, and whatever this one fetched, is gone when it ends.
        shutil.rmtree(cache / DOWNLOAD_DIR, ignore_errors=True)
        try:
            t0 = time.perf_counter()
            fetched = fetch_all(lock, plan.urls, cache, progress, verify_cache=verify_cache, limits=limits)
            t1 = time.perf_counter()
            report.cache_hits = sum(1 for f in fetched if f.archive is None)
            report.downloaded = len(fetched) - report.cache_hits
            report.downloaded_bytes = sum(f.size for f in fetched if f.archive is not None)
            with _staging_dir(prefix) as staging:
                link(fetched, staging, prefix, cache, progress)
                write_marker(staging, plan.target, plan.source)
                write_state(staging, plan.variables)
                share_metadata(staging)
                if after_link is not None:
                    after_link(staging, prefix)
                t2 = time.perf_counter()
                report.replaced_existing = _swap(staging, prefix)
            t3 = time.perf_counter()
        finally:
            shutil.rmtree(cache / DOWNLOAD_DIR, ignore_errors=True)
    report.seconds = {"fetch": t1 - t0, "link": t2 - t1, "swap": t3 - t2, "total": t3 - t0}
    return report


def install_with_tool(
    plan: InstallPlan,
    *,
    executable: str,
    progress: Progress,
    replace: bool = False,
    after_create: Callable[[Path, Path], None] | None = None,
) -> InstallResult:
    """Run conda/mamba/micromamba on the same explicit file (mirrored URLs if --mirror)."""
    tool, prefix = plan.tool, plan.prefix
    assert plan.tool_lock_text is not None, "a tool install is planned with its explicit text"
    # What a killed rattler run left beside the prefix (staging, an environment moved aside) is
    # repaired first, exactly as the rattler path does, so the prefix check sees the real state.
    for path in remove_stale_staging(prefix):
        progress(f"removed {path}, left by a killed install")
    existing = check_prefix(prefix, replace=replace)
    _announce_replace(prefix, existing, progress)
    new_prefix = not prefix.exists()
    with tempfile.TemporaryDirectory(prefix="envspec-install-") as tmp:
        explicit_file = Path(tmp) / "explicit.lock"
        atomic_write_bytes(explicit_file, plan.tool_lock_text.encode("utf-8"))
        cmd = tool_command(tool, executable, prefix, explicit_file)
        progress(f"running: {' '.join(cmd)}")
        t0 = time.perf_counter()
        try:
            # The tool's own output goes to stderr: stdout is for envspec's result.
            proc = subprocess.run(cmd, stdout=sys.stderr, check=False)
            if proc.returncode != 0:
                raise ToolFailed(
                    f"{tool} failed with exit code {proc.returncode}: {' '.join(cmd)}"
                    + ("; the new prefix it started was removed" if new_prefix and prefix.exists() else "")
                )
            if after_create is not None:  # the PyPI packages (envspec.install.pip), on the created prefix
                after_create(prefix, prefix)
        except BaseException:  # a failed or interrupted tool: a new prefix must not be left half made
            if new_prefix:
                shutil.rmtree(prefix, ignore_errors=True)
            raise
    write_marker(prefix, plan.target, plan.source)
    write_state(prefix, plan.variables)
    share_metadata(prefix)
    report = InstallResult(prefix=prefix, packages=len(plan.lock.entries), replaced_existing=existing is not None)
    report.seconds = {"total": time.perf_counter() - t0}
    return report
