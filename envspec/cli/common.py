"""What every command shares: the run's context (settings, the machine), loading the project and
spec, and the options several commands take. Light on purpose: a command's parser imports this."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from envspec.project import Project
from envspec.settings import MIRRORS_ENV, Settings

if TYPE_CHECKING:  # imported where needed: a command that never loads the spec stays light
    from envspec.doctor import Probe
    from envspec.install import Activation
    from envspec.lock import LockMode
    from envspec.spec import Spec


@dataclass(frozen=True)
class Context:
    """What a command gets besides its request: the settings read once at the edge, and the probe
    that answers every question about the machine (None: the real one)."""

    settings: Settings
    probe: Probe | None = None

    def machine(self) -> Probe:
        """The probe: the one given, else the real machine seen through this run's environment."""
        if self.probe is not None:
            return self.probe
        from envspec.doctor import SystemProbe

        return SystemProbe(environ=self.settings.environ)

    def mirrors(self, items: Sequence[str]) -> dict[str, str]:
        """``--mirror`` items over ``$ENVSPEC_MIRRORS`` (the items win)."""
        from envspec.channels import parse_mirrors

        return parse_mirrors(items, self.settings.mirrors)

    @property
    def project(self) -> Project:
        return Project.from_spec_path(self.settings.spec)


def load(ctx: Context) -> tuple[Project, Spec]:
    from envspec.spec import load_spec

    spec = load_spec(ctx.settings.spec)
    return ctx.project, spec


def add_mirror_option(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--mirror NAME=URL`` (repeatable), shared by every command that reaches channels."""
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="NAME=URL",
        help=f"{purpose} (repeatable; also {MIRRORS_ENV}=NAME=URL,...); file:/// works",
    )


def add_destination_options(parser: argparse.ArgumentParser) -> None:
    """``--prefix PATH | --name NAME`` (one of them required) and ``--replace``, for commands that
    create an environment."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prefix", "-p", metavar="PATH", help="create the environment in this folder")
    where.add_argument(
        "--name", "-n", metavar="NAME", help="create a named environment ($CONDA_ENVS_PATH or ~/.conda/envs)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing environment envspec did not create (never a base install or envs/ holder)",
    )


def progress(message: str) -> None:
    """Progress for people goes to stderr, so stdout stays clean for results and --json."""
    print(message, file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return "\n".join(lines)


def add_lock_mode_options(parser: argparse.ArgumentParser) -> None:
    """``--locked | --frozen``: what to do with a missing or stale lockfile before installing."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--locked",
        action="store_true",
        help="refuse a missing or stale lockfile (exit 1, nothing installed); CI uses this",
    )
    mode.add_argument(
        "--frozen",
        action="store_true",
        help="install the lockfile as it is, without checking it against envspec.yml",
    )


def lock_mode(locked: bool, frozen: bool) -> LockMode:
    """The default solves a missing or stale lockfile first, then installs it."""
    from envspec.lock import LockMode

    if locked:
        return LockMode.LOCKED
    return LockMode.FROZEN if frozen else LockMode.AUTO


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: stdout carries only one JSON document (docs/json.md); progress stays on stderr, and
    an error is a JSON document too (``envspec.error/1``) with the same exit code."""
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as one JSON document on stdout (schema in docs/json.md); errors too",
    )


def print_json(document: Mapping[str, Any]) -> None:
    """One JSON document on stdout, keys in a stable order, one line."""
    sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
    sys.stdout.flush()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled like Ctrl-C while the block runs, so a killed install (or up) removes its
    staging folder and leaves files being replaced as they were. Outside the main thread: as is."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_environment_options(parser: argparse.ArgumentParser) -> None:
    """``--prefix PATH | --name NAME``: the environment to activate (one of them required)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prefix", "-p", metavar="PATH", help="the environment in this folder")
    where.add_argument("--name", "-n", metavar="NAME", help="the named environment ($CONDA_ENVS_PATH or ~/.conda/envs)")


def resolve(args: argparse.Namespace, environ: Mapping[str, str]) -> Activation:
    """The activation of the environment the command line names (checked to be envspec's), on top of ``environ``."""
    from envspec.install import activation, check_environment, destination, host_platform

    where = destination(args.prefix, args.name, environ, Path.home())
    check_environment(where.prefix, args.target)
    return activation(where.prefix, platform=host_platform(), environ=environ, name=where.name)
