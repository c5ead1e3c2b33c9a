"""`envspec shell-hook [TARGET] (--prefix P | --name N) [--shell SHELL]`: activation for your shell.

``eval "$(envspec shell-hook --prefix ./env)"`` (bash, zsh), ``envspec shell-hook --shell fish
--prefix ./env | source``, ``envspec shell-hook --shell powershell --prefix .\\env | Out-String |
Invoke-Expression``; ``--shell cmd`` prints a batch file to ``call``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from envspec.cli.common import Context, add_environment_options, resolve
from envspec.install import SHELLS, Shell


def default_shell(environ: Mapping[str, str]) -> Shell:
    """The shell named by ``$SHELL`` when envspec knows it; else cmd on Windows, bash elsewhere."""
    name = Path(environ.get("SHELL", "")).name
    for shell in SHELLS:
        if name == shell or (shell == "powershell" and name in ("pwsh", "pwsh.exe", "powershell.exe")):
            return shell
    return "cmd" if os.name == "nt" else "bash"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", help="refuse an environment installed for another target"
    )
    add_environment_options(parser)
    parser.add_argument("--shell", choices=SHELLS, help="the shell to write for (default: from $SHELL)")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from envspec.install import hook_script

    environ = ctx.settings.environ
    shell: Shell = args.shell or default_shell(environ)
    print(hook_script(resolve(args, environ), shell), end="")
    return 0
