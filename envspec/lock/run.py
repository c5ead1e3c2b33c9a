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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import (
    apply_mirrors,
    canonical_channels,
    parse_mirrors,
    redact,
    shim_mirrors,
    shown,
    unused_mirrors,
)
from envspec.errors import (
    ChannelUnreachable,
    CheckFailed,
    EnvspecError,
    SpecError,
    ToolFailed,
    UnsatisfiableError,
)
from envspec.fsutil import read_regular_text, run_lock
from envspec.lock import commit, explicit, pypi
from envspec.lock.conda_shim import (
    EXCLUDE_NEWER_ENV,
    PRESOLVE_ENV,
    REPORT_ENV,
    Service,
    service_stats,
    shim_executable,
    start_service,
)
from envspec.lock.conda_shim import MIRRORS_ENV as SHIM_MIRRORS_ENV
from envspec.lock.condalock import LockedPackage, read_conda_lock, read_pip_packages, summary_of
from envspec.lock.plan import Action, LockInput, LockPlanError, PlanItem, Stored, plan, staleness

CONDA_LOCK_HASH_KEY = commit.CONDA_LOCK_HASH_KEY
#: The cutoff of ``--exclude-newer`` in conda-lock.yml's metadata (the explicit file's header says
#: ``# envspec-exclude-newer: ...``); both files carry it inside the input hash as well.
CONDA_LOCK_EXCLUDE_NEWER_KEY = "envspec_exclude_newer"
_META_HASH_RE = commit.META_HASH_RE
TIMEOUT_ENV = "ENVSPEC_LOCK_TIMEOUT"
_TMP_GLOB = ".*.envspec-tmp*"


class TargetLike(Protocol):
    """What lock needs of a resolved target (``envspec.spec.schema.ResolvedTarget`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def subdir(self) -> str: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...


class ProjectLike(Protocol):
    @property
    def root(self) -> Path: ...
    @property
    def cache_dir(self) -> Path: ...
    def env_file(self, target: str) -> Path: ...
    def vpkg_file(self, target: str) -> Path: ...
    def conda_lock_file(self, target: str) -> Path: ...
    def explicit_file(self, target: str) -> Path: ...


# ---------------------------------------------------------------------------------------------
# Jobs and their stored state
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockJob:
    target: str
    subdir: str
    root: Path
    env_file: Path
    vpkg_file: Path
    conda_lock_file: Path
    explicit_file: Path
    channels: tuple[str, ...]  # canonical channel URLs: what conda-lock and the lockfiles see
    input: LockInput
    solve_channels: tuple[str, ...] = ()  # where they are fetched from (mirrors applied, no credentials)
    common: frozenset[str] = frozenset()  # names the spec's top-level `dependencies:` asks for (error tips)
    mirrors: tuple[tuple[str, str], ...] = ()  # (name or URL, mirror URL) pairs that apply to it

    @property
    def fetch_channels(self) -> tuple[str, ...]:
        """Where the channels are fetched from: the mirrors where there are some."""
        return self.solve_channels or self.channels

    pip: pypi.PipJob | None = None  # the target's PyPI part, if it has one

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def make_jobs(
    project: ProjectLike,
    targets: Sequence[TargetLike],
    mirrors: Mapping[str, str],
    exclude_newer: str | None = None,
) -> list[LockJob]:
    """Read each target's inputs (raises SpecError when a rendered file is missing).

    ``exclude_newer``: the solve's cutoff (``parse_exclude_newer``), ``""`` for none, or None to keep
    the cutoff each target's lockfile records (what every command that does not set one does).
    """
    jobs = []
    for t in targets:
        env_file, vpkg_file = project.env_file(t.name), project.vpkg_file(t.name)
        try:
            env_bytes, vpkg_bytes = env_file.read_bytes(), vpkg_file.read_bytes()
        except FileNotFoundError as exc:
            raise SpecError(
                f"target {t.name}: {exc.filename} does not exist",
                tip="run `envspec render` first: it writes the environment and virtual-package files",
            ) from None
        channels = canonical_channels(t.channels)
        solve_channels = apply_mirrors(t.channels, mirrors)
        cutoff = (
            recorded_exclude_newer(project.explicit_file(t.name)) if exclude_newer is None else exclude_newer or None
        )
        pip_job = pypi.make_pip_job(t, mirrors, exclude_newer=cutoff)
        jobs.append(
            LockJob(
                target=t.name,
                subdir=t.subdir,
                root=project.root,
                env_file=env_file,
                vpkg_file=vpkg_file,
                conda_lock_file=project.conda_lock_file(t.name),
                explicit_file=project.explicit_file(t.name),
                channels=channels,
                input=LockInput(
                    t.name,
                    t.subdir,
                    env_bytes,
                    vpkg_bytes,
                    channels,
                    frozenset(map(spec_name, t.dependencies)) | pypi.requested(pip_job),
                    pypi.hash_components(pip_job),
                    cutoff,
                ),
                solve_channels=solve_channels,
                common=frozenset(map(spec_name, getattr(t, "common_dependencies", ()))),
                mirrors=tuple(sorted(mirrors.items())),
                pip=pip_job,
            )
        )
    return jobs


def recorded_exclude_newer(explicit_file: Path) -> str | None:
    """The ``--exclude-newer`` cutoff an explicit lockfile records in its header, if any."""
    head = _read_head(explicit_file)
    return explicit.header_fields(head).get(explicit.EXCLUDE_NEWER_KEY) if head is not None else None


def spec_name(match_spec: str) -> str:
    """The package name of a conda match spec (``conda-forge::pytorch=*=cuda*`` -> ``pytorch``)."""
    text = match_spec.strip().split("::", 1)[-1]
    return re.split(r"[\s=<>!~\[;]", text, maxsplit=1)[0].lower()


def _read_head(path: Path, size: int = 4096) -> str | None:
    try:
        return read_regular_text(path, size, errors="replace", head=True)  # a FIFO must not hang lock
    except FileNotFoundError:
        return None


def read_stored(job: LockJob, with_packages: bool = False) -> Stored:
    """The hashes the existing lockfiles carry (fast: no YAML parse unless ``with_packages``)."""
    head = _read_head(job.explicit_file)
    explicit_hash = explicit.header_fields(head).get(explicit.HASH_KEY) if head is not None else None
    try:
        text = read_regular_text(job.conda_lock_file, errors="replace")
    except FileNotFoundError:
        return Stored(explicit_hash, None, None)
    m = _META_HASH_RE.search(text)
    conda_lock_hash = m.group(1) if m else None
    packages = None
    if with_packages:
        packages = frozenset(p.name for p in read_conda_lock(text, job.rel(job.conda_lock_file), job.subdir))
        packages |= frozenset(p.name for p in read_pip_packages(text, job.rel(job.conda_lock_file), job.subdir))
    torn = False
    if explicit_hash is not None and explicit_hash == conda_lock_hash:  # same hash: same packages too?
        with contextlib.suppress(OSError):
            torn = commit.pair_problem(read_regular_text(job.explicit_file, errors="replace"), text) is not None
    pip_hash = pypi.stored_hash(pypi.pip_file(job.explicit_file)) if job.pip is not None else None
    return Stored(explicit_hash, conda_lock_hash, packages, torn=torn, pip_hash=pip_hash)


# ---------------------------------------------------------------------------------------------
# Solving one target with conda-lock (a child process)
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    target: str
    status: str  # "solved" | "updated" | "up to date" | "failed" | "not run"
    seconds: float = 0.0
    packages: int | None = None
    torch: str = ""
    conda_lock_text: str | None = None
    explicit_text: str | None = None
    error: EnvspecError | None = None
    pip_text: str | None = None  # lockfiles/<t>.pip.txt (targets with pip packages)


@dataclass(frozen=True)
class Solver:
    executable: Path
    label: str
    builtin: bool = False  # envspec's py-rattler shim: the runner serves its solves from one process


def resolve_solver(choice: str | None, cache_dir: Path) -> Solver:
    """``None``/``rattler``: envspec's shim; ``conda``/``mamba``/``micromamba``: from PATH; else a path."""
    if choice in {None, "", "rattler", "envspec"}:
        return Solver(shim_executable(cache_dir), "rattler (envspec shim)", builtin=True)
    assert choice is not None
    if choice in {"conda", "mamba", "micromamba"}:
        found = shutil.which(choice)
        if not found:
            raise ToolFailed(
                f"--solver {choice}: `{choice}` is not on PATH",
                tip="install it, pass its path (--solver /path/to/conda), or leave --solver out to use the built-in "
                "py-rattler solver",
            )
        return Solver(Path(found), choice)
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ToolFailed(f"--solver {choice}: no such file", tip="pass conda|mamba|micromamba or an existing path")
    return Solver(path.resolve(), str(path))


def _classify_failure(job: LockJob, report_path: Path, stderr: str, returncode: int) -> EnvspecError:
    report: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded: object = json.loads(report_path.read_text(encoding="utf-8"))
        report = loaded if isinstance(loaded, dict) else {}
    kind = report.get("envspec_kind")
    if job.pip is not None:
        stderr = pypi.scrub(job.pip, stderr)
    if kind is None:  # a real conda/mamba: recognise its error names in conda-lock's output
        if re.search(r"Unsatisfiable|PackagesNotFound|LibMambaUnsatisfiable|Could not solve|nothing provides", stderr):
            kind = "unsatisfiable"
        elif re.search(r"CondaHTTPError|UnavailableInvalidChannel|ChannelError|Could not resolve host", stderr):
            kind = "channel_unreachable"
    if kind == "unsatisfiable":
        explanation = _flatten_tree(str(report.get("message") or _tail(stderr, 15)))
        vp = report.get("virtual_packages")
        vp_text = f" with virtual packages {', '.join(f'{k} {v}' for k, v in vp.items())}" if vp else ""
        if job.input.exclude_newer:
            vp_text += f" and records newer than {job.input.exclude_newer} excluded"
        return UnsatisfiableError(
            f"target {job.target} ({job.subdir}) is unsatisfiable{vp_text}:\n{explanation}",
            tip=unsatisfiable_tip(job, explanation),
        )
    if kind == "channel_unreachable":
        url = str(report.get("url") or next(iter(job.fetch_channels), "?"))
        return _unreachable(job, url, str(report.get("message") or _tail(stderr, 3)))
    if kind == "internal" and report.get("message"):  # py-rattler failed or its process crashed
        return ToolFailed(
            f"py-rattler failed solving target {job.target} ({job.subdir}): {redact(str(report['message']))[:500]}",
            tip=f"rerun `envspec lock --target {job.target}`; if it fails again, try --solver conda|mamba|micromamba",
        )
    return ToolFailed(
        f"conda-lock failed for target {job.target} (exit {returncode}): {redact(_failure_detail(stderr))}",
        tip=f"rerun with `envspec lock --target {job.target} -v` for the full conda-lock output",
    )


_NO_CANDIDATES_RE = re.compile(r"No candidates were found for ([A-Za-z0-9_][A-Za-z0-9_.+-]*)")


def unsatisfiable_tip(job: LockJob, explanation: str) -> str:
    """Where in envspec.yml to look: ``dependencies:`` when a package every target asks for has no
    candidate in the channels (missing, or no version matches), else the target's own record."""
    missing = [n.lower() for n in _NO_CANDIDATES_RE.findall(explanation)]
    common = [n for n in dict.fromkeys(missing) if n in job.common]
    if job.input.exclude_newer and (missing or "after the cutoff" in explanation):
        return (
            f"what the solve needs was not all published by {job.input.exclude_newer}: pass a later "
            "--exclude-newer DATE (or `--exclude-newer none`)"
        )
    if common:
        names = ", ".join(f"`{n}`" for n in common)
        return (
            f"{names} has no matching package in {', '.join(job.channels)}: fix or remove it under `dependencies:` "
            "in envspec.yml (every target asks for it; a package only PyPI has goes under `pip:`), then "
            "`envspec render` and `envspec lock`"
        )
    return (
        f"relax the conflicting requirements in envspec.yml (targets.{job.target}) or its virtual packages, "
        "then `envspec render` and `envspec lock`"
    )


def _flatten_tree(text: str) -> str:
    """A solver's conflict tree as one readable line: tree glyphs dropped, branches joined by ``; ``."""
    text = text.strip().removeprefix("Cannot solve the request because of:").strip()
    parts = [re.sub(r"^[\s│├└─|`-]+", "", line).strip() for line in text.splitlines()]
    out = ""
    for part in filter(None, parts):
        if not out:
            out = part
        elif out.endswith(":"):
            out += " " + part
        elif out.endswith(("require", "constrain", "incompatible")):
            out += (": " if out.endswith("incompatible") else " ") + part
        else:
            out += "; " + part
    return out


def _unreachable(job: LockJob, url: str, detail: str) -> ChannelUnreachable:
    """The error names the URL it tried (the mirror's, ``user:***@`` when it has credentials)."""
    text = redact(" ".join(detail.split()))
    who = shown(url)
    if url in text:  # the detail quotes the URL again: show it the same way
        text = text.replace(url, who)
    return ChannelUnreachable(
        f"channel {who} is unreachable while locking {job.target}: {text}",
        tip=f"check the network/URL, or map the channel to a reachable mirror: --mirror NAME=URL "
        f"(or {MIRRORS_ENV}=NAME=URL), e.g. --mirror conda-forge=file:///srv/conda-forge",
    )


def _failure_detail(output: str) -> str:
    """What went wrong, without a Python traceback: a traceback's last line (the exception), else
    the tail of the output (``-v`` shows all of it)."""
    if "Traceback (most recent call last):" in output:
        after = output.rsplit("Traceback (most recent call last):", 1)[1]
        frames = re.compile(r"^(\s|File \"|\^|~|During handling|The above exception)")
        lines = [line for line in after.splitlines() if line.strip() and not frames.match(line)]
        if lines:
            return lines[-1].strip()
    return _tail(output, 10)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _precheck_channels(job: LockJob) -> None:
    """Local channels are checked before conda-lock starts (instant, clear message)."""
    from envspec.lock.conda_shim import file_url_path

    for url in job.fetch_channels:
        root = file_url_path(url)
        if root is not None and not (root / "noarch" / "repodata.json").is_file():
            raise _unreachable(job, url, f"{root / 'noarch' / 'repodata.json'} does not exist")


def _summarise(packages: Sequence[LockedPackage], subdir: str) -> tuple[int, str]:
    summary = summary_of(packages, subdir)  # the report's own summary, too
    return summary.packages, summary.torch_text


def _test_channel_packages(report: Path) -> list[str]:
    """Packages of the tests' synthetic channel the shim saw in the solution (its report file)."""
    from envspec.lock.conda_shim import TEST_CHANNEL_REPORT_KEY

    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    names = data.get(TEST_CHANNEL_REPORT_KEY) if isinstance(data, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def solved_from_test_channel(job: LockJob) -> bool:
    """Does the target's explicit lockfile say it was solved against the tests' synthetic channel?"""
    head = _read_head(job.explicit_file)
    return head is not None and explicit.header_fields(head).get(explicit.SOLVED_FROM_KEY) == explicit.TEST_CHANNEL


def _warn_test_channel(jobs: Sequence[LockJob], progress: Progress) -> None:
    """One line (no target names: a check's output names only the stale targets)."""
    marked = sum(solved_from_test_channel(job) for job in jobs)
    if marked:
        progress(
            f"warning: {marked} lockfile(s) here were solved against the tests' synthetic channel "
            f"(# {explicit.SOLVED_FROM_KEY}: {explicit.TEST_CHANNEL}): never commit them"
        )


def _conda_lock_header(job: LockJob) -> str:
    return (
        f"# GENERATED by `envspec lock` (conda-lock) from {job.rel(job.env_file)} and {job.rel(job.vpkg_file)}"
        " — do not edit.\n"
        f"# To change it: edit envspec.yml, run `envspec render`, then `envspec lock --target {job.target}`.\n"
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


@dataclass
class Prepared:
    """One target's conda-lock run, ready to start: its command line and temporary files."""

    job: LockJob
    item: PlanItem
    argv: list[str]
    env: dict[str, str]
    tmp_dir: Path
    tmp_lock: Path
    report: Path
    stdout: Path
    stderr: Path
    pip_env_file: Path | None = None  # the environment file plus its pip index (targets with pip packages)

    def cleanup(self) -> None:
        self.tmp_lock.unlink(missing_ok=True)
        if self.pip_env_file is not None:
            self.pip_env_file.unlink(missing_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def prepare(job: LockJob, item: PlanItem, solver: Solver, work_dir: Path, verbose: bool = False) -> Prepared:
    """Temp files and the ``conda-lock lock`` arguments for one target (nothing final is touched)."""
    _precheck_channels(job)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{job.target}-", dir=work_dir))
    tmp_lock = job.conda_lock_file.with_name(f".{job.conda_lock_file.name}.envspec-tmp-{os.getpid()}.yml")
    meta = tmp_dir / "envspec-metadata.yml"
    cutoff = job.input.exclude_newer
    meta.write_text(
        f"envspec_target: {job.target}\n{CONDA_LOCK_HASH_KEY}: '{item.input_hash}'\n"
        + (f"{CONDA_LOCK_EXCLUDE_NEWER_KEY}: '{cutoff}'\n" if cutoff else ""),
        encoding="utf-8",
    )
    if item.action is Action.UPDATE:
        shutil.copyfile(job.conda_lock_file, tmp_lock)
    else:
        tmp_lock.unlink(missing_ok=True)
    argv = [
        "lock",
        "--conda",
        str(solver.executable),
        "--no-mamba",
        "--no-micromamba",
        "--file",
        job.rel(job.env_file),
        "--platform",
        job.subdir,
        "--virtual-package-spec",
        job.rel(job.vpkg_file),
        "--lockfile",
        job.rel(tmp_lock),
        "--kind",
        "lock",
        "--kind",
        "explicit",
        "--filename-template",
        str(tmp_dir / "explicit-{platform}"),
        "--metadata-yaml",
        str(meta),
        "--log-level",
        "INFO" if verbose else "WARNING",
    ]
    for channel in job.channels:  # canonical: conda-lock writes what it is given
        argv += ["--channel", channel]
    for pkg in item.update:
        argv += ["--update", pkg]
    report = tmp_dir / "shim-report.json"
    scratch = tmp_dir / "tmp"  # conda-lock's own temp dirs land here and go with tmp_dir
    scratch.mkdir()
    routes = shim_mirrors(job.channels, dict(job.mirrors))
    env = {
        REPORT_ENV: str(report),
        # mirror URLs and their credentials for the shim alone: in its environment, never argv/files
        **({SHIM_MIRRORS_ENV: json.dumps(routes)} if routes else {}),
        **({EXCLUDE_NEWER_ENV: cutoff} if cutoff else {}),  # the shim's solve ignores newer records
        "CONDA_LOCK_SUBPROCESS_STDERR_DEFAULT_LOG_LEVEL": "WARNING",
        "TMPDIR": str(scratch),
        "TEMP": str(scratch),
        "TMP": str(scratch),
        "RUNNER_TEMP": str(scratch),
    }
    pip_env_file = None
    if job.pip is not None:  # conda-lock reads the environment file with the index added
        pip_env_file = pypi.prepare(
            job.pip, env_file=job.env_file, env_bytes=job.input.environment, argv=argv, env=env, scratch=scratch
        )
        argv[argv.index("--file") + 1] = job.rel(pip_env_file)
    return Prepared(
        job, item, argv, env, tmp_dir, tmp_lock, report, tmp_dir / "stdout.txt", tmp_dir / "stderr.txt", pip_env_file
    )


def finish(
    prep: Prepared, returncode: int, seconds: float, verbose: bool = False, verified: set[tuple[str, str]] | None = None
) -> Outcome:
    """Read and verify one finished run's temp files (raises EnvspecError; replaces nothing).
    ``verified``: the PyPI files (URL, sha256) this run downloaded and checked already."""
    job, item = prep.job, prep.item
    out = prep.stdout.read_text(encoding="utf-8", errors="replace") if prep.stdout.exists() else ""
    err = prep.stderr.read_text(encoding="utf-8", errors="replace") if prep.stderr.exists() else ""
    if verbose:
        sys.stderr.write(redact(out + err))
    if returncode != 0:
        raise _classify_failure(job, prep.report, err + out, returncode)
    try:
        lock_text = prep.tmp_lock.read_text(encoding="utf-8").replace(prep.tmp_lock.name, job.conda_lock_file.name)
        if prep.pip_env_file is not None:
            lock_text = lock_text.replace(prep.pip_env_file.name, job.env_file.name)
        explicit_body = (prep.tmp_dir / f"explicit-{job.subdir}").read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolFailed(
            f"conda-lock exited 0 for {job.target} but did not write {Path(exc.filename or '?').name}",
            tip=f"rerun with `envspec lock --target {job.target} -v` for the full conda-lock output",
        ) from None
    if f"{CONDA_LOCK_HASH_KEY}:" not in lock_text:
        raise ToolFailed(f"conda-lock dropped envspec's metadata from the lockfile of {job.target}")
    marked = _test_channel_packages(prep.report)
    note = explicit.test_channel_note(marked) if marked else ""
    explicit_text = explicit.render(
        explicit_body,
        target=job.target,
        subdir=job.subdir,
        input_hash=item.input_hash,
        sources=[job.rel(job.env_file), job.rel(job.vpkg_file)],
        channels=list(job.channels),
        note=note,
        exclude_newer=job.input.exclude_newer,
    )
    try:
        entries = explicit.entries(explicit_text)
    except ValueError as exc:
        raise ToolFailed(
            f"conda-lock wrote an explicit lockfile envspec cannot verify for {job.target}: {exc}"
        ) from None
    packages = read_conda_lock(lock_text, "conda-lock output")  # once: the summary and the pair check
    count, torch = _summarise(packages, job.subdir)
    if count != len(entries):
        raise ToolFailed(f"{job.target}: conda-lock.yml has {count} packages but the explicit file {len(entries)}")
    problem = commit.pair_problem(explicit_text, lock_text, read=(entries, packages))
    if problem is not None:
        raise ToolFailed(f"conda-lock's two lockfiles of {job.target} disagree: {problem}")
    pip_text = None
    if job.pip is not None:  # the PyPI part, resolved by uv on top of this conda solution, merged in
        lock_text, explicit_text, pip_text = pypi.finish(
            job.pip,
            target=job.target,
            subdir=job.subdir,
            input_hash=item.input_hash,
            lock_text=lock_text,
            explicit_text=explicit_text,
            virtual_packages=job.input.virtual_packages,
            work=prep.tmp_dir,
            cache=prep.tmp_dir.parent.parent / "uv-cache",  # <cache_dir>/uv-cache (tmp_dir: <cache_dir>/lock-tmp/x)
            lock_name=job.conda_lock_file.name,
            previous=_read_head(job.conda_lock_file, 1 << 26) if item.action is Action.UPDATE else None,
            update=item.update,
            verbose=verbose,
            verified=verified,
        )
    return Outcome(
        target=job.target,
        status="updated" if item.action is Action.UPDATE else "solved",
        seconds=seconds,
        packages=count,
        torch=torch,
        conda_lock_text=_conda_lock_header(job) + note + lock_text,
        explicit_text=explicit_text,
        pip_text=pip_text,
    )


def start_runner(cwd: Path, *, shim: Path | None) -> subprocess.Popen[str]:
    """Start :mod:`envspec.lock.conda_lock_runner` now: it imports conda-lock (and starts the one
    solver process, with ``shim``: envspec's conda shim) while envspec prepares the jobs it then
    sends (:func:`run_conda_lock`); :func:`stop_runner` if they never come."""
    flags = ["--shim", str(shim)] if shim is not None else []
    popen_extra: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {}
    return subprocess.Popen(
        [sys.executable, "-m", "envspec.lock.conda_lock_runner", *flags],
        cwd=cwd,
        env=_child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        **popen_extra,
    )


def stop_runner(proc: subprocess.Popen[str]) -> None:
    """Kill a runner and all it started (its process group), and reap it."""
    with contextlib.suppress(OSError):  # already gone
        if sys.platform != "win32":  # (a check mypy --platform understands)
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()
    proc.wait()


class EarlyRunner:
    """The runner (:func:`start_runner`) and, with envspec's shim, the solver service
    (:func:`envspec.lock.conda_shim.start_service`), started on entry: conda-lock imports while
    envspec loads the spec, takes the run lock and prepares the jobs, and the service solves the
    prepared targets meanwhile (:meth:`presolve`). :meth:`take` hands the runner over; on exit a
    runner not taken is stopped, and the service is."""

    def __init__(self, cwd: Path, *, shim: Path | None) -> None:
        self.cwd = cwd
        self.shim = shim
        self.proc: subprocess.Popen[str] | None = None
        self.service: Service | None = None

    def __enter__(self) -> EarlyRunner:
        self.proc = start_runner(self.cwd, shim=self.shim)
        if self.shim is not None:
            try:
                self.service = start_service(_child_env())
            except BaseException:
                self.__exit__()
                raise
        return self

    def presolve(self, preps: Sequence[Prepared]) -> None:
        """Have the service solve these targets now, as conda-lock will ask it to."""
        if self.service is None:
            return
        for prep in preps:
            request = presolve_request(prep)
            if request is not None:
                self.service.presolve(request)

    def socket(self) -> str | None:
        """The service's socket, if it runs (the runner routes conda-lock's solves there)."""
        return self.service.socket if self.service is not None and self.service.is_ready() else None

    def take(self) -> subprocess.Popen[str] | None:
        proc, self.proc = self.proc, None
        return proc

    def __exit__(self, *exc: object) -> None:
        proc = self.take()
        if proc is not None:
            stop_runner(proc)
        service, self.service = self.service, None
        if service is not None:
            service.stop()


def prestart(project: ProjectLike, solver: str | None) -> contextlib.AbstractContextManager[EarlyRunner | None]:
    """The runner (and the service) for ``envspec lock --solver SOLVER``, started now, before the
    spec is loaded; pass what the context gives to :func:`lock` (``early=``). Starts nothing (gives
    None) when the solver is not usable: :func:`lock` then says why."""
    try:
        resolved = resolve_solver(solver, project.cache_dir)
    except (EnvspecError, OSError):
        return contextlib.nullcontext()
    return EarlyRunner(project.root, shim=resolved.executable if resolved.builtin else None)


def presolve_request(prep: Prepared) -> dict[str, Any] | None:
    """What :func:`envspec.lock.conda_shim.presolve` needs to solve a target as conda-lock will ask
    (the specs of the environment file conda-lock reads, the target's virtual packages); None for
    an update (its solve depends on the locked packages) or inputs it cannot read."""
    import yaml

    if prep.item.action is not Action.SOLVE:
        return None
    job = prep.job
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        env_file = job.root / prep.argv[prep.argv.index("--file") + 1]
        environment = yaml.load(read_regular_text(env_file), Loader=loader)
        virtual = yaml.load(job.input.virtual_packages, Loader=loader)
        packages = virtual["subdirs"][job.subdir]["packages"]
        specs = [d for d in environment["dependencies"] if isinstance(d, str)]
    except (OSError, ValueError, yaml.YAMLError, LookupError, TypeError):
        return None
    env = {**_child_env(), **prep.env}
    return {
        "subdir": job.subdir,
        "channels": list(job.channels),
        "specs": specs,
        "virtual_packages": {str(k): str(v) for k, v in dict(packages).items()},
        "env": {k: env[k] for k in PRESOLVE_ENV if k in env},
    }


def run_conda_lock(
    preps: Sequence[Prepared],
    *,
    cwd: Path,
    max_workers: int,
    on_done: Callable[[Prepared, int, float], None],
    shim: Path | None = None,
    runner: subprocess.Popen[str] | None = None,
    service: str | None = None,
) -> None:
    """Run all prepared conda-lock invocations through :mod:`envspec.lock.conda_lock_runner` (one
    conda-lock import, forked per target on POSIX; with ``shim``, envspec's conda shim, one solver
    process for all of them: the one at ``service``), in ``runner`` when :func:`start_runner`
    started it already. Interrupts kill the whole process group."""
    request = {
        "watch_parent": os.name == "posix",
        "max_workers": max_workers,
        "service": service,
        "jobs": [
            {"id": p.job.target, "argv": p.argv, "env": p.env, "stdout": str(p.stdout), "stderr": str(p.stderr)}
            for p in preps
        ],
    }
    by_id = {p.job.target: p for p in preps}
    timeout = lock_timeout(os.environ)
    start = time.monotonic()
    proc = runner if runner is not None else start_runner(cwd, shim=shim)

    def kill() -> None:
        with contextlib.suppress(OSError):  # already gone
            if sys.platform != "win32":  # (a check mypy --platform understands)
                os.killpg(proc.pid, signal.SIGKILL)  # the runner, its forked conda-locks, the solver process
            else:
                proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    done: set[str] = set()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()  # stdin stays open: the runner kills its group when it sees EOF early
        for line in proc.stdout:
            if not line.strip().startswith("{"):
                continue
            message = json.loads(line)
            done.add(message["id"])
            on_done(by_id[message["id"]], int(message["returncode"]), time.monotonic() - start)
        proc.wait()
    except BaseException:
        kill()
        proc.wait()
        raise
    finally:
        timer.cancel()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
    missing = [p for p in preps if p.job.target not in done]
    if missing:
        if time.monotonic() - start >= timeout:
            raise ToolFailed(
                f"conda-lock took longer than {timeout:g} s ({', '.join(p.job.target for p in missing)})",
                tip=f"a slow or unreachable channel? try --mirror, or raise {TIMEOUT_ENV}",
            )
        raise ToolFailed(f"the conda-lock runner ended early (exit {proc.returncode}) before finishing all targets")


def lock_timeout(environ: Mapping[str, str]) -> float:
    """Seconds all conda-lock runs may take together: ``ENVSPEC_LOCK_TIMEOUT``, default 900."""
    text = environ.get(TIMEOUT_ENV, "").strip() or "900"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise SpecError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds", tip=f"e.g. {TIMEOUT_ENV}=1800")
    return value


def _child_env() -> dict[str, str]:
    """The runner's and the service's environment. ENVSPEC_MIRRORS may hold credentials: each job
    gets its own routes (and secrets) in its env, exactly as with --mirror; conda-lock and its tools
    never see the variable itself."""
    return {**{k: v for k, v in os.environ.items() if k != MIRRORS_ENV}, "PYTHONPATH": _pythonpath()}


def _pythonpath() -> str:
    """The runner and shim must import THIS envspec, even from a source checkout."""
    here = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + old if old else "")


# ---------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------


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


def lock_jobs(
    jobs: Sequence[LockJob],
    *,
    cache_dir: Path,
    update: Sequence[str] = (),
    check: bool = False,
    solver: str | None = None,
    max_workers: int | None = None,
    progress: Progress = _stderr,
    verbose: bool = False,
    early: EarlyRunner | None = None,
) -> LockSummary:
    """Plan, solve (in parallel child processes) and commit all jobs; see the module doc.

    ``early``: the runner (and service) the caller started before loading the spec, used when it
    runs the solver this run needs (see :func:`prestart`); else they are started here."""
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
    lock_timeout(os.environ)  # a bad value fails before anything starts
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
                    preps.append(prepare(job, item, resolved, work_root, verbose=verbose))
                except EnvspecError as exc:
                    results.append(Outcome(job.target, "failed", error=exc))

            def on_done(prep: Prepared, returncode: int, seconds: float) -> None:
                try:
                    outcome = finish(prep, returncode, seconds, verbose=verbose, verified=verified)
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
                runner.presolve(preps)
                run_conda_lock(
                    preps,
                    cwd=jobs[0].root,
                    max_workers=workers,
                    on_done=on_done,
                    runner=runner.take(),
                    service=runner.socket(),
                )
                if verbose:
                    _report_solves(runner, progress)
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


def _report_solves(runner: EarlyRunner, progress: Progress) -> None:
    """``-v``: how many solves the solver process ran, and how many of conda-lock's it had ready."""
    path = runner.socket()
    with contextlib.suppress(OSError, ValueError, KeyError):
        if path is not None:
            stats = service_stats(path)
            progress(
                f"solver process: {stats['solved']} solve(s), {stats['reused']} of conda-lock's answered "
                "from a solve done before it asked"
            )


def _report_failure_table(report: LockSummary, progress: Progress) -> None:
    progress(report.table().rstrip("\n"))


def is_fresh(project: ProjectLike, target: TargetLike, mirrors: Mapping[str, str] | None = None) -> bool | None:
    """Do the target's lockfiles match its current inputs? None when its inputs are not rendered.

    Mirrors are transport and no input: any (default ``ENVSPEC_MIRRORS``) gives the same answer.
    Used by ``envspec report`` and ``envspec up``; cheap (no conda-lock).
    """
    if mirrors is None:
        mirrors = parse_mirrors((), os.environ.get(MIRRORS_ENV))
    try:
        (job,) = make_jobs(project, [target], mirrors)
    except SpecError:
        return None
    return staleness(job.input.digest(), read_stored(job), job.input.has_pip) is None


def lock(
    project: ProjectLike,
    targets: Sequence[TargetLike],
    *,
    mirrors: Mapping[str, str],
    update: Sequence[str] = (),
    check: bool = False,
    solver: str | None = None,
    jobs: int | None = None,
    verbose: bool = False,
    progress: Progress = _stderr,
    exclude_newer: str | None = None,
    early: EarlyRunner | None = None,
) -> LockSummary:
    """The lock stage's entry point: plan, solve and commit the lockfiles of ``targets``.

    ``exclude_newer`` (see :func:`make_jobs`): a cutoff, ``""`` to drop a recorded one, None to keep it.
    ``early``: what :func:`prestart` started, if the caller did.
    """
    for name in unused_mirrors([c for t in targets for c in t.channels], mirrors):
        if name == pypi.MIRROR_NAME:  # the PyPI index of the pip packages, not a conda channel
            continue
        progress(f"warning: mirror {name!r} matches no channel of the selected targets")
    planned = make_jobs(project, targets, mirrors, exclude_newer)
    return lock_jobs(
        planned,
        cache_dir=project.cache_dir,
        update=update,
        check=check,
        solver=solver,
        max_workers=jobs,
        progress=progress,
        verbose=verbose,
        early=early,
    )
