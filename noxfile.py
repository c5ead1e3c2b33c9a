"""Sessions: render, tests, unit, lint, lock, smoke, bench, verify, pypi_mapping; lock_real, mutants (by hand).

Thin sessions over the `envspec` CLI; each installs what it needs into its own virtualenv.
"""

from __future__ import annotations

import ast
import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False
# Each session's virtualenv is made and filled by uv where nox finds it (installed beside nox, as
# `python -m pip install 'nox[uv]'` does, or on PATH; about 5x faster than pip), else by virtualenv and pip.
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"


def envspec(session: nox.Session, *args: str, **kwargs: Any) -> Any:
    """``envspec ARGS`` in the session. nox ends every failed session with exit status 1, whatever the
    command's own code; so a failure says envspec's code and what it means (README "Exit codes"). A
    script that branches on the code runs envspec itself, as the CI workflows do."""
    try:
        return session.run("envspec", *args, **kwargs)
    except nox.command.CommandFailed as exc:
        code = exc.return_code
        session.error(
            f"`envspec {' '.join(args)}` exited {code}{_meaning(code)}; nox reports every failed session as "
            "exit 1: run the envspec command itself where its exit code matters"
        )


def install(session: nox.Session, *args: str) -> None:
    """``session.install(ARGS)``, the same packages whichever tool installs them. uv reads no pip
    configuration: it is given pip's find-links folders and constraint files (this machine's CPU torch
    wheel lies in one; without it uv takes PyPI's CUDA build, several GB), and it rebuilds the project
    on every run as pip does (uv keeps an installed local project that still satisfies the request).

    The session's commands may write bytecode: PYTHONDONTWRITEBYTECODE is dropped for them. With it,
    every process compiled what it imported again, from source: envspec in each of the suite's child
    processes (tests/install: 54 s instead of 38 s), torch, diffusers and transformers in each smoke
    test (15 s instead of 6 s). So uv need not compile the 1.2 GB up front as pip does (40 s): the
    first import writes what is used."""
    session.env["PYTHONDONTWRITEBYTECODE"] = None  # nox drops a variable set to None
    if session.venv_backend == "uv":
        args = (*_pip_files_for_uv(), "--reinstall-package", "envspec", *args)
    session.install(*args)


@functools.cache
def _pip_files_for_uv() -> tuple[str, ...]:
    """pip's find-links and constraint settings (pip.conf files and PIP_* variables, as `pip config
    list` prints them) as uv options; none where nox's interpreter has no pip."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    flags = {"find-links": "--find-links", "constraint": "--constraint"}
    options: dict[tuple[str, str], None] = {}  # in order, once each
    for line in listed.splitlines():
        key, _, value = line.partition("=")  # global.find-links='/opt/wheels': the value as repr() writes it
        if flag := flags.get(key.rpartition(".")[2]):
            options.update(dict.fromkeys((flag, item) for item in str(ast.literal_eval(value)).split()))
    return tuple(part for pair in options for part in pair)


def _meaning(code: int | None) -> str:
    try:  # envspec/errors.py needs only the standard library; nox's own interpreter may lack envspec
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from envspec.errors import ExitCode

        return f" ({ExitCode(code).name.lower().replace('_', ' ')})" if code is not None else ""
    except (ImportError, ValueError):
        return ""
    finally:
        sys.path.pop(0)


LINTED = ("envspec", "tests", "benchmarks", "noxfile.py")
# zizmor exits non-zero on any finding; --offline: no GitHub API calls (CI and this machine alike);
# --strict-collection: a workflow it cannot parse fails instead of being skipped with a warning.
WORKFLOWS = ".github/workflows/"
ZIZMOR_ARGS = ("--offline", "--strict-collection", "--no-progress")

# What a provisioned environment gives the smoke test, pinned to versions tested together
# (CPU torch from PyPI; the conda environments get theirs from conda-forge).
# `nox -s mutants` (docs/mutation.md): mutmut 3 mutates the files named in pyproject's [tool.mutmut]
# and runs, per mutant, only the unit tests that call the mutated function. These name globs narrow
# it to the pure functions (the report's inputs.py, pages.py and build.py also read files, make thumbnails
# and render HTML: only their pure functions, and all of matrix.py).
MUTMUT = "mutmut==3.8.1"
MUTANT_NAMES = (
    "envspec.spec.schema.*",
    "envspec.spec.load.*",
    "envspec.lock.plan.*",
    "envspec.lock.explicit.*",
    "envspec.lock.condalock.*",
    "envspec.install.plan.*",
    "envspec.channels.*",
    "envspec.doctor.*",  # every check module; probe.py (the effects) is excluded in pyproject
    "envspec.smoke.checks.*",
    *(
        f"envspec.report.inputs.x{name}__mutmut_*"
        for name in ("_parse_smoke_json", "_png_size", "_parse_conda_lock", "__freshness")
    ),
    "envspec.report.matrix.*",  # the table model: every function and class there is pure
    *(f"envspec.report.pages.x{name}__mutmut_*" for name in ("__seconds", "_md_cell", "_render_markdown")),
    *(f"envspec.report.build.x{name}__mutmut_*" for name in ("_github_context", "_report_title")),
)

SMOKE_PINS = ("torch==2.13.0", "diffusers==0.42.1", "transformers==5.24.0", "numpy==2.4.6", "pillow==13.0.0")


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Render environment-<target>.yml, virtual-package specs, schema and CI workflows."""
    install(session, "-e", ".")
    envspec(session, "render", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite: unit tests and the integration tests that run the real tools."""
    install(session, "-e", ".[test,smoke]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def unit(session: nox.Session) -> None:
    """The fast unit tests only (no processes, no servers, no real tools): tests/<stage>/ minus `integration`."""
    install(session, "-e", ".[test,smoke]")
    session.run("pytest", "-m", "not integration", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy for Linux, Windows and macOS, and zizmor on the GitHub workflows
    (offline; any finding fails)."""
    install(session, "-e", ".[lint]")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    for platform in ("linux", "win32", "darwin"):  # platform-only calls behind checks mypy understands
        session.run("mypy", "--platform", platform)
    session.run("zizmor", *ZIZMOR_ARGS, WORKFLOWS)


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Render, then lock every target with conda-lock (pass e.g. `-- --mirror conda-forge=file:///srv/cf`)."""
    install(session, "-e", ".")
    envspec(session, "render")
    envspec(session, "lock", *session.posargs)


@nox.session(python=PYTHON, default=False)
def lock_real(session: nox.Session) -> None:
    """The committed lockfiles: lock every target against the real conda-forge records snapshot
    (`-- PATH/TO/conda-forge-records.tar.gz`) and the real PyPI registry, vendor the pinned records."""
    if not session.posargs:
        session.error("pass the snapshot: nox -s lock_real -- PATH/TO/conda-forge-records.tar.gz [--target T]")
    install(session, "-e", ".")
    session.run("python", "tools/lock_real.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: print figures (speed/memory goals are checked here, never by timed tests)."""
    install(session, "-e", ".")
    session.run("python", "benchmarks/bench_cli.py")  # --help, targets, render --check, no-change lock vs yaml
    session.run("python", "benchmarks/bench_lock.py", *session.posargs)
    session.run("python", "benchmarks/bench_install.py")
    session.run("python", "benchmarks/bench_pypi.py")  # the PyPI part vs `uv pip compile`; a conflict's time
    session.run("python", "benchmarks/bench_bundle.py")  # pack / install --from vs a file:// mirror
    session.run("python", "benchmarks/bench_download.py")
    # The real conda-forge snapshot (../shared/data, see its README) is not part of the repository.
    snapshot = Path("..") / "shared" / "data" / "conda-forge-records.tar.gz"
    if snapshot.is_file():
        session.run("python", "benchmarks/bench_lock_real.py", str(snapshot))
    else:
        session.log(f"bench_lock_real skipped: {snapshot.resolve()} (the real conda-forge snapshot) is absent")


@nox.session(python=PYTHON)
def smoke(session: nox.Session) -> None:
    """The smoke test on CPU in a venv holding only torch, diffusers, transformers, numpy and pillow.

    envspec is not installed there: only envspec/__init__.py and envspec/smoke/ are put on
    PYTHONPATH, as `envspec smoke --prefix` does. Extra arguments go to `python -m envspec.smoke`.
    """
    install(session, *SMOKE_PINS)
    ship = Path(session.create_tmp()) / "smoke-package"
    shutil.rmtree(ship, ignore_errors=True)
    (ship / "envspec").mkdir(parents=True)
    shutil.copy2("envspec/__init__.py", ship / "envspec" / "__init__.py")
    shutil.copytree("envspec/smoke", ship / "envspec" / "smoke", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(ship), "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1"}  # not the checkout in cwd
    session.run("python", "-m", "envspec.smoke", "--device", "cpu", *session.posargs, env=env)


@nox.session(python=PYTHON)
def verify(session: nox.Session) -> None:
    """What one CI matrix job runs, here: the rendered files are current, then `envspec up`.

    nox -s verify -- [TARGET] [--mirror NAME=URL ...]   (or ENVSPEC_MIRRORS="NAME=URL,...")
    `envspec up` checks the machine (doctor), that lockfiles/<TARGET> is fresh (it never re-locks
    here), installs it, runs the smoke test in the new environment and writes the report.
    TARGET defaults to the target `envspec doctor` recommends for this machine. Like a hosted
    runner, a machine without the promised GPU runs the smoke test with --allow-cpu (the report
    says so).
    """
    import json

    install(session, ".")
    args = list(session.posargs)
    names = args[:1] if args and not args[0].startswith("-") else []
    mirrors = args[len(names) :]  # passed to `envspec up` (--mirror NAME=URL ...)
    # stderr=None: nox merges stderr into the captured output by default, and envspec's progress
    # lines on stderr would then break the JSON on stdout.
    targets_json = session.run("envspec", "targets", "--json", silent=True, stderr=None)
    targets = {t["name"]: t for t in json.loads(targets_json or "{}")["targets"]}
    if names:
        name = names[0]
    else:
        doctor_json = session.run("envspec", "doctor", "--json", silent=True, stderr=None, success_codes=[0, 1])
        name = json.loads(doctor_json or "{}").get("recommended") or ""
    if name not in targets:
        session.error(f"no target {name!r}; pass one of {sorted(targets)}: nox -s verify -- TARGET")
    tmp = Path(session.create_tmp())
    prefix, out = tmp / "env", tmp / "up"
    for path in (prefix, out):
        shutil.rmtree(path, ignore_errors=True)
    allow_cpu = ["--allow-cpu"] if targets[name]["smoke_device"] != "cpu" else []
    # As the CI job: the pinned models are pulled only once lockfiles/models.lock.yml is committed.
    models = [] if Path("lockfiles/models.lock.yml").is_file() else ["--no-models"]
    envspec(session, "render", "--check")
    up = ["envspec", "up", name, "--locked", "--prefix", str(prefix), "--out", str(out)]
    envspec(session, *up[1:], *allow_cpu, *models, *mirrors)
    session.log(f"verify {name}: report at {out / 'report' / 'report.html'} and {out / 'report' / 'report.md'}")


@nox.session(python=PYTHON)
def pypi_mapping(session: nox.Session) -> None:
    """Keep the shipped conda <-> PyPI name mapping current (envspec/lock/pypi_mapping.json + provenance).

    Default source: prefix-dev/parselmouth's conda-forge mapping (what pixi uses); `-- --source URL_OR_FILE`
    for another copy (parselmouth or grayskull format); `-- --from-pypi conda-pypi` takes the grayskull
    mapping the conda-pypi wheel ships (for machines that reach PyPI but not GitHub)."""
    install(session, "-e", ".")
    session.run("python", "-m", "envspec.lock.pypi_mapping", *session.posargs)


@nox.session(python=PYTHON, default=False)
def mutants(session: nox.Session) -> None:
    """Mutation testing of the pure core with mutmut; not in CI (about 20 minutes on 2 cores).

    nox -s mutants                            every pure module; ends with `mutation score: N% (killed K of M)`
    nox -s mutants -- "envspec.lock.plan.*"   one module (mutmut name globs), while writing its tests
    Results stay in mutants/ (`mutmut show NAME` prints a survivor's diff); each run starts afresh.
    """
    install(session, "-e", ".[test]", "numpy", MUTMUT)  # numpy: tests/smoke/test_smoke_checks.py
    names = session.posargs or list(MUTANT_NAMES)
    shutil.rmtree("mutants", ignore_errors=True)  # mutmut reuses old results; a measurement starts clean
    session.run("mutmut", "run", *names)
    session.run("python", "tools/mutation_report.py", *names)
