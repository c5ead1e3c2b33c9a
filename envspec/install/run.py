"""``install_target(...)``: the install stage's entry point, read top to bottom.

1. read the target's explicit lockfile (and the ``conda-lock.yml`` beside it, for sha256s);
2. plan once (:func:`envspec.install.plan.plan_install`, pure): platform checks, hashes, mirrors,
   destination;
3. execute the plan (:mod:`envspec.install.execute`): py-rattler, or ``--with`` a conda tool.

``envspec install`` and ``envspec up`` both call it; it never prints (progress goes to the
``progress`` callback) and raises :class:`envspec.errors.EnvspecError` subclasses on failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envspec.errors import IntegrityError, SpecError, ToolFailed
from envspec.fsutil import atomic_write_text
from envspec.install import pip
from envspec.install.execute import InstallResult, install_rattler, install_with_tool
from envspec.install.fetch import default_cache_dir
from envspec.install.plan import InstallPlan, LockInput, Tool, destination, plan_install, sha256_gap_message
from envspec.lock import check_pair
from envspec.project import Project
from envspec.settings import FetchLimits
from envspec.spec import ResolvedTarget

Progress = Callable[[str], None]


@dataclass(frozen=True)
class InstallOptions:
    """How to install a target: the one request object from the command line (or ``up``, or a bundle)
    to the stage. ``host``: the subdir this machine installs; ``prefix``/``name``: where (else the
    target's default); ``environ``: what ``name`` is looked up in (``$CONDA_ENVS_PATH``), and the
    default cache (``$XDG_CACHE_HOME``); ``cache_dir``: the package cache (the command layer gives
    ``--cache-dir``, else ``$ENVSPEC_PKGS_DIR``); ``limits``: what bounds the downloads.

    ``local_files`` (``install --from BUNDLE``): verified local copies of locked URLs, fetched from
    there instead (and checked again), recorded in conda-meta under the locked URL; ``lock_source``
    names the lockfile in messages and the environment's marker instead of its path."""

    host: str
    prefix: str | None = None
    name: str | None = None
    tool: Tool = "rattler"
    mirrors: Mapping[str, str] = field(default_factory=dict)
    cache_dir: Path | None = None
    verify_cache: bool = False
    lockfile: Path | None = None
    require_sha256: bool = False
    replace: bool = False
    local_files: Mapping[str, Path] | None = None
    lock_source: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    limits: FetchLimits = field(default_factory=FetchLimits)


def install_target(
    project: Project, target: ResolvedTarget, options: InstallOptions, *, progress: Progress
) -> InstallResult:
    """Create (or replace) the environment of ``target`` from its lockfile; see the module doc."""

    o = options
    lock_path = o.lockfile or project.explicit_file(target.name)
    lockfile = read_lock_input(project, target.name, lock_path, o.lock_source)
    text, source = lockfile.text, lockfile.source
    plan = plan_install(
        target,
        lockfile,
        host=o.host,
        destination=destination(o.prefix, o.name, o.environ, Path.home()),
        mirrors=o.mirrors,
        tool=o.tool,
    )
    pip_plan = pip.plan_pip(text, lock_path, source, o.mirrors)
    local_urls: dict[str, str] = {}
    if o.local_files:
        plan, pip_plan, local_urls = with_local_files(plan, pip_plan, o.local_files)
    progress(hash_summary(sum(1 for e in plan.lock.entries if e.sha256), len(plan.lock.entries)))
    gap = sha256_gap_message(plan.lock, source)
    if gap is not None:
        if o.require_sha256:
            raise IntegrityError(
                f"--require-sha256: {gap}", tip=f"re-lock: `envspec lock --target {target.name}` writes both files"
            )
        progress(f"warning: {gap}")
    progress(f"install: {target.name} from {source} ({len(plan.lock.entries)} packages) into {plan.prefix}")
    executable = shutil.which(o.tool) if o.tool != "rattler" else None
    if o.tool != "rattler" and executable is None:
        raise ToolFailed(f"--with {o.tool}: {o.tool} is not on PATH", tip="install it, or omit --with")
    with pip.fetched(pip_plan, progress, o.limits) as wheel_dir:  # PyPI files verified before anything is linked
        hook = pip.step(pip_plan, wheel_dir, subdir=target.subdir, requested=target.pip, progress=progress)
        if local_urls:
            hook = _recording_locked_urls(local_urls, hook)
        if executable is None:
            result = install_rattler(
                plan,
                cache=o.cache_dir or default_cache_dir(o.environ),
                progress=progress,
                verify_cache=o.verify_cache,
                replace=o.replace,
                after_link=hook,
                limits=o.limits,
            )
        else:
            result = install_with_tool(
                plan, executable=executable, progress=progress, replace=o.replace, after_create=hook
            )
    result.pip_packages = len(pip_plan.wheels) if pip_plan is not None else 0
    return result


def read_lock_input(
    project: Project, target: str, lock_path: Path, source: str | None = None, *, missing: str = ""
) -> LockInput:
    """The explicit lockfile at ``lock_path`` and the ``.conda-lock.yml`` beside it (written by ``envspec
    lock``: it adds each package's sha256), read as regular files only (never a FIFO or /dev/zero); a
    pair torn by an interrupted lock (or a partial checkout) is refused. ``missing``: said after
    "does not exist" (what it means for this command)."""
    from envspec.fsutil import read_regular_text

    source = source or project.relative(lock_path.absolute())
    try:
        text = read_regular_text(lock_path, errors="replace")
    except FileNotFoundError:
        raise SpecError(
            f"lockfile {source} does not exist{missing}",
            tip=f"run `envspec lock --target {target}` first",
        ) from None
    unified = lock_path.with_name(lock_path.name.removesuffix(".lock") + ".conda-lock.yml")
    conda_lock = None
    if unified.is_file():
        conda_lock = (read_regular_text(unified, errors="replace"), project.relative(unified.absolute()))
        check_pair(text, conda_lock[0], explicit_source=source, conda_lock_source=conda_lock[1])
    return LockInput(text, source, conda_lock)


def with_local_files(
    plan: InstallPlan, pip_plan: pip.PipPlan | None, local_files: Mapping[str, Path]
) -> tuple[InstallPlan, pip.PipPlan | None, dict[str, str]]:
    """The plans with each locked URL that has a local copy fetched from it; and ``{file URL: locked URL}``."""
    urls = tuple(
        local_files[e.url].absolute().as_uri() if e.url in local_files else url
        for e, url in zip(plan.lock.entries, plan.urls, strict=True)
    )
    back = {u: e.url for e, u in zip(plan.lock.entries, urls, strict=True) if e.url in local_files}
    if pip_plan is not None:
        wheels = tuple(
            dataclasses.replace(w, url=local_files[w.url].absolute().as_uri()) if w.url in local_files else w
            for w in pip_plan.wheels
        )
        pip_plan = dataclasses.replace(pip_plan, wheels=wheels)
    return dataclasses.replace(plan, urls=urls), pip_plan, back


def _recording_locked_urls(
    local_urls: Mapping[str, str], then: Callable[[Path, Path], None] | None
) -> Callable[[Path, Path], None]:
    def hook(staging: Path, prefix: Path) -> None:
        restore_urls(staging, local_urls)
        if then is not None:
            then(staging, prefix)

    return hook


def restore_urls(staging: Path, local_urls: Mapping[str, str]) -> None:
    """conda-meta records each package's locked URL and channel, not the local file it came from."""
    for meta in (staging / "conda-meta").glob("*.json"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        url = local_urls.get(data.get("url", "")) if isinstance(data, dict) else None
        if url is not None:
            data["url"] = url
            data["channel"] = url.rsplit("/", 2)[0]
            atomic_write_text(meta, json.dumps(data, indent=2) + "\n")


def hash_summary(strong: int, total: int) -> str:
    """How the lockfile pins its packages: "the other K by md5" only when there are K of them."""
    rest = total - strong
    return f"hashes: {strong}/{total} packages pinned by sha256" + (f", the other {rest} by md5" if rest else "")
