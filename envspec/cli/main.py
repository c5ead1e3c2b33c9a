"""Command line: ``main(argv) -> int``. The only place that prints errors and picks exit codes."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, cast

from envspec import __version__
from envspec.cli.common import Context
from envspec.errors import EnvspecError, ExitCode
from envspec.settings import DEBUG_ENV, SPEC_ENV, Settings

if TYPE_CHECKING:
    from envspec.doctor import Probe

#: (name, module, help), one line per command. Each module defines add_arguments(parser) and
#: run(args, ctx) -> int, and imports its stage only inside run(): the parser of one command costs
#: one light module, and `envspec --help` imports none of them.
COMMANDS: list[tuple[str, str, str]] = [
    ("init", "envspec.cli.init", "write a starting envspec.yml in this folder (never over an existing one)"),
    ("targets", "envspec.cli.targets", "list the targets of envspec.yml"),
    ("render", "envspec.cli.render", "render environment files, virtual-package specs, schema and CI from envspec.yml"),
    ("lock", "envspec.cli.lock", "solve every target with conda-lock into lockfiles/ (offline with --mirror)"),
    ("install", "envspec.cli.install", "create an environment from a target's lockfile (no solve, hash-checked)"),
    ("diff", "envspec.cli.diff", "markdown table of lockfile changes per target against a git ref (for PR bodies)"),
    ("doctor", "envspec.cli.doctor", "recommend the target for this machine and check what stands in the way"),
    ("report", "envspec.cli.report", "build report.html and report.md from every target's smoke results and lockfiles"),
    ("smoke", "envspec.cli.smoke", "generate one image in an environment and check it works on its device"),
    ("models", "envspec.cli.models", "lock Hugging Face models (commit, sizes, hashes) and pull them hash-checked"),
    ("up", "envspec.cli.up", "doctor, lock check, install, smoke test and report for one target in one command"),
    ("run", "envspec.cli.run", "run a command in an environment, activated without conda (envspec run -p ENV -- CMD)"),
    ("shell-hook", "envspec.cli.shell_hook", "print the script that activates an environment in your shell"),
    ("pack", "envspec.cli.pack", "pack a target's packages, wheels, models and lockfiles into one bundle"),
    ("completion", "envspec.cli.completion", "print the shell completion script (bash, zsh, fish)"),
]

#: Commands that take everything after the first ``--`` verbatim, as ``args.passthrough``.
PASSTHROUGH: frozenset[str] = frozenset({"run"})


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, ctx: Context) -> int: ...


def _command(module: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(module))


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """Options that come before the command (pip's way): ``envspec --spec PATH COMMAND ...``."""
    parser.add_argument("--version", action="version", version=f"envspec {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=None,
        help=f"show the traceback behind an error (also {DEBUG_ENV}=1)",
    )
    parser.add_argument(
        "--spec",
        default=None,
        metavar="PATH",
        help=f"the one source (default: ./envspec.yml, or ${SPEC_ENV})",
    )


class _GlobalsError(Exception):
    """The global options do not parse: the full parser will say why."""


class _GlobalsParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _GlobalsError(message)


def requested_command(argv: Sequence[str]) -> str | None:
    """The command word, found by parsing the global options as options (``--spec targets report``
    names the spec file ``targets``); None for ``--help``, no command, or global options that do not parse."""
    pre = _GlobalsParser(prog="envspec", add_help=False)
    pre.add_argument("--debug", action="store_true")
    pre.add_argument("--spec")
    pre.add_argument("command", nargs="?")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        known, _ = pre.parse_known_args(list(argv))
    except _GlobalsError:
        return None
    names = {name for name, _, _ in COMMANDS}
    return known.command if known.command in names else None


def build_parser(only: str | None = None, *, every: bool = False) -> argparse.ArgumentParser:
    """The whole command line. Only the command ``only`` gets its own arguments (its module imported);
    ``only=None`` lists every command from :data:`COMMANDS` without importing any; ``every``: each
    command with its own arguments (``envspec completion``)."""
    parser = argparse.ArgumentParser(
        prog="envspec",
        description="Reproducible Stable Diffusion environments on four platforms from one source.",
    )
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_text in COMMANDS:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        if every or only == name:
            _command(module).add_arguments(cmd)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    probe: Probe | None = None,
) -> int:
    """Run one command. ``environ`` (default ``os.environ``) is read once, into :class:`Settings`;
    ``probe`` (default: the real machine) answers every question about the machine."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = requested_command(args_list)
    passthrough: list[str] = []
    if command in PASSTHROUGH and "--" in args_list:
        cut = args_list.index("--")
        args_list, passthrough = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser(only=command)
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage) if "--json" in args_list else contextlib.nullcontext():
            args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = int(exc.code) if isinstance(exc.code, int) else int(ExitCode.USAGE)
        sys.stderr.write(usage.getvalue())
        if code != 0 and usage.getvalue():
            _json_error(command, code, usage.getvalue().strip().splitlines()[-1], None)
        return code
    args.passthrough = passthrough
    settings = Settings.from_environ(os.environ if environ is None else environ)
    overrides: dict[str, Any] = {}
    if args.spec is not None:
        overrides["spec"] = Path(args.spec)
    if args.debug:
        overrides["debug"] = True
    ctx = Context(replace(settings, **overrides), probe)
    try:
        return _command(args._module).run(args, ctx)
    except BaseException as exc:
        code = _report(exc)
        if ctx.settings.debug and not isinstance(exc, SystemExit):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        if code != 0 and getattr(args, "json", False) and not getattr(args, "json_printed", False):
            message, tip = (
                (exc.message, exc.tip) if isinstance(exc, EnvspecError) else (str(exc) or type(exc).__name__, None)
            )
            action = getattr(args, "models_command", None)  # `models lock` / `models pull`
            _json_error(f"{command} {action}" if action else command, code, " ".join(message.split("\n")), tip)
        return code


ERROR_SCHEMA = "envspec.error/1"


def _json_error(command: str | None, code: int, message: str, tip: str | None) -> None:
    """With ``--json``, an error is a JSON document on stdout too (docs/json.md), beside its line on stderr."""
    document = {"schema": ERROR_SCHEMA, "command": command, "exit_code": code, "error": message, "tip": tip}
    with contextlib.suppress(OSError):
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
        sys.stdout.flush()


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
