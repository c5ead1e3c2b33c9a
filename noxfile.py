"""Sessions: render, tests, lint (and, as the project grows, lock, smoke, bench, verify).

Thin sessions over the `envspec` CLI; each installs what it needs into its own virtualenv.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"

# What a provisioned environment gives the smoke test, pinned to versions tested together
# (CPU torch from PyPI; the conda environments get theirs from conda-forge).
SMOKE_PINS = ("torch==2.13.0", "diffusers==0.42.1", "transformers==5.24.0", "numpy==2.4.6", "pillow==13.0.0")


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Render environment-<target>.yml, virtual-package specs, schema and CI workflows."""
    session.install("-e", ".")
    session.run("envspec", "render", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: unit tests and the integration tests that run the real tools."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", "envspec", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "envspec", "tests", "noxfile.py")
    session.run("mypy")


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Render, then lock every target with conda-lock (pass e.g. `-- --mirror conda-forge=file:///srv/cf`)."""
    session.install("-e", ".")
    session.run("envspec", "render")
    session.run("envspec", "lock", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: print figures (speed/memory goals are checked here, never by timed tests)."""
    session.install("-e", ".")
    session.run("python", "benchmarks/bench_lock.py", *session.posargs)


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """The smoke test on CPU in a venv holding only torch, diffusers, transformers, numpy and pillow.

    envspec is not installed there: only envspec/__init__.py and envspec/smoke/ are put on
    PYTHONPATH, as `envspec smoke --prefix` does. Extra arguments go to `python -m envspec.smoke`.
    """
    session.install(*SMOKE_PINS)
    ship = Path(session.create_tmp()) / "smoke-package"
    shutil.rmtree(ship, ignore_errors=True)
    (ship / "envspec").mkdir(parents=True)
    shutil.copy2("envspec/__init__.py", ship / "envspec" / "__init__.py")
    shutil.copytree("envspec/smoke", ship / "envspec" / "smoke", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(ship), "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1"}  # not the checkout in cwd
    session.run("python", "-m", "envspec.smoke", "--device", "cpu", *session.posargs, env=env)
