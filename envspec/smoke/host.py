"""The smoke stage on the host side: run the smoke test (``python -m envspec.smoke``) in an environment.

This is the one module of ``envspec/smoke/`` that runs outside the environment and may import the
rest of envspec; it is never shipped into the environment (:func:`copy_smoke_package` leaves it out)
and nothing else in ``envspec/smoke/`` imports it.

With ``--prefix``, the environment's own Python runs ``-m envspec.smoke`` with only
``envspec/__init__.py`` and ``envspec/smoke/`` copied to a temp folder on its PYTHONPATH, so the
test sees exactly what a provisioned environment has: torch, diffusers, transformers, numpy and
pillow, and none of envspec's own dependencies. Without ``--prefix`` it runs in this interpreter.
The target's ``smoke_device`` becomes ``--expect`` (a missing promised device is exit 10, SMOKE_SETUP).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import envspec
from envspec.errors import ExitCode, SmokeSetupFailed, SpecError, ToolFailed
from envspec.smoke.device import read_state_file
from envspec.smoke.errors import SmokeSetupError
from envspec.spec import ResolvedTarget

PACKAGE_ROOT = Path(envspec.__file__).resolve().parent
#: What the smoke test exits with (envspec.smoke.cli): ok, a check failed, usage, setup, interrupted.
SMOKE_EXIT_CODES = frozenset(
    {ExitCode.OK, ExitCode.CHECK_FAILED, ExitCode.USAGE, ExitCode.SMOKE_SETUP, ExitCode.INTERRUPTED}
)
HOST_MODULE = "host.py"  # this file: never shipped into an environment
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SmokePlan:
    """What to run: the interpreter (None: this process), its arguments and extra environment."""

    python: Path | None
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


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
    shutil.copytree(
        PACKAGE_ROOT / "smoke", package / "smoke", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", HOST_MODULE)
    )
    return destination


def activation_vars(prefix: Path) -> dict[str, str]:
    """The variables ``conda activate`` would set from ``<prefix>/conda-meta/state``."""
    try:
        return read_state_file(prefix)
    except SmokeSetupError as exc:
        raise SpecError(exc.message, exc.tip) from None


def model_argv(target: ResolvedTarget | None, model: Path | None, smoke_argv: Sequence[str]) -> list[str]:
    """The options that make the smoke test use the pinned, pulled model (pure).

    Nothing when no model is pulled, the target says ``smoke_with_model: false``, or the command
    line already names a model; the target's ``smoke_steps`` / ``smoke_resolution`` unless given.
    """
    if target is None or model is None or not target.smoke_with_model or "--model" in smoke_argv:
        return []
    out = ["--model", str(model)]
    if target.smoke_steps is not None and "--steps" not in smoke_argv:
        out += ["--steps", str(target.smoke_steps)]
    if target.smoke_resolution is not None and "--resolution" not in smoke_argv:
        out += ["--resolution", str(target.smoke_resolution)]
    return out


@dataclass(frozen=True)
class SmokeOptions:
    """What envspec itself asks of the smoke test (``envspec up``): typed here; only the child, a
    separate interpreter, gets them as its command line (:meth:`argv`)."""

    out: Path
    allow_cpu: bool = False

    def argv(self) -> list[str]:
        return ["--out", str(self.out)] + (["--allow-cpu"] if self.allow_cpu else [])


def smoke(
    target: ResolvedTarget | None,
    prefix: Path,
    options: SmokeOptions | list[str],
    *,
    model: Path | None = None,
    progress: Progress,
    stdout: int | None = None,
) -> int:
    """The smoke stage's entry point: run the smoke test for ``target`` in ``prefix``; its exit code.

    ``model``: the pinned smoke model where it is pulled (``envspec.models.smoke_model_path``); the
    tiny offline model otherwise.
    """
    smoke_argv = options.argv() if isinstance(options, SmokeOptions) else list(options)
    smoke_argv += model_argv(target, model, smoke_argv)
    the_plan = plan(target, prefix, smoke_argv, state=activation_vars(prefix))
    return run_in_prefix(the_plan, prefix, progress=progress, stdout=stdout)


def run_in_prefix(the_plan: SmokePlan, prefix: Path, *, progress: Progress, stdout: int | None = None) -> int:
    """Run a prefix plan (``plan(..., prefix)``): the smoke test's exit code (0, 1, or 10 for setup).

    ``stdout``: a file descriptor for the child's standard output (default: this process's);
    ``envspec up`` passes 2 (stderr) so its own stdout holds only its final line.
    """
    if the_plan.python is None or not the_plan.python.is_file():
        raise SmokeSetupFailed(
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
    if completed.returncode not in SMOKE_EXIT_CODES:
        raise ToolFailed(
            f"the smoke test in {prefix} ended with status {completed.returncode} (crashed or killed)",
            tip="run it by hand with ENVSPEC_DEBUG=1 to see why",
        )
    return completed.returncode
