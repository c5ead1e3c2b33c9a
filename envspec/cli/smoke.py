"""``envspec smoke [--target T] [--prefix PATH] [smoke options]``: run the smoke test in an environment.

With ``--prefix``, the environment's own Python runs ``-m envspec.smoke`` with only
``envspec/__init__.py`` and ``envspec/smoke/`` copied to a temp folder on its PYTHONPATH, so the
test sees exactly what a provisioned environment has: torch, diffusers, transformers, numpy and
pillow, and none of envspec's own dependencies. Without ``--prefix`` it runs in this interpreter.
The target's ``smoke_device`` becomes ``--expect`` (a missing promised device is exit 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import envspec
from envspec.cli.common import load, progress
from envspec.errors import SpecError, ToolFailed
from envspec.smoke import cli as smoke_cli
from envspec.smoke.device import read_state_file
from envspec.smoke.errors import SmokeSetupError
from envspec.spec.model import ResolvedTarget

PACKAGE_ROOT = Path(envspec.__file__).resolve().parent


@dataclass(frozen=True)
class SmokePlan:
    """What to run: the interpreter (None: this process), its arguments and extra environment."""

    python: Path | None
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", metavar="PATH", help="the environment to test (default: this Python)")
    smoke_cli.add_arguments(parser)  # --target, --expect, --device, --allow-cpu, --model, --benchmark...


def prefix_python(prefix: Path, windows: bool) -> Path:
    """The interpreter of a conda prefix: ``python.exe`` at its root on Windows, ``bin/python`` elsewhere."""
    return prefix / "python.exe" if windows else prefix / "bin" / "python"


def prefix_path_entries(prefix: Path, windows: bool) -> list[Path]:
    """What ``conda activate`` puts first on PATH (on Windows the DLLs of torch's CUDA live there)."""
    if windows:
        return [
            prefix,
            prefix / "Library" / "mingw-w64" / "bin",
            prefix / "Library" / "usr" / "bin",
            prefix / "Library" / "bin",
            prefix / "Scripts",
        ]
    return [prefix / "bin"]


def plan(
    target: ResolvedTarget | None,
    prefix: Path | None,
    smoke_argv: list[str],
    *,
    state: dict[str, str] | None = None,
    windows: bool = sys.platform == "win32",
) -> SmokePlan:
    """Pure: the smoke command for ``target`` in ``prefix`` (None: this interpreter).

    ``state`` holds the prefix's activation variables (its conda-meta/state), set as activation would.
    """
    argv = list(smoke_argv)
    if target is not None:
        if "--expect" not in argv:
            argv = ["--expect", target.smoke_device, *argv]
        if "--target" not in argv:
            argv = ["--target", target.name, *argv]
    if prefix is None:
        return SmokePlan(None, argv)
    entries = prefix_path_entries(prefix, windows)
    env = {
        **(state or {}),
        "PATH": os.pathsep.join([*(str(p) for p in entries), os.environ.get("PATH", "")]),
        "CONDA_PREFIX": str(prefix),
        "PYTHONNOUSERSITE": "1",
        "PYTHONSAFEPATH": "1",  # `-m` must not put the cwd (maybe an envspec checkout) on sys.path
    }
    if target is not None:
        env.update(target.variables)  # e.g. PYTORCH_ENABLE_MPS_FALLBACK, as activation would set them
    return SmokePlan(prefix_python(prefix, windows), ["-m", "envspec.smoke", *argv], env)


def copy_smoke_package(destination: Path) -> Path:
    """Copy only envspec/__init__.py and envspec/smoke/ (never the rest of envspec) under ``destination``."""
    package = destination / "envspec"
    package.mkdir(parents=True)
    shutil.copy2(PACKAGE_ROOT / "__init__.py", package / "__init__.py")
    shutil.copytree(PACKAGE_ROOT / "smoke", package / "smoke", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


def find_target(args: argparse.Namespace, state: dict[str, str]) -> ResolvedTarget | None:
    """The target whose promise the smoke test checks.

    ``--target`` wins. Without it: the target the environment was installed for (``ENVSPEC_TARGET``
    in the prefix's ``conda-meta/state``), else the target ``envspec doctor`` recommends for this
    machine. Outside a project (no spec file) nothing is loaded and the smoke test reads the
    promise from the prefix's state itself, so ``envspec smoke --prefix ENV`` works anywhere.
    """
    if args.target is not None:
        _, spec = load(args)
        return spec.resolve(args.target)
    if not Path(args.spec).is_file():
        return None
    _, spec = load(args)
    installed_for = state.get("ENVSPEC_TARGET")
    if installed_for is not None:
        return spec.resolve(installed_for) if installed_for in spec.targets else None
    from envspec.doctor.recommend import default_target

    target = default_target(spec)
    progress(f"smoke: no --target given; using {target.name}, the target recommended for this machine")
    return target


def activation_vars(prefix: Path) -> dict[str, str]:
    """The variables ``conda activate`` would set from ``<prefix>/conda-meta/state``."""
    try:
        return read_state_file(prefix)
    except SmokeSetupError as exc:
        raise SpecError(exc.message, exc.tip) from None


def run(args: argparse.Namespace) -> int:
    prefix = Path(args.prefix).resolve() if args.prefix else None
    state = activation_vars(prefix) if prefix is not None else {}
    target = find_target(args, state)
    smoke_argv = smoke_cli.to_argv(args, skip=frozenset({"target"}))
    the_plan = plan(target, prefix, smoke_argv, state=state)
    if the_plan.python is None:
        progress(f"smoke: in this Python ({sys.executable}) {' '.join(the_plan.argv)}")
        return smoke_cli.main(the_plan.argv)
    assert prefix is not None
    return run_in_prefix(the_plan, prefix)


def run_in_prefix(the_plan: SmokePlan, prefix: Path, stdout: int | None = None) -> int:
    """Run a prefix plan (``plan(..., prefix)``): the smoke test's exit code, 0, 1 or 2.

    ``stdout``: a file descriptor for the child's standard output (default: this process's);
    ``envspec up`` passes 2 (stderr) so its own stdout holds only its final line.
    """
    if the_plan.python is None or not the_plan.python.is_file():
        raise ToolFailed(
            f"no Python in {prefix} (looked for {the_plan.python})",
            tip="create the environment first: envspec install TARGET --prefix PATH",
        )
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryDirectory(prefix="envspec-smoke-pkg-") as scratch:
        copy_smoke_package(Path(scratch))
        env = {**os.environ, **the_plan.env, "PYTHONPATH": scratch}
        command = [str(the_plan.python), *the_plan.argv]
        progress(f"smoke: {' '.join(command)}")
        completed = subprocess.run(command, env=env, stdout=stdout, check=False)
    if completed.returncode < 0 or completed.returncode > 2:
        raise ToolFailed(
            f"the smoke test in {prefix} ended with status {completed.returncode} (crashed or killed)",
            tip="run it by hand with ENVSPEC_DEBUG=1 to see why",
        )
    return completed.returncode
