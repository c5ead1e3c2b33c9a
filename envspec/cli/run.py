"""`envspec run [TARGET] (--prefix P | --name N) -- CMD ARGS...`: a command in the environment, no conda.

PATH, ``CONDA_PREFIX``, the target's variables and the packages' ``activate.d`` scripts are applied
as ``conda activate`` would (:mod:`envspec.install.activate`); CMD's exit code is envspec's.
"""

from __future__ import annotations

import argparse

from envspec.cli.common import Context, add_environment_options, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", help="refuse an environment installed for another target"
    )
    add_environment_options(parser)
    parser.usage = "%(prog)s [-h] [TARGET] (--prefix PATH | --name NAME) -- CMD [ARGS ...]"
    parser.epilog = "everything after -- is the command and its arguments, passed on unchanged"


def run(args: argparse.Namespace, ctx: Context) -> int:
    from envspec.errors import SpecError
    from envspec.install import run_command

    command = list(getattr(args, "passthrough", None) or [])
    if not command:
        raise SpecError("no command to run", tip="give it after --: envspec run --prefix ./env -- python -V")
    environ = ctx.settings.environ
    return run_command(resolve(args, environ), command, environ)
