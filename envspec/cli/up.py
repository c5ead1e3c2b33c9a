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
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.cli import up_plan as up
from envspec.cli.common import (
    Context,
    add_destination_options,
    add_json_option,
    add_lock_mode_options,
    add_mirror_option,
    load,
    lock_mode,
    print_json,
    progress,
    sigterm_as_interrupt,
)

if TYPE_CHECKING:
    from envspec.doctor import MachineFacts
    from envspec.project import Project
    from envspec.spec import ResolvedTarget, Spec


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


@dataclass(frozen=True)
class UpRequest:
    target: str | None
    prefix: str | None
    name: str | None
    replace: bool = False
    mirrors: tuple[str, ...] = ()
    allow_cpu: bool = False
    out: Path = up.DEFAULT_OUT
    locked: bool = False
    frozen: bool = False
    no_models: bool = False
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> UpRequest:
        return cls(
            target=args.target,
            prefix=args.prefix,
            name=args.name,
            replace=bool(args.replace),
            mirrors=tuple(args.mirror),
            allow_cpu=bool(args.allow_cpu),
            out=Path(args.out),
            locked=bool(args.locked),
            frozen=bool(args.frozen),
            no_models=bool(args.no_models),
            json=bool(args.json),
        )


class Runner:
    """The effects of each step, over one request, project, spec, target and the machine's facts."""

    def __init__(
        self,
        request: UpRequest,
        ctx: Context,
        loaded: tuple[Project, Spec],
        target: ResolvedTarget,
        facts: MachineFacts,
    ) -> None:
        self.request = request
        self.ctx = ctx
        self.project, self.spec = loaded
        self.target = target
        self.facts = facts  # probed once, at the start of the run
        self.mirrors = ctx.mirrors(request.mirrors)
        # the settings' limits, checked before the first step (the lock's only when it may solve)
        from envspec.lock import LockMode

        self.fetch_limits = ctx.settings.fetch_limits()
        solves = lock_mode(request.locked, request.frozen) is LockMode.AUTO
        self.lock_limits = ctx.settings.lock_limits() if solves else None
        self.hub_retries = ctx.settings.hub_retries()  # a bad ENVSPEC_HUB_RETRIES fails before anything starts

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
        from dataclasses import replace

        from envspec.doctor import UP_ADVICE, doctor_text, examine

        t, req = self.target, self.request
        # the doctor's fixes name up's own prefix, not the doctor's `--prefix ./env`
        advice = replace(UP_ADVICE, install=f"envspec up {{target}} --prefix {shlex.quote(str(state.prefix))}")
        report = examine(self.project, self.spec, self.facts, t, advice=advice, with_models=not req.no_models)
        progress(doctor_text(report, self.project, install_line=False))
        gate = up.doctor_gate(report.checks, t.accelerator, req.allow_cpu)
        if not gate.ok:
            raise up.gate_error(gate, t.name, t.accelerator, req.allow_cpu)
        counts = report.counts()
        detail = f"{counts['PASS']} PASS, {counts['WARN']} WARN"
        if gate.waived:
            detail += f", FAIL accepted by --allow-cpu: {', '.join(c.name for c in gate.waived)}"
        return replace(state, waived=tuple(c.name for c in gate.waived)), detail

    def lock(self, state: up.UpState) -> tuple[up.UpState, str]:
        from envspec.lock import ensure_lockfile

        mode = lock_mode(self.request.locked, self.request.frozen)
        relocked, detail = ensure_lockfile(
            self.project, self.target, mirrors=self.mirrors, mode=mode, progress=progress, limits=self.lock_limits
        )
        return replace(state, relocked=relocked), detail

    def install(self, state: up.UpState) -> tuple[up.UpState, str]:
        from envspec.doctor import host_of
        from envspec.install import InstallOptions, install_summary, install_target

        options = InstallOptions(
            host=host_of(self.facts),
            prefix=str(state.prefix),
            mirrors=self.mirrors,
            cache_dir=self.ctx.settings.pkgs_dir,
            replace=self.request.replace,
            environ=self.ctx.settings.environ,
            limits=self.fetch_limits,
        )
        result = install_target(self.project, self.target, options, progress=progress)
        progress(install_summary(result, self.target.name, None))
        return state, f"{state.prefix} from {self.project.relative(self.project.explicit_file(self.target.name))}"

    def models(self, state: up.UpState) -> tuple[up.UpState, str]:
        """Lock (per --locked/--frozen, as for packages) and pull the spec's models: the smoke test then
        makes a real image with the pinned smoke model."""
        from envspec.errors import CheckFailed
        from envspec.lock import LockMode
        from envspec.models import PullOptions, PullProgress, lock_models, pull_models, read_models_lock, stale_entries
        from envspec.models import lockfile_path as models_lockfile
        from envspec.units import human_bytes

        if not self.spec.document.models:
            return state, "no models: in envspec.yml; the smoke test uses its tiny offline model"
        if self.request.no_models:
            return state, "skipped (--no-models); the smoke test uses a model pulled before, else the tiny one"
        mode = lock_mode(self.request.locked, self.request.frozen)
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
            options = PullOptions(retries=self.hub_retries)
            pulled = pull_models(self.project, self.spec, options=options, progress=PullProgress(sys.stderr))
        received = sum(r.received for r in pulled)
        names = ", ".join(f"{r.name} @ {r.commit[:12]}" for r in pulled)
        return state, f"{names} in place ({human_bytes(received)} downloaded)"

    def smoke(self, state: up.UpState) -> tuple[up.UpState, str]:
        from envspec.models import smoke_model_path
        from envspec.report import SMOKE_JSON, SMOKE_PNG, read_smoke_dir
        from envspec.smoke import SmokeOptions, smoke

        out = state.smoke_dir
        for name in (SMOKE_JSON, SMOKE_PNG):  # a result from an earlier run must not pass for this one
            (out / name).unlink(missing_ok=True)
        options = SmokeOptions(out=out, allow_cpu=self.request.allow_cpu)
        model = smoke_model_path(self.project, self.spec)
        code = smoke(self.target, state.prefix, options, model=model, progress=progress, stdout=_stderr_fd())
        result = read_smoke_dir(out).report  # the report's own reader: None when missing or unreadable
        verdict = result.verdict if result is not None else None
        if code != 0:
            message = result.message if result is not None else None
            raise up.smoke_error(code, verdict, message, str(out / SMOKE_JSON))
        device = result.device if result is not None else None
        new = replace(state, smoke_verdict=verdict, smoke_device=device)
        return new, f"{verdict} on {device}: {out / SMOKE_PNG}"

    def report(self, state: up.UpState) -> tuple[up.UpState, str]:
        from envspec.report import ReportOptions, build_report

        options = ReportOptions(
            state.out_dir, state.report_dir, mirrors=self.mirrors, environ=self.ctx.settings.environ
        )
        _, written = build_report(self.project, self.spec.resolve_all(), options, progress=progress)
        return replace(state, report_html=written.html), f"{written.html} and {written.markdown}"


@contextlib.contextmanager
def _offer_no_models() -> Iterator[None]:
    """A Hub that cannot be reached: say how to go on without the pinned model."""
    from envspec.errors import ChannelUnreachable

    try:
        yield
    except ChannelUnreachable as exc:
        exc.tip = (exc.tip + "; or " if exc.tip else "") + "pass --no-models to smoke-test with the tiny offline model"
        raise


def _stderr_fd() -> int | None:
    """stderr's file descriptor for the smoke test's child (None when stderr is not a real file)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def run(args: argparse.Namespace, ctx: Context) -> int:
    """SIGTERM is handled like Ctrl-C (as for ``envspec install``): a killed run removes its staging folder."""
    with sigterm_as_interrupt():
        try:
            return set_up(UpRequest.from_args(args), ctx)
        except _InTheDocument as reported:
            args.json_printed = True  # the error is in the document: main prints only its line on stderr
            raise reported.error from None


class _InTheDocument(Exception):
    """A failed step's error, already in ``up --json``'s document."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def set_up(request: UpRequest, ctx: Context) -> int:
    from envspec.doctor import choose_target, collect_facts
    from envspec.errors import EnvspecError
    from envspec.install import destination

    project, spec = load(ctx)
    progress("up: probing this machine...")
    facts = collect_facts(ctx.machine(), str(project.root))  # once: target choice, doctor and install use it
    if request.target is None:
        target = choose_target(spec, facts)
        progress(f"up: no TARGET given; using {target.name}, the target recommended for this machine")
    else:
        target = spec.resolve(request.target)
    prefix = destination(request.prefix, request.name, ctx.settings.environ, Path.home()).prefix
    out_dir = request.out.absolute()
    runner = Runner(request, ctx, (project, spec), target, facts)
    outcome = up.run_steps(runner.steps(), up.UpState(target.name, prefix, out_dir), progress)
    if request.json:
        print_json(outcome.to_json())
    else:
        print(up.final_line(outcome), flush=True)
    failed = outcome.failed
    if failed is not None:
        assert isinstance(failed.error, EnvspecError)
        raise _InTheDocument(failed.error) if request.json else failed.error
    return outcome.exit_code
