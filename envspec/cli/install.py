"""`envspec install [TARGET] (--prefix PATH | --name NAME)`: create an environment from its lockfile.

No solve: the packages are exactly those of ``lockfiles/<target>.lock``, each checked against its
hash before anything is linked. py-rattler by default; ``--with conda|mamba|micromamba`` runs that
tool on the same file instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import signal
import subprocess
from pathlib import Path

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli.common import add_destination_options, add_mirror_option, load, progress
from envspec.install.execute import InstallResult
from envspec.install.plan import host_subdir, human_bytes, single_target_for_subdir
from envspec.install.run import install_target
from envspec.spec.model import Spec


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
        "--lockfile", type=Path, metavar="FILE", help="install this explicit file (default: lockfiles/<target>.lock)"
    )
    parser.add_argument(
        "--require-sha256",
        action="store_true",
        help="refuse (exit 7) when a package has no sha256 in the lockfiles (md5 only)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing environment envspec did not create (never a base install or envs/ holder)",
    )


def _rosetta() -> bool:
    """True for an Intel Python translated by Rosetta on Apple silicon."""
    if platform.system() != "Darwin":
        return False
    try:
        out = subprocess.run(
            ["sysctl", "-n", "sysctl.proc_translated"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "1"


def this_host() -> str:
    """This machine's subdir; ``ENVSPEC_HOST_SUBDIR`` overrides it (e.g. an osx-64 env under Rosetta)."""
    override = os.environ.get("ENVSPEC_HOST_SUBDIR")
    return override or host_subdir(platform.system(), platform.machine(), rosetta=_rosetta())


def choose_target(spec: Spec, host: str) -> tuple[str, str]:
    """(target name, why) for a run without TARGET.

    Uses the doctor's detection (``envspec.doctor.recommend.default_target``) when it is available and
    ``ENVSPEC_HOST_SUBDIR`` does not fix the platform, else the spec's single target for the subdir.
    """
    try:
        targeting = (
            None if os.environ.get("ENVSPEC_HOST_SUBDIR") else importlib.import_module("envspec.doctor.recommend")
        )
    except ImportError:
        targeting = None
    if targeting is not None and hasattr(targeting, "default_target"):
        chosen = targeting.default_target(spec)  # -> ResolvedTarget, probing the real machine
        return str(getattr(chosen, "name", chosen)), "detected for this machine"
    targets = [(t.name, t.subdir) for t in spec.resolve_all()]
    return single_target_for_subdir(targets, host), f"the only target for {host}"


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
    host = this_host()
    if args.target is None:
        name, why = choose_target(spec, host)
        progress(f"target: {name} ({why})")
    else:
        name = args.target
    result = install_target(
        project,
        spec.resolve(name),
        host=host,
        prefix=args.prefix,
        name=args.name,
        tool=args.tool or "rattler",
        mirrors=parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV)),
        cache_dir=args.cache_dir,
        verify_cache=args.verify_cache,
        lockfile=args.lockfile,
        require_sha256=args.require_sha256,
        replace=args.replace,
        progress=progress,
    )
    print(summary(result, name, args.tool))
    return 0


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
        f"{verb} {result.prefix}: {result.packages} packages of {target}, {detail}, in {result.seconds['total']:.2f} s"
    )
