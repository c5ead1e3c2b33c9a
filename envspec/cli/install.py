"""`envspec install [TARGET] (--prefix PATH | --name NAME)`: create an environment from its lockfile.

The packages are exactly those of ``lockfiles/<target>.lock``, each checked against its hash
before anything is linked. A missing or stale lockfile is solved first (``--locked`` refuses it,
``--frozen`` installs it unchecked). py-rattler by default; ``--with conda|mamba|micromamba`` runs that
tool on the same file instead.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
from pathlib import Path

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli.common import (
    add_destination_options,
    add_json_option,
    add_lock_mode_options,
    add_mirror_option,
    load,
    lock_mode,
    print_json,
    progress,
)
from envspec.doctor.machine import host_subdir
from envspec.doctor.recommend import default_target
from envspec.errors import SpecError
from envspec.install.execute import InstallResult
from envspec.install.plan import human_bytes
from envspec.install.run import install_target
from envspec.lock.freshness import ensure_lockfile
from envspec.project import Project
from envspec.spec.model import ResolvedTarget


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


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """SIGTERM is handled like Ctrl-C, so a killed install removes its staging folder."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        return _run(args)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    host = host_subdir()
    if args.target is None:
        target = default_target(spec)
        progress(f"target: {target.name} (detected for this machine)")
    else:
        target = spec.resolve(args.target)
    mirrors = parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV))
    if args.from_bundle is not None:
        return _from_bundle(args, project, target, host)
    if args.lockfile is None:
        _, detail = ensure_lockfile(project, target, mirrors=mirrors, mode=lock_mode(args), progress=progress)
        progress(detail)
    result = install_target(
        project,
        target,
        host=host,
        prefix=args.prefix,
        name=args.name,
        tool=args.tool or "rattler",
        mirrors=mirrors,
        cache_dir=args.cache_dir,
        verify_cache=args.verify_cache,
        lockfile=args.lockfile,
        require_sha256=args.require_sha256,
        replace=args.replace,
        progress=progress,
    )
    progress(use_hint(result.prefix))
    if args.json:
        lockfile = (
            str(args.lockfile) if args.lockfile is not None else project.relative(project.explicit_file(target.name))
        )
        print_json(result.to_json(target=target.name, tool=args.tool or "rattler", lockfile=lockfile))
    else:
        print(summary(result, target.name, args.tool))
    return 0


def _from_bundle(args: argparse.Namespace, project: Project, target: ResolvedTarget, host: str) -> int:
    from envspec.install.bundle import install_from_bundle

    if args.tool or args.lockfile or args.mirror:
        raise SpecError(
            "--from installs the bundle's lockfile with envspec's installer: drop --with, --lockfile, --mirror"
        )
    result = install_from_bundle(
        project,
        target,
        args.from_bundle,
        host=host,
        prefix=args.prefix,
        name=args.name,
        cache_dir=args.cache_dir,
        verify_cache=args.verify_cache,
        require_sha256=args.require_sha256,
        replace=args.replace,
        progress=progress,
    )
    progress(use_hint(result.prefix))
    print(summary(result, target.name, None).replace(" downloaded", " from the bundle", 1))
    return 0


def use_hint(prefix: Path) -> str:
    """How to use the environment without conda (stderr: stdout keeps the one result line)."""
    where = shlex.quote(str(prefix))
    return f'use it: envspec run --prefix {where} -- python, or eval "$(envspec shell-hook --prefix {where})"'


def summary(result: InstallResult, target: str, tool: str | None) -> str:
    """The one result line of an install."""
    if tool is None:
        detail = (
            f"{result.downloaded} downloaded ({human_bytes(result.downloaded_bytes)}), "
            f"{result.cache_hits} from the verified cache"
        )
    else:
        detail = f"with {tool}"
    verb = "replaced" if result.replaced_existing else "created"
    return (
        f"{verb} {result.prefix}: {result.packages} packages of {target}"
        + (f" + {result.pip_packages} from PyPI" if result.pip_packages else "")
        + f", {detail}, in {result.seconds['total']:.2f} s"
    )
