"""Command line: ``main(argv) -> int``. The only place that prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Protocol, cast

from envspec import __version__
from envspec.errors import EnvspecError, ExitCode

#: (name, module, help). Each module defines add_arguments(parser) and run(args) -> int.
#: Modules are imported only when their command runs, so `envspec targets` stays fast.
COMMANDS: list[tuple[str, str, str]] = [
    ("targets", "envspec.cli.targets", "list the targets of envspec.yml"),
    ("render", "envspec.cli.render", "render environment files, virtual-package specs, schema and CI from envspec.yml"),
    (
        "lock",
        "envspec.cli.lock",
        "solve every target with conda-lock into lockfiles/ (incremental, offline with --mirror)",
    ),
    ("install", "envspec.cli.install", "create an environment from a target's lockfile (no solve, hash-checked)"),
    ("diff", "envspec.cli.diff", "markdown table of lockfile changes per target against a git ref (for PR bodies)"),
    ("doctor", "envspec.cli.doctor", "recommend the target for this machine and check what stands in the way"),
    ("report", "envspec.cli.report", "build report.html and report.md from every target's smoke results and lockfiles"),
    ("smoke", "envspec.cli.smoke", "generate one image in an environment and check it works on its device"),
    ("models", "envspec.cli.models", "lock Hugging Face models (commit, sizes, hashes) and pull them hash-checked"),
    ("up", "envspec.cli.up", "doctor, lock check, install, smoke test and report for one target in one command"),
]


DEBUG_ENV = "ENVSPEC_DEBUG"


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _command(module: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(module))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="envspec",
        description="Reproducible Stable Diffusion environments on four platforms from one source.",
    )
    parser.add_argument("--version", action="version", version=f"envspec {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get(DEBUG_ENV)),
        help=f"show the traceback behind an error (also {DEBUG_ENV}=1)",
    )
    parser.add_argument(
        "--spec",
        default=os.environ.get("ENVSPEC_SPEC", "envspec.yml"),
        metavar="PATH",
        help="the one source (default: ./envspec.yml, or $ENVSPEC_SPEC)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_text in COMMANDS:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        if only is None or only == name:
            _command(module).add_arguments(cmd)
    return parser


def _requested_command(argv: Sequence[str]) -> str | None:
    names = {name for name, _, _ in COMMANDS}
    return next((a for a in argv if a in names), None)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_requested_command(args_list))
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code) if isinstance(exc.code, int) else int(ExitCode.USAGE)
    try:
        return _command(args._module).run(args)
    except BaseException as exc:
        code = _report(exc)
        if args.debug and not isinstance(exc, SystemExit):
            traceback.print_exception(exc, file=sys.stderr)
        return code


def _report(exc: BaseException) -> int:
    """The one-line message and exit code for anything a command raised (re-raises the unexpected)."""
    try:
        raise exc
    except EnvspecError as err:
        from envspec.channels import printable, redact

        print(printable(redact(err.one_line())), file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted; files that were being replaced are left as they were", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except OSError as os_err:  # the system refused a file operation no command anticipated
        where = " -> ".join(str(f) for f in (os_err.filename, os_err.filename2) if f is not None)
        print(
            f"error: {where + ': ' if where else ''}{os_err.strerror or os_err} "
            "(tip: check that the path is a writable file or folder as the command expects)",
            file=sys.stderr,
        )
        return int(ExitCode.TOOL_FAILED)


def entry() -> None:
    """Console-script entry point."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # py-rattler can crash at interpreter exit after its work is done; exit without teardown
    # so the exit status is the truthful one computed above.
    os._exit(code)
