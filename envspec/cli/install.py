"""`envspec install [TARGET] (--prefix PATH | --name NAME)`: create an environment from its lockfile.

The packages are exactly those of ``lockfiles/<target>.lock``, each checked against its hash
before anything is linked. A missing or stale lockfile is solved first (``--locked`` refuses it,
``--frozen`` installs it unchecked). py-rattler by default; ``--with conda|mamba|micromamba`` runs that
tool on the same file instead.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from envspec.cli.common import (
    Context,
    add_destination_options,
    add_json_option,
    add_lock_mode_options,
    add_mirror_option,
    load,
    lock_mode,
    print_json,
    progress,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from envspec.install import InstallOptions
    from envspec.project import Project
    from envspec.spec import ResolvedTarget


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", help="target to install (default: the one for this machine)"
    )
    add_destination_options(parser)
    parser.add_argument(
        "--with",
        dest="tool",
        choices=["conda", "mamba", "micromamba"],
        help="run this tool on the lockfile instead of envspec's py-rattler installer",
    )
    add_mirror_option(parser, "download channel NAME from URL instead")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="package cache (default: $ENVSPEC_PKGS_DIR or ~/.cache/envspec/pkgs)",
    )
    parser.add_argument(
        "--verify-cache",
        action="store_true",
        help="also re-hash every file of the cached packages (slow); modified ones are downloaded again",
    )
    parser.add_argument(
        "--lockfile",
        type=Path,
        metavar="FILE",
        help="install this explicit file as it is (default: lockfiles/<target>.lock, solved first if missing or stale)",
    )
    add_lock_mode_options(parser)
    parser.add_argument(
        "--from",
        dest="from_bundle",
        type=Path,
        metavar="BUNDLE",
        help="install from a bundle `envspec pack` wrote: every package from it, checked, no network",
    )
    parser.add_argument(
        "--require-sha256",
        action="store_true",
        help="refuse (exit 7) when a package has no sha256 in the lockfiles (md5 only)",
    )
    add_json_option(parser, "the installed environment")


@dataclass(frozen=True)
class InstallRequest:
    target: str | None
    prefix: str | None
    name: str | None
    replace: bool = False
    tool: Literal["conda", "mamba", "micromamba"] | None = None
    mirrors: tuple[str, ...] = ()
    cache_dir: Path | None = None
    verify_cache: bool = False
    lockfile: Path | None = None
    locked: bool = False
    frozen: bool = False
    require_sha256: bool = False
    from_bundle: Path | None = None
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> InstallRequest:
        return cls(
            target=args.target,
            prefix=args.prefix,
            name=args.name,
            replace=bool(args.replace),
            tool=args.tool,
            mirrors=tuple(args.mirror),
            cache_dir=args.cache_dir,
            verify_cache=bool(args.verify_cache),
            lockfile=args.lockfile,
            locked=bool(args.locked),
            frozen=bool(args.frozen),
            require_sha256=bool(args.require_sha256),
            from_bundle=args.from_bundle,
            json=bool(args.json),
        )

    def options(self, host: str, mirrors: Mapping[str, str], ctx: Context) -> InstallOptions:
        """The install stage's request: where, with what, from which lockfile, on this ``host``; the
        download limits checked (a bad ``ENVSPEC_STALL_TIMEOUT`` is one line, exit 3)."""
        from envspec.install import InstallOptions

        return InstallOptions(
            host=host,
            prefix=self.prefix,
            name=self.name,
            tool=self.tool or "rattler",
            mirrors=mirrors,
            cache_dir=self.cache_dir or ctx.settings.pkgs_dir,
            verify_cache=self.verify_cache,
            lockfile=self.lockfile,
            require_sha256=self.require_sha256,
            replace=self.replace,
            environ=ctx.settings.environ,
            limits=ctx.settings.fetch_limits(),
        )


def run(args: argparse.Namespace, ctx: Context) -> int:
    with sigterm_as_interrupt():
        return install(InstallRequest.from_args(args), ctx)


def install(request: InstallRequest, ctx: Context) -> int:
    from envspec.doctor import choose_target, collect_facts, host_of
    from envspec.install import install_summary, install_target
    from envspec.lock import LockMode, ensure_lockfile

    project, spec = load(ctx)
    facts = collect_facts(ctx.machine(), str(project.root), hardware_only=True)  # probed once
    host = host_of(facts)
    if request.target is None:
        target = choose_target(spec, facts)
        progress(f"target: {target.name} (detected for this machine)")
    else:
        target = spec.resolve(request.target)
    mirrors = ctx.mirrors(request.mirrors)
    if request.from_bundle is not None:
        return _from_bundle(request, ctx, project, target, host)
    options = request.options(host, mirrors, ctx)  # its limits checked before a lock or download starts
    if request.lockfile is None:
        mode = lock_mode(request.locked, request.frozen)
        limits = ctx.settings.lock_limits() if mode is LockMode.AUTO else None  # only AUTO solves
        _, detail = ensure_lockfile(project, target, mirrors=mirrors, mode=mode, progress=progress, limits=limits)
        progress(detail)
    result = install_target(project, target, options, progress=progress)
    progress(use_hint(result.prefix))
    if request.json:
        lockfile = (
            str(request.lockfile)
            if request.lockfile is not None
            else project.relative(project.explicit_file(target.name))
        )
        print_json(result.to_json(target=target.name, tool=request.tool or "rattler", lockfile=lockfile))
    else:
        print(install_summary(result, target.name, request.tool))
    return 0


def _from_bundle(request: InstallRequest, ctx: Context, project: Project, target: ResolvedTarget, host: str) -> int:
    from envspec.errors import SpecError
    from envspec.install import install_from_bundle, install_summary

    if request.tool or request.lockfile or request.mirrors:
        raise SpecError(
            "--from installs the bundle's lockfile with envspec's installer: drop --with, --lockfile, --mirror"
        )
    assert request.from_bundle is not None
    result = install_from_bundle(
        project, target, request.from_bundle, request.options(host, {}, ctx), progress=progress
    )
    progress(use_hint(result.prefix))
    if request.json:  # the same document as any install; its lockfile is the bundle's
        print_json(result.to_json(target=target.name, tool="rattler", lockfile=str(request.from_bundle)))
    else:
        print(install_summary(result, target.name, None).replace(" downloaded", " from the bundle", 1))
    return 0


def use_hint(prefix: Path) -> str:
    """How to use the environment without conda (stderr: stdout keeps the one result line)."""
    where = shlex.quote(str(prefix))
    return f'use it: envspec run --prefix {where} -- python, or eval "$(envspec shell-hook --prefix {where})"'
