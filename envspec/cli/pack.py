"""`envspec pack TARGET -o PATH`: one bundle that installs TARGET on a machine without network.

The target's conda packages and wheels (downloaded hash-checked, ``--mirror`` honoured), its
lockfiles, the pulled model files, and a manifest of sha256s, in one tar written atomically
(:mod:`envspec.install.bundle`). Install it with ``envspec install TARGET --from PATH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from envspec.cli.common import Context, add_mirror_option, load, progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="the target to pack (its lockfile must exist)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="PATH", help="the bundle to write")
    add_mirror_option(parser, "download channel NAME from URL instead")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from envspec.install import pack
    from envspec.units import human_bytes

    limits = ctx.settings.fetch_limits()  # a bad ENVSPEC_STALL_TIMEOUT fails before anything starts
    project, spec = load(ctx)
    target = spec.resolve(args.target)
    mirrors = ctx.mirrors(args.mirror)
    result = pack(project, target, args.output, mirrors=mirrors, progress=progress, limits=limits)
    progress(result.models_note)
    print(
        f"packed {result.path}: {human_bytes(result.size)} ({result.size} bytes), {result.conda} conda packages"
        + (f", {result.pypi} wheels" if result.pypi else "")
        + (f", {result.model_files} model files" if result.model_files else "")
        + f" of {target.name}, in {result.seconds['total']:.2f} s"
    )
    return 0
