"""`envspec completion bash|zsh|fish`: the shell completion script, generated from the parser.

shtab (a maintained library, iterative/shtab) writes it from :func:`envspec.cli.main.build_parser`,
so it always lists the real commands and options. Install it with, e.g.,
``envspec completion bash > ~/.local/share/bash-completion/completions/envspec``,
``envspec completion zsh > "${fpath[1]}/_envspec"`` or
``envspec completion fish > ~/.config/fish/completions/envspec.fish``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from envspec.cli.common import Context

#: Options that name a folder or a file, completed as such (their ``dest``).
FOLDERS: Final = frozenset({"prefix", "out", "cache_dir", "dest", "results_dir"})
FILES: Final = frozenset({"spec", "lockfile", "bundle", "from_bundle", "output"})
SHELLS: Final = ("bash", "zsh", "fish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to write the script for")


def _mark_paths(parser: argparse.ArgumentParser) -> None:
    """Tell shtab which options take paths (every subcommand's parser, recursively)."""
    import shtab

    for action in parser._actions:
        if action.dest in FOLDERS:
            action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
        elif action.dest in FILES:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_paths(sub)


def script(shell: str) -> str:
    """The completion script of the whole ``envspec`` command line for ``shell``."""
    import shtab

    from envspec.cli.main import build_parser

    parser = build_parser(every=True)  # every command's own arguments too
    _mark_paths(parser)
    return str(shtab.complete(parser, shell=shell))


def run(args: argparse.Namespace, ctx: Context) -> int:
    print(script(args.shell), end="")
    return 0
