"""`envspec run [TARGET] (--prefix P | --name N) -- CMD ARGS...`: a command in the environment, no conda.

PATH, ``CONDA_PREFIX``, the target's variables and the packages' ``activate.d`` scripts are applied
as ``conda activate`` would (:mod:`envspec.install.activate`); CMD's exit code is envspec's.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.cli.common import Context

if TYPE_CHECKING:
    from envspec.install import activate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", help="refuse an environment installed for another target"
    )
    add_environment_options(parser)
    parser.usage = "%(prog)s [-h] [TARGET] (--prefix PATH | --name NAME) -- CMD [ARGS ...]"
    parser.epilog = "everything after -- is the command and its arguments, passed on unchanged"


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    """``--prefix PATH | --name NAME``: the environment to activate (one of them required)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prefix", "-p", metavar="PATH", help="the environment in this folder")
    where.add_argument("--name", "-n", metavar="NAME", help="the named environment ($CONDA_ENVS_PATH or ~/.conda/envs)")


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> activate.Activation:
    """The activation of the environment the command line names (checked to be envspec's), on top of ``environ``."""
    from envspec.install import activate
    from envspec.install.plan import destination

    where = destination(args.prefix, args.name, environ, Path.home())
    activate.check_environment(where.prefix, args.target)
    return activate.activation(where.prefix, platform=activate.host_platform(), environ=environ, name=where.name)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from envspec.errors import SpecError
    from envspec.install import activate

    command = list(getattr(args, "passthrough", None) or [])
    if not command:
        raise SpecError("no command to run", tip="give it after --: envspec run --prefix ./env -- python -V")
    environ = ctx.settings.environ
    return activate.run_command(resolve(args, environ), command, environ)
