"""`envspec lock` of the torch-only targets on REAL conda-forge records, against its py-rattler floor.

    python benchmarks/bench_lock_real.py [TARBALL] [--rounds 5] [--no-profile]

TARBALL defaults to ``../shared/data/conda-forge-records.tar.gz`` (relative to the repository): the
shared snapshot of real conda-forge repodata (22,713 records, see its README). It is unpacked once
into ``.envspec-cache/bench-real/`` and served as ``--mirror conda-forge=file://...``.

The targets are the torch-only targets (one per target of envspec.yml) of ``tests/data/conda-forge/targets.json`` (their
``specs`` and ``virtual_packages``); the scratch project's envspec.yml is generated from it as
``tests/lock/test_lock_conda_forge.py`` does (dependencies ``["tzdata"]``, per-target torch = specs)
and rendered once. Each round alternates, measured from this process as a user would see them:

* **cold**: ``envspec lock`` of every target in a fresh copy of the project (no lockfiles), the
  whole process (envspec, the conda-lock runner, conda-lock forked per target, the one py-rattler
  solver process of the run; on Linux the runner and the solver process are forked from envspec);
* **floor**: one ``python`` process that imports py-rattler and solves the same spec sets
  (tzdata + the target's specs, as parsed ``MatchSpec`` objects) with the same virtual packages
  (``GenericVirtualPackage``) against the same channel with ``rattler.solve``, one after the other;
  the whole process, interpreter start and ``import rattler`` included (as cold includes envspec's);
* **no-op**: ``envspec lock`` again (nothing changed), the whole process, and in one more process
  the in-process time of ``envspec.lock.run.lock(...)`` after every import is done.

cold and floor swap order every round, so drift in the machine's load hits both alike. Prints
min/median of each, the per-round ratio cold/floor (min/median), and then where a cold run's time
goes (unless ``--no-profile``): ``-X importtime`` of the envspec process, a cProfile of it, the
number and duration of the shim processes conda-lock starts (through a logging wrapper given as
``--solver``: the shim itself is unchanged), how many of conda-lock's solves the solver process
had done before conda-lock asked (``lock -v``), the CPU of the envspec process and of all it
started, conda-lock's import cost (all of it, and the runner's) and the solver process's and the
shim's startup cost.
The lockfiles are checked to pin exactly the packages the floor picks. Asserts no goal.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGETS_JSON = REPO / "tests" / "data" / "conda-forge" / "targets.json"


def _load_torch_only() -> ModuleType:
    """tests/data/conda-forge/torch_only.py, by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("envspec_torch_only", TARGETS_JSON.with_name("torch_only.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch_only = _load_torch_only()
DEFAULT_TARBALL = REPO.parent / "shared" / "data" / "conda-forge-records.tar.gz"
GOAL_COLD = 3.0  # cold lock <= 3x the floor (issue #18: conda-lock once, one solver process per run)
GOAL_NOOP = 0.1  # nothing-changed run <= 0.1 s

# One process: import py-rattler, solve every target in turn. argv: channel URL, cases JSON, cache dir.
FLOOR = r"""
import asyncio, json, os, sys, time
t0 = time.perf_counter()
from rattler import BuildString, Channel, Gateway, GenericVirtualPackage, MatchSpec, PackageName, Version, solve
t1 = time.perf_counter()
channel, cases, cache = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
gateway = Gateway(cache_dir=cache)
out = {"import": t1 - t0, "solves": {}, "picks": {}}
for name, case in cases.items():
    s0 = time.perf_counter()
    virtual = []
    for vname, value in case["virtual_packages"].items():
        version, _, build = value.partition(" ")
        virtual.append(GenericVirtualPackage(PackageName(vname), Version(version), BuildString(build or "0")))
    records = asyncio.run(solve([Channel(channel)], [MatchSpec(s) for s in case["specs"]], gateway=gateway,
                                platforms=[case["subdir"], "noarch"], virtual_packages=virtual,
                                channel_relations="disabled"))
    out["solves"][name] = time.perf_counter() - s0
    out["picks"][name] = sorted(r.file_name for r in records)
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""

# One process: every import first, then time load() and lock() of a project whose lockfiles are current.
NOOP_IN_PROCESS = r"""
import json, os, sys, time
from pathlib import Path
t0 = time.perf_counter()
from envspec.channels import parse_mirrors
from envspec.cli.common import Context, load
from envspec.lock.run import LockOptions, lock
from envspec.settings import Settings
t1 = time.perf_counter()
project, spec = load(Context(Settings(spec=Path(sys.argv[1]))))
targets = list(spec.resolve_all())
t2 = time.perf_counter()
report = lock(project, targets, LockOptions(mirrors=parse_mirrors([sys.argv[2]], None)), progress=lambda _m: None)
t3 = time.perf_counter()
assert all(o.status == "up to date" for o in report.outcomes), report.table()
sys.stdout.write(json.dumps({"import": t1 - t0, "load": t2 - t1, "lock": t3 - t2}))
sys.stdout.flush()
os._exit(0)
"""

# One envspec process: its own CPU at the end, and that of every process it started and reaped.
CPU_SPLIT = r"""
import json, os, resource, sys, time
from envspec.cli.main import main
code = main(sys.argv[1:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write("\n" + json.dumps({"self": time.process_time(), "children": ru.ru_utime + ru.ru_stime}) + "\n")
sys.stdout.flush()
os._exit(code)
"""

# conda-lock's --conda: logs when each shim process starts and ends, then runs the real shim.
WRAPPER = """#!/bin/sh
start=$(date +%s%N)
'{shim}' "$@"
rc=$?
echo "$start $(date +%s%N) $1" >> '{log}'
exit $rc
"""


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------


def unpack(tarball: Path, cache: Path) -> tuple[Path, int]:
    """The snapshot as a local channel (unpacked once; again only when the tarball changes)."""
    root = cache / "conda-forge-records"
    marker = cache / ".unpacked-from"
    stat = tarball.stat()
    stamp = f"{tarball.resolve()} {stat.st_size} {stat.st_mtime_ns}"
    if not (marker.is_file() and marker.read_text() == stamp and (root / "noarch" / "repodata.json").is_file()):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        print(f"unpacking {tarball} into {cache} (once) ...", file=sys.stderr, flush=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(cache, filter="data")
        marker.write_text(stamp)
    total = 0
    for repodata in root.glob("*/repodata.json"):
        data = json.loads(repodata.read_text(encoding="utf-8"))
        total += len(data.get("packages", {})) + len(data.get("packages.conda", {}))
    return root, total


def timed(argv: list[str], *, check: bool = True, env: dict[str, str] | None = None) -> tuple[float, float, str, str]:
    """(wall s, CPU s of the process tree, stdout, stderr) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env or ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout, proc.stderr


# As on a user's machine, envspec's bytecode is cached (written by the warm-up run): with
# PYTHONDONTWRITEBYTECODE set (some CI images set it) every process would compile envspec again.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
PY = sys.executable


def envspec(project: Path, *args: str, python_flags: tuple[str, ...] = ()) -> tuple[float, float, str, str]:
    return timed([PY, *python_flags, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args])


def lock_picks(project: Path, targets: list[str]) -> dict[str, list[str]]:
    picks = {}
    for t in targets:
        text = (project / "lockfiles" / f"{t}.lock").read_text(encoding="utf-8")
        urls = [line.split("#", 1)[0].strip() for line in text.splitlines() if line.startswith(("file:", "http"))]
        picks[t] = sorted(u.rsplit("/", 1)[-1] for u in urls)
    return picks


# ---------------------------------------------------------------------------------------------
# Profile of one cold run
# ---------------------------------------------------------------------------------------------


def import_tree(stderr: str, top: int = 8) -> list[tuple[str, float]]:
    """Top-level imports of a `-X importtime` run: (module, cumulative ms), largest first."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if m and len(m.group(2)) <= 1:
            rows.append((m.group(3), int(m.group(1)) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


def min_wall(argv: list[str], n: int = 5) -> tuple[float, float]:
    runs = [timed(argv)[:2] for _ in range(n)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def profile(base: Path, tmp: Path, mirror: str, lines: list[str]) -> None:
    lines.append("\nwhere a cold run's time goes (one run each; importtime and cProfile inflate what they measure)")
    # 1. imports of the envspec process (cold run, fresh project)
    project = fresh(base, tmp, "prof-import")
    wall, _, _, err = envspec(project, "lock", "--mirror", mirror, python_flags=("-X", "importtime"))
    total = sum(ms for _, ms in import_tree(err, top=10_000))
    lines.append(
        f"  envspec process, -X importtime: {total:.0f} ms of imports in a {wall:.2f} s cold run (with those of the "
        "runner and the solver process where they are forked from it: conda_lock, rattler); largest:"
    )
    lines.extend(f"    {ms:7.1f} ms  {name}" for name, ms in import_tree(err))
    # 2. cProfile of the envspec process (the parent; conda-lock runs in its children)
    project = fresh(base, tmp, "prof-cprofile")
    driver = (
        "import cProfile, io, pstats, sys\n"
        "from envspec.cli.main import main\n"
        "prof = cProfile.Profile(); prof.enable()\n"
        "code = main(sys.argv[1:])\n"
        "prof.disable(); out = io.StringIO()\n"
        "pstats.Stats(prof, stream=out).sort_stats('cumulative').print_stats(14)\n"
        "print(out.getvalue()); sys.stdout.flush(); import os; os._exit(code)\n"
    )
    _, _, out, _ = timed([PY, "-c", driver, "--spec", str(project / "envspec.yml"), "lock", "--mirror", mirror])
    lines.append("  cProfile of the envspec process (cumulative s; run_conda_lock = waiting for conda-lock):")
    keep = re.compile(r"main\.py.*\(main\)|\(lock\)|\(lock_jobs\)|\(run_conda_lock\)|\(prepare\)|\(finish\)|\(load\)")
    for row in out.splitlines():
        if keep.search(row):
            cols = row.split()
            lines.append(f"    {float(cols[3]):6.3f} s  {cols[-1]}")
    # 3. the shim processes conda-lock starts when the solver is given as a path (a logging wrapper
    # around the real shim, via --solver): one per solve. The built-in solver starts none of them:
    # one py-rattler process serves the whole run (envspec.lock.conda_lock_runner).
    sys.path.insert(0, str(REPO))
    from envspec.lock.conda_shim import SHIM_NAME, shim_executable

    shim = shim_executable(tmp / "real-shim")
    log = tmp / "shim-calls.log"
    wrapper = tmp / "wrapper" / SHIM_NAME  # the same name: conda-lock sees the same kind of executable
    wrapper.parent.mkdir()
    wrapper.write_text(WRAPPER.format(shim=shim, log=log))
    wrapper.chmod(0o755)
    project = fresh(base, tmp, "prof-shim")
    wall, _, _, err = envspec(project, "lock", "--mirror", mirror, "--solver", str(wrapper))
    calls = [line.split() for line in log.read_text().splitlines()]
    durations = [(int(end) - int(start)) / 1e9 for start, end, *_ in calls]
    by_action: dict[str, int] = {}
    for *_, action in calls:
        by_action[action] = by_action.get(action, 0) + 1
    per_target = re.findall(r"^  (\S+): solved, .*, ([\d.]+) s$", err, re.MULTILINE)
    lines.append(
        f"  with --solver PATH (the built-in solver: 1 process per run): shim processes in one cold run: {len(calls)} "
        f"({', '.join(f'{n} {a}' for a, n in sorted(by_action.items()))}), "
        f"{sum(durations):.2f} s in all, {statistics.median(durations):.3f} s median each (run {wall:.2f} s)"
    )
    workers = min(len(per_target), os.cpu_count() or 1)
    lines.append(
        f"  conda-lock per target (runner start -> done, {workers} at a time): "
        + ", ".join(f"{t} {s} s" for t, s in per_target)
    )
    # 4. the built-in solver: how many of conda-lock's solves the solver process had done before it asked
    project = fresh(base, tmp, "prof-verbose")
    _, _, _, err = envspec(project, "lock", "-v", "--mirror", mirror)
    said = re.search(r"^solver process: .*$", err, re.MULTILINE)
    lines.append(f"  built-in solver, lock -v: {said.group(0) if said else '(no solver process line)'}")
    # 5. whose CPU: the envspec process itself, and all it started (runner, forked conda-locks, solver process)
    project = fresh(base, tmp, "prof-cpu")
    _, _, out, _ = timed([PY, "-c", CPU_SPLIT, "--spec", str(project / "envspec.yml"), "lock", "--mirror", mirror])
    split = json.loads(out.strip().splitlines()[-1])
    lines.append(
        f"  CPU of one cold run: envspec process {split['self']:.3f} s, its children {split['children']:.3f} s "
        "(the runner, the forked conda-locks, the solver process)"
    )
    # 6. fixed costs, each the min of 5 processes
    bare, bare_cpu = min_wall([PY, "-c", "pass"])
    cl, cl_cpu = min_wall([PY, "-c", "from conda_lock import main"])
    rn, rn_cpu = min_wall([PY, "-c", "from envspec.lock.conda_lock_runner import warm_up; warm_up()"])
    es, es_cpu = min_wall([PY, "-c", "import envspec.cli.main, envspec.cli.lock"])
    sv, sv_cpu = min_wall([PY, "-m", "envspec.lock.conda_shim", "--version"])
    sr, sr_cpu = min_wall([PY, "-c", "import envspec.lock.solver_service, rattler"])
    rt, rt_cpu = min_wall([PY, "-c", "import rattler"])
    lines.append("  fixed costs (min of 5 processes, wall / CPU s):")
    lines.append(f"    {bare:.3f} / {bare_cpu:.3f}  python -c pass (interpreter start)")
    lines.append(f"    {es:.3f} / {es_cpu:.3f}  import envspec.cli.main + envspec.cli.lock (the envspec process)")
    lines.append(f"    {cl:.3f} / {cl_cpu:.3f}  from conda_lock import main (all of conda-lock's start-up imports)")
    lines.append(f"    {rn:.3f} / {rn_cpu:.3f}  the runner's conda-lock import (rarely used modules deferred), once")
    lines.append(f"    {sr:.3f} / {sr_cpu:.3f}  the solver process's imports (solver_service, rattler), once")
    lines.append(f"    {sv:.3f} / {sv_cpu:.3f}  python -m envspec.lock.conda_shim --version (a shim process, no solve)")
    lines.append(f"    {rt:.3f} / {rt_cpu:.3f}  import rattler")


def fresh(base: Path, tmp: Path, name: str) -> Path:
    project = tmp / name
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(base, project, ignore=shutil.ignore_patterns(".envspec-cache"))
    return project


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def stats(values: list[float]) -> str:
    return f"{min(values):7.3f}  {statistics.median(values):7.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", nargs="?", type=Path, default=DEFAULT_TARBALL)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (>= 5 for the issue's figures)")
    parser.add_argument("--cache", type=Path, default=REPO / ".envspec-cache" / "bench-real")
    parser.add_argument("--no-profile", action="store_true", help="skip the breakdown of a cold run")
    args = parser.parse_args(argv)
    if not args.tarball.is_file():
        print(f"bench_lock_real: {args.tarball} does not exist; skipped", file=sys.stderr)
        return 0

    channel, records = unpack(args.tarball, args.cache)
    mirror = f"conda-forge={channel.resolve().as_uri()}"
    cases = json.loads(TARGETS_JSON.read_text(encoding="utf-8"))["targets"]
    floor_cases = json.dumps({n: {**c, "specs": [*torch_only.COMMON, *c["specs"]]} for n, c in cases.items()})
    with tempfile.TemporaryDirectory(prefix="envspec-bench-real-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        base.mkdir()
        (base / "envspec.yml").write_text(torch_only.spec_text(cases), encoding="utf-8")
        envspec(base, "render")

        def floor() -> tuple[float, float, dict[str, Any]]:
            cache = tempfile.mkdtemp(prefix="rattler-", dir=tmp)  # a cold py-rattler cache each time
            wall, cpu, out, _ = timed([PY, "-c", FLOOR, channel.resolve().as_uri(), floor_cases, cache])
            return wall, cpu, json.loads(out)

        # warm-up (bytecode caches, the OS file cache), untimed; the lock must pin what the floor picks
        warm = fresh(base, tmp, "warm")
        envspec(warm, "lock", "--mirror", mirror)
        _, _, floor_out = floor()
        same = lock_picks(warm, list(cases)) == floor_out["picks"]
        differ = [t for t in cases if lock_picks(warm, [t])[t] != floor_out["picks"][t]]

        fig: dict[str, list[float]] = {k: [] for k in ("cold", "cold_cpu", "floor", "floor_cpu", "noop", "noop_cpu")}
        fig.update({k: [] for k in ("ratio", "cpu_ratio", "in_lock", "in_load", "in_import", "solve", "floor_import")})
        for i in range(args.rounds):
            project = fresh(base, tmp, f"round{i}")
            order = ("cold", "floor") if i % 2 == 0 else ("floor", "cold")
            for what in order:
                if what == "cold":
                    wall, cpu, _, _ = envspec(project, "lock", "--mirror", mirror)
                    fig["cold"].append(wall)
                    fig["cold_cpu"].append(cpu)
                else:
                    wall, cpu, out = floor()
                    fig["floor"].append(wall)
                    fig["floor_cpu"].append(cpu)
                    fig["solve"].append(sum(out["solves"].values()))
                    fig["floor_import"].append(out["import"])
            fig["ratio"].append(fig["cold"][-1] / fig["floor"][-1])
            fig["cpu_ratio"].append(fig["cold_cpu"][-1] / fig["floor_cpu"][-1])
            wall, cpu, _, _ = envspec(project, "lock", "--mirror", mirror)
            fig["noop"].append(wall)
            fig["noop_cpu"].append(cpu)
            _, _, out, _ = timed([PY, "-c", NOOP_IN_PROCESS, str(project / "envspec.yml"), mirror])
            inproc = json.loads(out)
            fig["in_lock"].append(inproc["lock"])
            fig["in_load"].append(inproc["load"])
            fig["in_import"].append(inproc["import"])
            print(
                f"round {i + 1}/{args.rounds}: cold {fig['cold'][-1]:.2f} s, floor {fig['floor'][-1]:.2f} s, "
                f"no-op {fig['noop'][-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )

        load = os.getloadavg()[0]
        med = statistics.median
        n_targets = len(json.loads(TARGETS_JSON.read_text(encoding="utf-8"))["targets"])
        lines = [
            (
                f"envspec lock on real conda-forge records: {records} records ({args.tarball.name}), "
                f"{n_targets} torch-only targets, {args.rounds} alternating rounds, {os.cpu_count()} CPUs, "
                f"load average {load:.1f}, "
                f"Python {sys.version.split()[0]}"
            ),
            f"lockfiles pin exactly what the floor picks: {'yes' if same else 'NO, differs for ' + ', '.join(differ)}",
            "",
            "what (seconds, wall unless noted)                          min   median",
            f"cold {n_targets}-target envspec lock (whole process)             {stats(fig['cold'])}",
            f"  CPU, all its processes                               {stats(fig['cold_cpu'])}",
            f"floor: py-rattler, {n_targets} solves in one process             {stats(fig['floor'])}",
            f"  CPU                                                  {stats(fig['floor_cpu'])}",
            f"  of which import rattler                              {stats(fig['floor_import'])}",
            f"  of which the {n_targets} solves                                {stats(fig['solve'])}",
            f"ratio cold / floor (per round)                         {stats(fig['ratio'])}   goal <= {GOAL_COLD:g}",
            f"  the same in CPU s (what a loaded machine shows)      {stats(fig['cpu_ratio'])}",
            f"no-op envspec lock (whole process)                     {stats(fig['noop'])}   goal <= {GOAL_NOOP:g}",
            f"  CPU                                                  {stats(fig['noop_cpu'])}",
            f"  in-process lock(...) after imports                   {stats(fig['in_lock'])}   goal <= {GOAL_NOOP:g}",
            f"  in-process load of envspec.yml (before lock)         {stats(fig['in_load'])}",
            f"  in-process imports (envspec.cli.common, lock.run)    {stats(fig['in_import'])}",
            (
                f"ratio of medians: cold/floor {med(fig['cold']) / med(fig['floor']):.2f}, "
                f"no-op/floor {med(fig['noop']) / med(fig['floor']):.2f}"
            ),
        ]
        if not args.no_profile:
            profile(base, tmp, mirror, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
