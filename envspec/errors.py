"""One error class per failure kind, each with its own exit code.

The one exit-code table: every command maps to it, and the smoke test (which runs in an environment
without envspec and keeps a copy in ``envspec.smoke.cli``, checked equal by a test) exits with it too.
Only ``envspec.cli.main.main`` turns these into a one-line message and an exit status;
library code raises them and never prints or exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # drift, stale lockfile, doctor FAIL, smoke check failed
    USAGE = 2  # argparse's own code for bad command lines
    SPEC_INVALID = 3  # envspec.yml (or another input file) is malformed
    UNSATISFIABLE = 4  # the solver found no solution for a target
    CHANNEL_UNREACHABLE = 5  # a channel / mirror could not be reached
    TOOL_FAILED = 6  # an external tool (conda-lock, conda, git...) failed, or the OS refused a file operation
    INTEGRITY = 7  # a package (or model file) did not match the hash in its lockfile
    BUSY = 8  # another envspec run holds the lock
    PLATFORM_MISMATCH = 9  # a lockfile for another platform
    SMOKE_SETUP = 10  # the environment cannot run the smoke test (promised device absent, no torch, no Python)
    UNTRUSTED = 11  # refused to fetch a pickle (code runs when it loads) that nothing marked trusted
    ACCESS_DENIED = 12  # the Hub wants a token, or the licence of a gated model accepted
    INTERRUPTED = 130


class EnvspecError(Exception):
    """Base class: ``str(err)`` is the one-line message, ``tip`` says what to do."""

    exit_code: ExitCode = ExitCode.TOOL_FAILED

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.tip:
            text += f" (tip: {self.tip})"
        return " ".join(text.split("\n"))


class SpecError(EnvspecError):
    exit_code = ExitCode.SPEC_INVALID


class CheckFailed(EnvspecError):
    exit_code = ExitCode.CHECK_FAILED


class UnsatisfiableError(EnvspecError):
    exit_code = ExitCode.UNSATISFIABLE


class ChannelUnreachable(EnvspecError):
    exit_code = ExitCode.CHANNEL_UNREACHABLE


class ToolFailed(EnvspecError):
    exit_code = ExitCode.TOOL_FAILED


class IntegrityError(EnvspecError):
    exit_code = ExitCode.INTEGRITY


class BusyError(EnvspecError):
    exit_code = ExitCode.BUSY


class PlatformMismatch(EnvspecError):
    exit_code = ExitCode.PLATFORM_MISMATCH


class SmokeSetupFailed(EnvspecError):
    exit_code = ExitCode.SMOKE_SETUP


class UntrustedPickle(EnvspecError):
    exit_code = ExitCode.UNTRUSTED


class AccessDenied(EnvspecError):
    exit_code = ExitCode.ACCESS_DENIED
