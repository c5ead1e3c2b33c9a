"""The plan of ``envspec up``: five steps, each taking the previous step's result.

``doctor -> lock -> install -> models -> smoke -> report``. A step is a function from the run's state to the
next state (plus a one-line detail); the first step that raises an ``EnvspecError`` ends the run
and the steps after it are SKIPPED. Everything here is pure: the effects (probing the machine,
conda-lock, py-rattler, the smoke test's child process, writing the report) are the step functions
``envspec.cli.up`` hands to :func:`run_steps`, so the order, the gates and the exit code are unit
tests with stub steps.

``--allow-cpu`` waives doctor FAILs only when they all say the target's accelerator is absent:
the check names per accelerator are the data in :data:`ACCELERATOR_ABSENT_CHECKS`. A GPU that is
present but unusable (a driver too old for the target's CUDA, a compute capability the build
lacks) still stops the run: fix the driver or pick another target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from envspec.doctor import Check
from envspec.doctor import Status as CheckStatus
from envspec.errors import CheckFailed, EnvspecError, ExitCode, SmokeSetupFailed

STEP_NAMES: Final[tuple[str, ...]] = ("doctor", "lock", "install", "models", "smoke", "report")

#: Doctor checks whose FAIL means "this machine lacks the target's accelerator", per accelerator.
#: ``--allow-cpu`` accepts exactly these (the smoke test then runs on the CPU and says so).
ACCELERATOR_ABSENT_CHECKS: Final[Mapping[str, frozenset[str]]] = {
    "cuda": frozenset({"nvidia-gpu"}),
    "mps": frozenset(),  # an MPS target on a machine without Apple silicon fails `platform`: not waivable
    "cpu": frozenset(),
}

DEFAULT_OUT: Final = Path("outputs/up")
UP_SCHEMA: Final = "envspec.up/1"
REPORT_DIR: Final = "report"


class StepStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class UpState:
    """What the run knows so far; each step returns a copy with its part filled in."""

    target: str
    prefix: Path
    out_dir: Path
    waived: tuple[str, ...] = ()  # doctor checks accepted by --allow-cpu
    relocked: bool = False
    smoke_verdict: str | None = None
    smoke_device: str | None = None
    report_html: Path | None = None

    @property
    def smoke_dir(self) -> Path:
        return self.out_dir / self.target

    @property
    def report_dir(self) -> Path:
        return self.out_dir / REPORT_DIR


StepFn = Callable[[UpState], tuple[UpState, str]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFn


@dataclass(frozen=True)
class StepResult:
    name: str
    status: StepStatus
    detail: str = ""
    error: EnvspecError | None = None


@dataclass(frozen=True)
class UpOutcome:
    state: UpState
    results: tuple[StepResult, ...]

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if r.status is StepStatus.FAIL), None)

    @property
    def ok(self) -> bool:
        return self.failed is None and all(r.status is StepStatus.PASS for r in self.results)

    @property
    def exit_code(self) -> int:
        failed = self.failed
        if failed is None:
            return int(ExitCode.OK) if self.ok else int(ExitCode.CHECK_FAILED)
        assert failed.error is not None
        return int(failed.error.exit_code)

    def to_json(self) -> dict[str, Any]:
        """The ``envspec up --json`` document (schema ``envspec.up/1``, docs/json.md): the verdict,
        every step, and the failing step's error with the run's exit code."""
        s, failed = self.state, self.failed
        error = failed.error if failed is not None else None
        return {
            "schema": UP_SCHEMA,
            "target": s.target,
            "prefix": str(s.prefix),
            "ok": self.ok,
            "exit_code": self.exit_code,
            "failed_step": failed.name if failed is not None else None,
            "error": None if error is None else error.message,
            "tip": None if error is None else error.tip,
            "relocked": s.relocked,
            "waived": list(s.waived),
            "smoke": {"verdict": s.smoke_verdict, "device": s.smoke_device},
            "report_html": str(s.report_html) if s.report_html is not None else None,
            "steps": [{"name": r.name, "status": str(r.status), "detail": r.detail} for r in self.results],
        }


def run_steps(steps: Sequence[Step], initial: UpState, progress: Callable[[str], None]) -> UpOutcome:
    """Run ``steps`` in order, each on the previous one's state; stop at the first failure."""
    state = initial
    results: list[StepResult] = []
    total = len(steps)
    for n, step in enumerate(steps, 1):
        if results and results[-1].status is not StepStatus.PASS:
            results.append(StepResult(step.name, StepStatus.SKIPPED))
            continue
        progress(f"[{n}/{total}] {step.name}: ...")
        try:
            state, detail = step.run(state)
        except EnvspecError as err:
            progress(f"[{n}/{total}] {step.name}: FAILED")
            results.append(StepResult(step.name, StepStatus.FAIL, err.message, err))
            continue
        progress(f"[{n}/{total}] {step.name}: {detail}")
        results.append(StepResult(step.name, StepStatus.PASS, detail))
    return UpOutcome(state, tuple(results))


# ---------------------------------------------------------------------------------------------
# Step 1: the doctor gate
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    blocking: tuple[Check, ...]  # FAILs that stop the run
    waived: tuple[Check, ...]  # FAILs --allow-cpu accepts

    @property
    def ok(self) -> bool:
        return not self.blocking


def doctor_gate(checks: Sequence[Check], accelerator: str, allow_cpu: bool) -> Gate:
    """Which FAILs stop ``envspec up``: all of them, unless ``allow_cpu`` and every FAIL is one of
    the target accelerator's absence checks (then none; they are reported as waived)."""
    fails = tuple(c for c in checks if c.status is CheckStatus.FAIL)
    absent = ACCELERATOR_ABSENT_CHECKS.get(accelerator, frozenset())
    if allow_cpu and fails and all(c.name in absent for c in fails):
        return Gate(blocking=(), waived=fails)
    return Gate(blocking=fails, waived=())


def gate_error(gate: Gate, target: str, accelerator: str, allow_cpu: bool) -> CheckFailed:
    """The error for a closed gate: the first blocking check's reason and fix."""
    first = gate.blocking[0]
    more = f" (+{len(gate.blocking) - 1} more FAIL)" if len(gate.blocking) > 1 else ""
    absent = ACCELERATOR_ABSENT_CHECKS.get(accelerator, frozenset())
    only_accelerator = all(c.name in absent for c in gate.blocking)
    if only_accelerator and not allow_cpu:
        tip = (
            f"pass --allow-cpu to go on and run the smoke test of {target} on the CPU (the report says so), "
            "or run it on a machine with the GPU; `envspec doctor` explains"
        )
    else:
        tip = first.fix or "`envspec doctor --target TARGET` explains each check"
    return CheckFailed(f"doctor: {target}: {first.name}: {first.reason}{more}", tip=tip)


# ---------------------------------------------------------------------------------------------
# Step 2: the lock decision
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Step 4: the smoke verdict, and the final line
# ---------------------------------------------------------------------------------------------


def smoke_error(code: int, verdict: str | None, message: str | None, smoke_json: str) -> EnvspecError:
    """A smoke test that exited non-zero: its own code of the one table (1 a check failed, 10 it could not run).

    smoke.json's message is a line of its own (``error: X (tip: Y)``): its prefix is dropped and its
    tip becomes the error's, so the line printed has one ``error:`` and one tip."""
    said, tip = _split_tip(message or "")
    said = said or f"exit status {code}, no {smoke_json} written"
    kind = SmokeSetupFailed if code == ExitCode.SMOKE_SETUP else CheckFailed
    where = f"details in {smoke_json}"
    label = "" if verdict in (None, "error") else f"{verdict}: "  # main() prints the one "error: "
    return kind(
        f"smoke: {label}{said}",
        tip=f"{tip}; {where}" if tip else f"{where}; rerun with ENVSPEC_DEBUG=1 for a traceback",
    )


_PREFIXES: Final = ("error: ", "fail: ", "error:", "fail:")
_TIP: Final = " (tip: "


def _split_tip(message: str) -> tuple[str, str | None]:
    """``"error: X (tip: Y)"`` -> ``("X", "Y")``: a one-line message without its prefix, and its tip."""
    text = " ".join(message.split())
    while text.lower().startswith(_PREFIXES):
        text = text.split(":", 1)[1].lstrip()
    tip = None
    at = text.rfind(_TIP)
    if at >= 0 and text.endswith(")"):
        text, tip = text[:at].rstrip(), text[at + len(_TIP) : -1].strip() or None
    return text, tip


def final_line(outcome: UpOutcome) -> str:
    """The one line ``envspec up`` prints on stdout: target, prefix, verdict, report.html."""
    s = outcome.state
    failed = outcome.failed
    if failed is not None:
        verdict = f"FAILED at {failed.name}"
    elif not outcome.ok:
        verdict = "INCOMPLETE"
    else:
        verdict = "PASS"
        if s.smoke_device:
            verdict += f" on {s.smoke_device}"
        if s.waived:
            verdict += f" (--allow-cpu waived: {', '.join(s.waived)})"
    report = str(s.report_html) if s.report_html is not None else "none"
    return f"up {s.target}: {verdict}; prefix {s.prefix}; report {report}"
