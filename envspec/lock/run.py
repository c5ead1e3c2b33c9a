"""``envspec lock``: pinned lockfiles for every target, solved by conda-lock.

conda-lock does the solving through its public interface (its CLI entry point ``conda_lock.main``,
run with a command line in child processes, see :mod:`envspec.lock.conda_lock_runner`), one conda-lock
run per target, each with the target's own virtual packages
(``lockfiles/<t>.virtual-packages.yml``) and the spec's *canonical* channel URLs: a mirror is
transport, never content. conda-lock never sees a mirror or its credentials; envspec's shim fetches
through the mirror (``ENVSPEC_SHIM_MIRRORS`` in its environment) and answers with canonical URLs,
so the lockfiles and their input hash are the same whichever mirror served the repodata. The conda executable it
drives is envspec's py-rattler shim (:mod:`envspec.lock.conda_shim`) unless ``--solver`` names a real
conda, mamba or micromamba; ``--conda PATH`` always points at an existing file, so conda-lock
never tries to download one.

Every run writes into temporary files first; only when every planned target solved are the
lockfiles replaced, all of them or none (:mod:`envspec.lock.commit`: temp files, a journal, the
renames; a run killed mid-commit is completed by the next one). A failed, unsatisfiable or killed
run leaves the previous lockfiles byte-identical. Both lockfiles of a target carry the hash of its
inputs, so an unchanged target is skipped without starting conda-lock.

This module is the whole run (plan, solve, commit: :func:`lock`, :func:`lock_jobs`); a target's
inputs and stored hashes are :mod:`envspec.lock.jobs`', its conda-lock command line and the
reading back of what conda-lock wrote :mod:`envspec.lock.conda_lock_job`'s, the runner and solver
processes :mod:`envspec.lock.conda_lock_process`'s, and a failure's one-line message
:mod:`envspec.lock.failures`'.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import unused_mirrors
from envspec.errors import CheckFailed, EnvspecError, SpecError, ToolFailed
from envspec.fsutil import run_lock
from envspec.lock import commit, explicit, pypi
from envspec.lock.conda_lock_job import Outcome, Prepared, finish, prepare, presolve_request
from envspec.lock.conda_lock_process import EarlyRunner, report_solves, resolve_solver, run_conda_lock
from envspec.lock.jobs import (
    LockJob,
    ProjectLike,
    TargetLike,
    make_jobs,
    read_stored,
    solved_from_test_channel,
)
from envspec.lock.plan import Action, LockPlanError, plan, staleness
from envspec.settings import LockLimits

__all__ = ["LOCK_SCHEMA", "LockOptions", "LockSummary", "is_fresh", "lock", "lock_jobs"]

_TMP_GLOB = ".*.envspec-tmp*"
LOCK_SCHEMA = "envspec.lock/1"


@dataclass
class LockSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    solver: str = ""

    def to_json(self, *, check: bool = False, cutoffs: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """The ``envspec lock --json`` document (schema ``envspec.lock/1``, docs/json.md); ``cutoffs``:
        the ``--exclude-newer`` each target's lockfile records."""
        cutoffs = cutoffs or {}
        return {
            "schema": LOCK_SCHEMA,
            "check": check,
            "solver": self.solver or None,
            "targets": [
                {
                    "target": o.target,
                    "status": o.status,
                    "packages": o.packages,
                    "torch": o.torch or None,
                    "seconds": round(o.seconds, 3),
                    "exclude_newer": cutoffs.get(o.target),
                }
                for o in self.outcomes
            ],
        }

    def table(self) -> str:
        rows = [("target", "status", "packages", "torch build", "seconds")]
        for o in self.outcomes:
            rows.append(
                (
                    o.target,
                    o.status,
                    "-" if o.packages is None else str(o.packages),
                    o.torch or "-",
                    f"{o.seconds:.1f}",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"


Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _warn_test_channel(jobs: Sequence[LockJob], progress: Progress) -> None:
    """One line (no target names: a check's output names only the stale targets)."""
    marked = sum(solved_from_test_channel(job) for job in jobs)
    if marked:
        progress(
            f"warning: {marked} lockfile(s) here were solved against the tests' synthetic channel "
            f"(# {explicit.SOLVED_FROM_KEY}: {explicit.TEST_CHANNEL}): never commit them"
        )


_REAL_SOLVERS = {"conda", "mamba", "micromamba"}


def _refuse_mirrors_for_real_solver(jobs: Sequence[LockJob], solver: str | None) -> None:
    """A real conda would fetch the canonical channels itself and ignore envspec's mirrors."""
    mirrored = [j.target for j in jobs if j.fetch_channels != j.channels]
    if solver in _REAL_SOLVERS and mirrored:
        raise SpecError(
            f"--mirror/{MIRRORS_ENV} with --solver {solver}: envspec applies mirrors in its built-in solver only",
            tip=f"leave --solver out, or configure the mirror in {solver}'s own settings (.condarc custom_channels)",
        )


def _clean_stale_temps(jobs: Sequence[LockJob], work_root: Path) -> None:
    """Temp files a killed run left behind (we hold the run lock, so none is in use; a journal's
    temps were completed by :func:`_recover` first)."""
    for folder in _folders(jobs):
        if commit.pending(folder):
            continue
        for path in folder.glob(_TMP_GLOB):
            path.unlink(missing_ok=True)
    for folder in {job.env_file.parent for job in jobs if job.pip is not None}:  # pypi.lock_env_path
        for path in folder.glob(".environment-*.envspec-tmp-*.yml"):
            path.unlink(missing_ok=True)
    shutil.rmtree(work_root, ignore_errors=True)


def _folders(jobs: Sequence[LockJob]) -> list[Path]:
    return sorted({job.conda_lock_file.parent for job in jobs} | {job.explicit_file.parent for job in jobs})


def _recover(jobs: Sequence[LockJob], cache_dir: Path, progress: Progress) -> None:
    """Complete a commit a killed run left behind (see :mod:`envspec.lock.commit`)."""
    folders = [f for f in _folders(jobs) if commit.pending(f)]
    if not folders:
        return
    with run_lock(cache_dir / "lock.lock", "locking"):
        for folder in folders:
            done = commit.recover(folder)
            if done:
                progress(f"completed the lockfile commit an interrupted run left: {', '.join(done)}")


@dataclass(frozen=True)
class LockOptions:
    """How to lock: the one request object from the command line (or ``up``, or an install's
    freshness check) to the stage.

    ``update``: packages that may move (the rest keep their pins); ``check``: change nothing, fail
    when a lockfile is stale; ``solver``: a conda executable (default: envspec's py-rattler shim);
    ``jobs``: targets solved at once; ``exclude_newer`` (see :func:`make_jobs`): a cutoff, ``""`` to
    drop a recorded one, None to keep it; ``early``: the runner (and service) the caller started
    before loading the spec (:func:`prestart`), used when it runs the solver this run needs;
    ``limits``: the time and memory the children may take (checked by the caller: ``Settings.lock_limits``)."""

    mirrors: Mapping[str, str] = field(default_factory=dict)
    update: Sequence[str] = ()
    check: bool = False
    solver: str | None = None
    jobs: int | None = None
    verbose: bool = False
    exclude_newer: str | None = None
    early: EarlyRunner | None = None
    limits: LockLimits = field(default_factory=LockLimits)


def lock_jobs(
    jobs: Sequence[LockJob], options: LockOptions, *, cache_dir: Path, progress: Progress = _stderr
) -> LockSummary:
    """Plan, solve (in parallel child processes) and commit all jobs; see the module doc."""
    update, check, solver, verbose, early = (
        options.update,
        options.check,
        options.solver,
        options.verbose,
        options.early,
    )
    max_workers = options.jobs
    started = time.monotonic()
    _refuse_mirrors_for_real_solver(jobs, solver)
    _recover(jobs, cache_dir, progress)
    stored = {job.target: read_stored(job, with_packages=bool(update)) for job in jobs}
    try:
        items = plan([job.input for job in jobs], stored, update)
    except LockPlanError as exc:
        raise SpecError(
            str(exc), tip="--update takes packages the spec names (dependencies or torch in envspec.yml)"
        ) from None
    by_target = {job.target: job for job in jobs}
    report = LockSummary()
    if check:
        stale = [i for i in items if i.action is not Action.SKIP]
        report.outcomes = [Outcome(i.target, "stale" if i.action is not Action.SKIP else "up to date") for i in items]
        _warn_test_channel(jobs, progress)
        if stale:
            raise CheckFailed(
                "lockfiles out of date: " + "; ".join(f"{i.target} ({i.reason})" for i in stale),
                tip="run `envspec lock` and commit lockfiles/",
            )
        return report
    todo = [i for i in items if i.action is not Action.SKIP]
    for i in items:
        if i.action is Action.SKIP:
            progress(f"{i.target}: up to date ({i.reason})")
    outcomes = {i.target: Outcome(i.target, "up to date") for i in items if i.action is Action.SKIP}
    if not todo:
        report.outcomes = [outcomes[i.target] for i in items]
        return report
    resolved = resolve_solver(solver, cache_dir)
    report.solver = resolved.label
    work_root = cache_dir / "lock-tmp"
    shim = resolved.executable if resolved.builtin else None
    given = early is not None and early.proc is not None and early.shim == shim and early.cwd == jobs[0].root
    with (
        (
            contextlib.nullcontext(early) if given and early is not None else EarlyRunner(jobs[0].root, shim=shim)
        ) as runner,
        run_lock(cache_dir / "lock.lock", "locking"),
    ):
        _clean_stale_temps(jobs, work_root)
        work_root.mkdir(parents=True, exist_ok=True)
        workers = max(1, min(len(todo), max_workers or os.cpu_count() or 1))
        progress(f"locking {len(todo)} target(s) with conda-lock + {resolved.label}, {workers} at a time")

        preps: list[Prepared] = []
        results: list[Outcome] = []
        verified: set[tuple[str, str]] = set()  # PyPI files checked for one target need no second download
        try:
            for n, item in enumerate(todo, 1):
                job = by_target[item.target]
                progress(f"[{n}/{len(todo)}] {job.target}: {item.action.value} ({item.reason}) for {job.subdir}")
                try:
                    preps.append(prepare(job, item, resolved.executable, work_root, verbose=verbose))
                except EnvspecError as exc:
                    results.append(Outcome(job.target, "failed", error=exc))

            def on_done(prep: Prepared, returncode: int, seconds: float) -> None:
                try:
                    outcome = finish(
                        prep, returncode, seconds, verbose=verbose, verified=verified, limits=options.limits
                    )
                except EnvspecError as exc:
                    outcome = Outcome(prep.job.target, "failed", seconds=seconds, error=exc)
                    progress(f"  {prep.job.target}: FAILED after {seconds:.1f} s")
                else:
                    progress(
                        f"  {prep.job.target}: {outcome.status}, {outcome.packages} packages, "
                        f"torch {outcome.torch}, {seconds:.1f} s"
                    )
                results.append(outcome)

            if preps:
                runner.presolve(r for r in map(presolve_request, preps) if r is not None)
                run_conda_lock(
                    preps,
                    cwd=jobs[0].root,
                    max_workers=workers,
                    on_done=on_done,
                    runner=runner.take(),
                    service=runner.socket(),
                    timeout=options.limits.timeout_s,
                )
                if verbose:
                    report_solves(runner, progress)
        finally:
            for prep in preps:
                prep.cleanup()
        for outcome in results:
            outcomes[outcome.target] = outcome
        report.outcomes = [outcomes[i.target] for i in items]
        failed = [outcomes[i.target] for i in todo if outcomes[i.target].error is not None]
        if failed:
            for o in results:
                if o.error is None:
                    o.status += " (not written)"
            first = failed[0].error
            assert first is not None
            others = [o.target for o in failed[1:]]
            if others:
                first.message += f" (also failed: {', '.join(others)})"
            first.message += "; no lockfile was changed"
            _report_failure_table(report, progress)
            raise first
        files: list[tuple[Path, str]] = []
        for outcome in results:  # every target solved: commit them all, or none
            job = by_target[outcome.target]
            assert outcome.conda_lock_text is not None and outcome.explicit_text is not None
            files += [(job.conda_lock_file, outcome.conda_lock_text), (job.explicit_file, outcome.explicit_text)]
            if outcome.pip_text is not None:  # lockfiles/<t>.pip.txt, in the same journaled commit
                files.append((pypi.pip_file(job.explicit_file), outcome.pip_text))
        folders = _folders([by_target[o.target] for o in results])
        if len(folders) != 1:
            raise ToolFailed(f"lockfiles must share one folder to be committed together: {folders}")
        commit.commit(folders[0], files)
        for outcome in results:  # a target that no longer has PyPI packages loses its .pip.txt
            if outcome.pip_text is None:
                pypi.commit(pypi.pip_file(by_target[outcome.target].explicit_file), None)
        shutil.rmtree(work_root, ignore_errors=True)
    _warn_test_channel([by_target[o.target] for o in results], progress)
    progress(f"done in {time.monotonic() - started:.1f} s")
    return report


def _report_failure_table(report: LockSummary, progress: Progress) -> None:
    progress(report.table().rstrip("\n"))


def is_fresh(project: ProjectLike, target: TargetLike, mirrors: Mapping[str, str] | None = None) -> bool | None:
    """Do the target's lockfiles match its current inputs? None when its inputs are not rendered.

    ``mirrors``: those of the lock (None: none). A channel's mirror is transport and no input; a
    ``pypi`` mirror is the index of a pip target's PyPI part, one of its inputs.
    Used by ``envspec report`` and ``envspec up``; cheap (no conda-lock).
    """
    try:
        (job,) = make_jobs(project, [target], mirrors or {})
    except SpecError:
        return None
    return staleness(job.input.digest(), read_stored(job), job.input.has_pip) is None


def lock(
    project: ProjectLike, targets: Sequence[TargetLike], options: LockOptions, *, progress: Progress = _stderr
) -> LockSummary:
    """The lock stage's entry point: plan, solve and commit the lockfiles of ``targets``."""
    mirrors = options.mirrors
    for name in unused_mirrors([c for t in targets for c in t.channels], mirrors):
        if name == pypi.MIRROR_NAME:  # the PyPI index of the pip packages, not a conda channel
            continue
        progress(f"warning: mirror {name!r} matches no channel of the selected targets")
    planned = make_jobs(project, targets, mirrors, options.exclude_newer)
    return lock_jobs(planned, options, cache_dir=project.cache_dir, progress=progress)
