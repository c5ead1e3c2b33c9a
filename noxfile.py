"""Sessions: render, tests, lint (and, as the project grows, lock, smoke, bench, verify).

Thin sessions over the `envspec` CLI; each installs what it needs into its own virtualenv.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = "3.11"


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
