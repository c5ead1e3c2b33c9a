"""Activating an envspec environment without conda: ``envspec run`` and ``envspec shell-hook``.

What ``conda activate`` does, computed here:

* ``PATH``: the prefix's own folders in front (py-rattler's activator decides which folders a
  platform has: ``bin`` on Unix; the prefix, ``Library\\bin``, ``Scripts``... on Windows), with the
  folders of a previously active ``CONDA_PREFIX`` taken out;
* ``CONDA_PREFIX``, ``CONDA_DEFAULT_ENV``, ``CONDA_SHLVL``;
* the environment's variables: ``etc/conda/env_vars.d/*.json`` (packages), then
  ``conda-meta/state`` (the target's ``variables:``, written by the installer), which wins;
* the packages' ``etc/conda/activate.d`` scripts for the shell (``*.sh`` for bash/zsh, ``*.fish``,
  ``*.ps1``, ``*.bat``), sourced last, in name order.

The script text is written here, not taken from py-rattler: its activation scripts put values in
double quotes, so a variable holding ``$(...)`` or a backtick would run a command in the user's
shell (and its bash script does not quote the prefix). Every value is quoted for its shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

from envspec.errors import EnvspecError, ExitCode, ToolFailed
from envspec.install.link import MARKER_FILE
from envspec.install.plan import STATE_FILE

Shell = Literal["bash", "zsh", "fish", "powershell", "cmd"]
SHELLS: Final[tuple[Shell, ...]] = ("bash", "zsh", "fish", "powershell", "cmd")
ENV_VARS_DIR: Final = "etc/conda/env_vars.d"
ACTIVATE_DIR: Final = "etc/conda/activate.d"
#: The activate.d scripts each shell sources.
SCRIPT_SUFFIX: Final[Mapping[Shell, str]] = {
    "bash": ".sh",
    "zsh": ".sh",
    "fish": ".fish",
    "powershell": ".ps1",
    "cmd": ".bat",
}
#: Signals ``envspec run`` passes on to the command (those that exist on this platform).
FORWARDED: Final = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
)


class NotAnEnvironment(EnvspecError):
    """``--prefix``/``--name`` names no envspec environment (exit 2: the command line is wrong)."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Activation:
    """Everything activation changes, independent of any shell."""

    prefix: Path
    name: str  # CONDA_DEFAULT_ENV: the --name, else the prefix
    path: tuple[str, ...]  # the prefix's own PATH folders, in order
    removed: tuple[str, ...]  # PATH folders of the previously active environment
    variables: dict[str, str]  # env_vars.d, then conda-meta/state
    scripts: tuple[Path, ...]  # every activate.d script (all shells), sorted

    def scripts_for(self, shell: Shell) -> list[Path]:
        return [s for s in self.scripts if s.suffix == SCRIPT_SUFFIX[shell]]


def check_environment(prefix: Path, target: str | None = None) -> None:
    """Raise :class:`NotAnEnvironment` unless ``prefix`` is an environment envspec installed (of
    ``target``, when given)."""
    if not prefix.is_dir():
        raise NotAnEnvironment(
            f"{prefix} does not exist" if not prefix.exists() else f"{prefix} is not a folder",
            tip=f"create it with `envspec install --prefix {prefix}`",
        )
    try:
        marker = json.loads((prefix / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or marker.get("created_by") != "envspec":
        raise NotAnEnvironment(
            f"{prefix} is not an environment envspec installed (no {MARKER_FILE})",
            tip="install one with `envspec install --prefix PATH`, or activate this one with conda",
        )
    if target is not None and marker.get("target") != target:
        raise NotAnEnvironment(
            f"{prefix} is an environment of target {marker.get('target')!r}, not {target!r}",
            tip="name the target it was installed for, or leave TARGET out",
        )


def _json_vars(path: Path) -> dict[str, str]:
    """``{"env_vars": {...}}`` (conda-meta/state) or a flat ``{...}`` (env_vars.d), strings only."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if isinstance(data, dict) and isinstance(data.get("env_vars"), dict):
        data = data["env_vars"]
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float) and str(k)}


def environment_variables(prefix: Path) -> dict[str, str]:
    """The variables activation sets: packages' ``env_vars.d`` files, then ``conda-meta/state``."""
    out: dict[str, str] = {}
    folder = prefix / ENV_VARS_DIR
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            out.update(_json_vars(path))
    out.update(_json_vars(prefix / STATE_FILE))
    return out


def prefix_path(prefix: Path, platform: str, current: Sequence[str], current_prefix: str | None) -> list[str]:
    """PATH after activation, by py-rattler: the prefix's folders first, ``current_prefix``'s gone."""
    from rattler.platform import Platform
    from rattler.shell import ActivationVariables, PathModificationBehavior, activate

    variables = ActivationVariables(
        Path(current_prefix) if current_prefix else None,
        list(current) or [os.devnull],  # py-rattler reads os.environ's PATH for an empty list
        PathModificationBehavior.Replace,
    )
    try:
        result = activate(prefix, variables, platform=Platform(platform))
    except Exception as exc:  # rattler's ActivationError (e.g. a package's broken env_vars.d file)
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ToolFailed(f"cannot activate {prefix}: {detail}", tip="repair or reinstall the environment") from None
    entries = [str(p) for p in cast(list[Path], result.path)]  # typed as one Path, is a list
    return entries if current else [e for e in entries if e != os.devnull]


def activation(prefix: Path, *, platform: str, environ: Mapping[str, str], name: str | None = None) -> Activation:
    """What activating ``prefix`` on ``platform`` changes, given the caller's environment."""
    own = prefix_path(prefix, platform, [], None)
    current = [p for p in environ.get("PATH", "").split(os.pathsep) if p]
    old = environ.get("CONDA_PREFIX") or None
    kept = prefix_path(prefix, platform, current, old)[len(own) :] if current else []
    removed = tuple(p for p in current if p not in kept)
    folder = prefix / ACTIVATE_DIR
    scripts = tuple(sorted(p for p in folder.iterdir() if p.is_file())) if folder.is_dir() else ()
    return Activation(
        prefix=prefix,
        name=name or str(prefix),
        path=tuple(own),
        removed=removed,
        variables=environment_variables(prefix),
        scripts=scripts,
    )


# ---------------------------------------------------------------------------------------------
# shell-hook: a script for the user's shell
# ---------------------------------------------------------------------------------------------


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ps_quote(value: str) -> str:
    # PowerShell takes the typographic single quotes as quotes too; each is doubled to stay literal
    for quote in "'\u2018\u2019\u201a\u201b":
        value = value.replace(quote, quote * 2)
    return "'" + value + "'"


def _cmd_value(value: str) -> str:
    """A value inside ``SET "NAME=..."`` of a batch file: ``%`` doubled so it is never expanded."""
    return value.replace("%", "%%")


def _fixed_vars(act: Activation) -> dict[str, str]:
    return {"CONDA_PREFIX": str(act.prefix), "CONDA_DEFAULT_ENV": act.name, "CONDA_SHLVL": "1", **act.variables}


def hook_script(act: Activation, shell: Shell) -> str:
    """The text that activates ``act`` when the shell evaluates it (``eval "$(envspec shell-hook)"``)."""
    sep = os.pathsep
    lines: list[str] = []
    scripts = act.scripts_for(shell)
    variables = _fixed_vars(act)
    if shell in ("bash", "zsh"):
        own = shlex.quote(sep.join(act.path))
        lines.append(f'export PATH={own}"${{PATH:+{sep}$PATH}}"')
        lines += [f"export {k}={shlex.quote(v)}" for k, v in variables.items()]
        lines += [f". {shlex.quote(str(s))}" for s in scripts]
    elif shell == "fish":
        lines.append("set -gx PATH " + " ".join(_fish_quote(p) for p in act.path) + " $PATH")
        lines += [f"set -gx {k} {_fish_quote(v)}" for k, v in variables.items()]
        lines += [f"source {_fish_quote(str(s))}" for s in scripts]
    elif shell == "powershell":
        lines.append(f"$Env:PATH = {_ps_quote(sep.join(act.path) + sep)} + $Env:PATH")
        lines += [f"${{Env:{k}}} = {_ps_quote(v)}" for k, v in variables.items()]
        lines += [f". {_ps_quote(str(s))}" for s in scripts]
    else:  # cmd: a batch file (`envspec shell-hook --shell cmd > activate.bat`, then `call activate.bat`)
        lines.append(f'@SET "PATH={_cmd_value(sep.join(act.path))}{sep}%PATH%"')
        lines += [f'@SET "{k}={_cmd_value(v)}"' for k, v in variables.items()]
        lines += [f'@CALL "{_cmd_value(str(s))}"' for s in scripts]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# run: a command in the activated environment
# ---------------------------------------------------------------------------------------------


def run_environ(act: Activation, environ: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: the caller's, activated."""
    current = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p not in act.removed]
    env = dict(environ)
    env.update(_fixed_vars(act))
    env["PATH"] = os.pathsep.join([*act.path, *(p for p in current if p not in act.path)])
    return env


def run_argv(act: Activation, command: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """``command``, wrapped in the shell when activate.d scripts must be sourced first.

    POSIX: ``bash -c '. s1; . s2; exec "$@"' envspec-run CMD ARGS`` (``sh`` without bash), so the
    command replaces the shell and receives signals itself. Windows: ``cmd /d /c`` calling each
    ``.bat``, then the command.
    """
    if os.name == "nt":
        scripts = act.scripts_for("cmd")
        if not scripts:
            return list(command)
        calls = " && ".join(f'call "{s}"' for s in scripts)
        return ["cmd.exe", "/d", "/s", "/c", f"{calls} && {subprocess.list2cmdline(list(command))}"]
    scripts = act.scripts_for("bash")
    if not scripts:
        return list(command)
    shell = shutil.which("bash", path=env.get("PATH")) or shutil.which("sh", path=env.get("PATH")) or "/bin/sh"
    # as conda does: a script's status is not a verdict (many end with `[ -n "$X" ] && ...`, status 1)
    body = "".join(f". {shlex.quote(str(s))}\n" for s in scripts)
    missing = (  # the same one-line error (and code) as a command not found without scripts
        f'echo "error: $1: command not found in {_sh_text(act.prefix)} or on PATH '
        f'(tip: install it into the environment, or check the name)" >&2; exit {int(ExitCode.TOOL_FAILED)}'
    )
    body += f'command -v -- "$1" >/dev/null 2>&1 || {{ {missing}; }}\nexec "$@"\n'
    return [shell, "-c", body, "envspec-run", *command]


def _sh_text(path: Path) -> str:
    """``path`` for inside a double-quoted sh string (shown in a message, never expanded)."""
    return "".join("\\" + c if c in '"$`\\' else c for c in str(path))


def _resolve(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The program looked up on the activated PATH (not envspec's own)."""
    found = shutil.which(argv[0], path=env.get("PATH"))
    return [found, *argv[1:]] if found and os.sep not in argv[0] else argv


def _foreground(pid_group: int) -> bool:
    """Whether this process group owns the terminal (then Ctrl-C already reached the child too)."""
    if sys.platform != "win32":  # no process groups or controlling terminal there (a check mypy understands)
        try:
            with Path("/dev/tty").open("rb") as tty:
                return os.tcgetpgrp(tty.fileno()) == pid_group
        except OSError:
            pass
    return False


def run_command(act: Activation, command: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run ``command`` activated; its exit code (128 + N when signal N ended it, as shells say).

    SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 sent to envspec are passed on to the command; so is
    SIGINT, unless envspec runs in the terminal's foreground (the terminal sent it to both).
    """
    env = run_environ(act, environ)
    argv = _resolve(run_argv(act, command, env), env)
    try:
        child = subprocess.Popen(argv, env=env)
    except FileNotFoundError:
        raise ToolFailed(
            f"{command[0]}: command not found in {act.prefix} or on PATH",
            tip="install it into the environment, or check the name",
        ) from None
    except OSError as exc:
        raise ToolFailed(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    return _wait_forwarding(child)


def _wait_forwarding(child: subprocess.Popen[bytes]) -> int:
    def forward(signum: int, frame: object) -> None:
        if signum == signal.SIGINT and sys.platform != "win32" and _foreground(os.getpgrp()):
            return
        if child.poll() is None:
            child.send_signal(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in (*FORWARDED, signal.SIGINT):
            with contextlib.suppress(ValueError, OSError):  # not the main thread, or not settable here
                previous[sig] = signal.signal(sig, forward)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def host_platform() -> str:
    """The conda subdir of this machine, as py-rattler names it (the environment runs here)."""
    from rattler.platform import Platform

    return str(Platform.current())
