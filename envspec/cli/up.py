"""`envspec up [TARGET] (--prefix PATH | --name NAME)`: a pinned, checked, proven environment in one command.

Six steps (the plan and its gates are ``envspec.cli.up_plan``), each a call of the stage's entry point
(``diagnose``, ``lock``, ``install_target``, ``lock_models``/``pull_models``, ``smoke``, ``build_report``),
never a subprocess of envspec:

1. doctor  - the checks for TARGET (default: the target recommended for this machine); a FAIL
             stops the run, unless ``--allow-cpu`` and every FAIL is the accelerator's absence;
2. lock    - a missing or stale ``lockfiles/<target>`` is solved first (``--locked`` refuses it,
             ``--frozen`` uses it unchecked);
3. install - from the lockfile, hash-checked (``--mirror`` as for ``envspec install``);
4. models  - the spec's models locked (if needed) and pulled, hash-checked (``--no-models`` skips it);
5. smoke   - one image in the new prefix, written to ``OUT/<target>/smoke.{json,png}``;
6. report  - ``OUT/report/report.html`` and ``report.md`` over ``OUT``.

Progress goes to stderr (``[2/6] lock: ...``); stdout gets one final line. Exit 0 only when every
step passed; otherwise the failing step's exit code (doctor / smoke: 1, stale lockfile: 1, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import parse_mirrors
from envspec.cli import doctor as cmd_doctor
from envspec.cli import up_plan as up
from envspec.cli.common import (
    add_destination_options,
    add_json_option,
    add_lock_mode_options,
    add_mirror_option,
    load,
    lock_mode,
    print_json,
    progress,
)
from envspec.cli.install import summary as install_summary
from envspec.cli.models import PullProgress
from envspec.doctor.check import UP_ADVICE
from envspec.doctor.diagnosis import diagnose
from envspec.doctor.machine import collect_facts, host_subdir
from envspec.doctor.recommend import default_target
from envspec.doctor.resources import estimate_env_bytes, models_need
from envspec.errors import ChannelUnreachable, CheckFailed, EnvspecError
from envspec.install.plan import destination, human_bytes
from envspec.install.run import install_target
from envspec.lock.freshness import LockMode, ensure_lockfile
from envspec.models import lock_models, pull_models, smoke_model_path, stale_entries
from envspec.models.local import lockfile_path as models_lockfile
from envspec.models.local import read_lock as read_models_lock
from envspec.project import Project
from envspec.report.build import build_report
from envspec.smoke.host import smoke
from envspec.spec.model import ResolvedTarget, Spec

SMOKE_JSON = "smoke.json"
SMOKE_PNG = "smoke.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", metavar="TARGET", help="target to set up (default: the one for this machine)"
    )
    add_destination_options(parser)
    add_mirror_option(parser, "use URL for channel NAME to lock and install")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="on a machine without the target's GPU, go on and run the smoke test on the CPU (the report says so)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=up.DEFAULT_OUT,
        metavar="DIR",
        help=f"smoke results go to DIR/<target>/, the report to DIR/{up.REPORT_DIR}/ (default: {up.DEFAULT_OUT})",
    )
    parser.add_argument(
        "--lock",
        action="store_true",
        help="solve a stale or missing lockfile first: the default now, kept so older command lines work",
    )
    add_lock_mode_options(parser)
    parser.add_argument(
        "--no-models",
        action="store_true",
        help="do not lock or pull the spec's models: (the smoke test then uses a model pulled before, else "
        "its tiny offline one)",
    )
    add_json_option(parser, "the verdict and every step")


class Runner:
    """The effects of each step, over one project, spec and command line."""

    def __init__(self, args: argparse.Namespace, project: Project, spec: Spec, target: ResolvedTarget) -> None:
        self.args = args
        self.project = project
        self.spec = spec
        self.target = target
        self.mirrors = parse_mirrors(args.mirror, os.environ.get(MIRRORS_ENV))

    def steps(self) -> list[up.Step]:
        fns = {
            "doctor": self.doctor,
            "lock": self.lock,
            "install": self.install,
            "models": self.models,
            "smoke": self.smoke,
            "report": self.report,
        }
        return [up.Step(name, fns[name]) for name in up.STEP_NAMES]

    def doctor(self, state: up.UpState) -> tuple[up.UpState, str]:
        t = self.target
        facts = collect_facts(cmd_doctor.PROBE_FACTORY(), str(self.project.root))
        estimate = estimate_env_bytes(cmd_doctor.read_lock_data(self.project.conda_lock_file(t.name)), t)
        report = diagnose(
            facts,
            self.spec.resolve_all(),
            chosen=t,
            estimate=estimate,
            project_root=str(self.project.root),
            advice=replace(UP_ADVICE, install=f"envspec up {{target}} --prefix {shlex.quote(str(state.prefix))}"),
            models=None if self.args.no_models else models_need(self.project, self.spec),
        )
        progress(cmd_doctor.render_text(report, self.project, install_line=False))
        gate = up.doctor_gate(report.checks, t.accelerator, self.args.allow_cpu)
        if not gate.ok:
            raise up.gate_error(gate, t.name, t.accelerator, self.args.allow_cpu)
        counts = report.counts()
        detail = f"{counts['PASS']} PASS, {counts['WARN']} WARN"
        if gate.waived:
            detail += f", FAIL accepted by --allow-cpu: {', '.join(c.name for c in gate.waived)}"
        return replace(state, waived=tuple(c.name for c in gate.waived)), detail

    def lock(self, state: up.UpState) -> tuple[up.UpState, str]:
        relocked, detail = ensure_lockfile(
            self.project, self.target, mirrors=self.mirrors, mode=lock_mode(self.args), progress=progress
        )
        return replace(state, relocked=relocked), detail

    def install(self, state: up.UpState) -> tuple[up.UpState, str]:
        result = install_target(
            self.project,
            self.target,
            host=host_subdir(),
            prefix=str(state.prefix),
            mirrors=self.mirrors,
            replace=self.args.replace,
            progress=progress,
        )
        progress(install_summary(result, self.target.name, None))
        return state, f"{state.prefix} from {self.project.relative(self.project.explicit_file(self.target.name))}"

    def models(self, state: up.UpState) -> tuple[up.UpState, str]:
        """Lock (per --locked/--frozen, as for packages) and pull the spec's models: the smoke test then
        makes a real image with the pinned smoke model."""
        if not self.spec.model.models:
            return state, "no models: in envspec.yml; the smoke test uses its tiny offline model"
        if self.args.no_models:
            return state, "skipped (--no-models); the smoke test uses a model pulled before, else the tiny one"
        mode = lock_mode(self.args)
        lockfile = self.project.relative(models_lockfile(self.project))
        if mode is not LockMode.FROZEN:
            stale = stale_entries(self.spec, read_models_lock(self.project))
            if stale and mode is LockMode.LOCKED:
                raise CheckFailed(
                    f"models: {lockfile} is not current ({'; '.join(stale)}) and --locked was given",
                    tip="run `envspec models lock` and commit it, or drop --locked",
                )
            if stale:
                progress(f"models: {lockfile}: {'; '.join(stale)}; locking first")
                with _offer_no_models():
                    lock_models(self.project, self.spec, progress=progress)
        with _offer_no_models():
            pulled = pull_models(self.project, self.spec, progress=PullProgress(sys.stderr))
        received = sum(r.received for r in pulled)
        names = ", ".join(f"{r.name} @ {r.commit[:12]}" for r in pulled)
        return state, f"{names} in place ({human_bytes(received)} downloaded)"

    def smoke(self, state: up.UpState) -> tuple[up.UpState, str]:
        out = state.smoke_dir
        for name in (SMOKE_JSON, SMOKE_PNG):  # a result from an earlier run must not pass for this one
            (out / name).unlink(missing_ok=True)
        smoke_argv = ["--out", str(out)] + (["--allow-cpu"] if self.args.allow_cpu else [])
        model = smoke_model_path(self.project, self.spec)
        code = smoke(self.target, state.prefix, smoke_argv, model=model, progress=progress, stdout=_stderr_fd())
        result = _read_json(out / SMOKE_JSON)
        verdict, message = result.get("verdict"), result.get("message")
        if code != 0:
            raise up.smoke_error(code, _str(verdict), _str(message), str(out / SMOKE_JSON))
        device = _str(result.get("device"))
        new = replace(state, smoke_verdict=_str(verdict), smoke_device=device)
        return new, f"{verdict} on {device}: {out / SMOKE_PNG}"

    def report(self, state: up.UpState) -> tuple[up.UpState, str]:
        _, written = build_report(
            self.project,
            self.spec.resolve_all(),
            state.out_dir,
            state.report_dir,
            mirrors=self.mirrors or None,
            environ=os.environ,
            progress=progress,
        )
        return replace(state, report_html=written.html), f"{written.html} and {written.markdown}"


@contextlib.contextmanager
def _offer_no_models() -> Iterator[None]:
    """A Hub that cannot be reached: say how to go on without the pinned model."""
    try:
        yield
    except ChannelUnreachable as exc:
        exc.tip = (exc.tip + "; or " if exc.tip else "") + "pass --no-models to smoke-test with the tiny offline model"
        raise


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _stderr_fd() -> int | None:
    """stderr's file descriptor for the smoke test's child (None when stderr is not a real file)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def run(args: argparse.Namespace) -> int:
    project, spec = load(args)
    if args.target is None:
        target = default_target(spec, cmd_doctor.PROBE_FACTORY())
        progress(f"up: no TARGET given; using {target.name}, the target recommended for this machine")
    else:
        target = spec.resolve(args.target)
    prefix = destination(args.prefix, args.name, os.environ, Path.home()).prefix
    out_dir = Path(args.out).absolute()
    runner = Runner(args, project, spec, target)
    outcome = up.run_steps(runner.steps(), up.UpState(target.name, prefix, out_dir), progress)
    if args.json:
        print_json(outcome.to_json())
        args.json_printed = True  # the error below is in the document: main prints only its line on stderr
    else:
        print(up.final_line(outcome), flush=True)
    failed = outcome.failed
    if failed is not None:
        assert isinstance(failed.error, EnvspecError)
        raise failed.error
    return outcome.exit_code
