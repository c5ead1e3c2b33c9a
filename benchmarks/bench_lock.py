"""Benchmark of `envspec lock` on a realistic-size local channel (run by `nox -s bench`).

Generates (once, cached) a conda-forge-shaped channel of >= 20,000 real `.conda` package records
across linux-64, osx-64, osx-arm64, win-64 and noarch with the test channel factory (the stack,
older releases of every stack name, and filler names with many versions and builds), renders the
repository's envspec.yml into a scratch project and times the real CLI, as a user runs it:

* 4-target lock, cold (no lockfiles)
* 4-target no-op run (nothing changed)
* one-target re-lock (one target's virtual packages changed)
* peak memory (largest resident set of any process of the runs: envspec, conda-lock, the shim)

Goals on the 2-core dev machine: cold <= 3 s, no-op <= 0.5 s. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FACTORY = REPO / "tests" / "channel_factory.py"


def build_channel(root: Path, records: int) -> int:
    marker = root / ".bench-records"
    if not (marker.is_file() and marker.read_text() == str(records)):
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating a {records}-record channel in {root} (once) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(FACTORY), str(root), "--filler", str(records)], check=True)
        marker.write_text(str(records))
    total = 0
    for repodata in root.glob("*/repodata.json"):
        data = json.loads(repodata.read_text())
        total += len(data.get("packages", {})) + len(data.get("packages.conda", {}))
    return total


CPU: list[float] = []  # user+sys seconds of each run, all processes (immune to other load)


def envspec(project: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"envspec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--channel", type=Path, default=REPO / ".envspec-cache" / "bench-channel")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown")
    args = parser.parse_args(argv)

    total = build_channel(args.channel, args.records)
    mirror = f"conda-forge={args.channel.resolve().as_uri()}"
    with tempfile.TemporaryDirectory(prefix="envspec-bench-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        shutil.copy2(REPO / "tests" / "data" / "synthetic" / "envspec.yml", base / "envspec.yml")
        envspec(base, "render")
        envspec(base, "targets")  # warm the interpreter's bytecode caches, as a user's second command is
        cold, noop, one = [], [], []
        cold_cpu, noop_cpu, one_cpu = [], [], []
        for i in range(args.repeat):
            project = Path(tmp) / f"run{i}"
            shutil.copytree(base, project)
            cold.append(envspec(project, "lock", "--mirror", mirror))
            cold_cpu.append(CPU[-1])
            noop.append(envspec(project, "lock", "--mirror", mirror))
            noop_cpu.append(CPU[-1])
            spec = project / "envspec.yml"
            spec.write_text(spec.read_text().replace('__glibc: "2.28"', '__glibc: "2.31"', 1))
            envspec(project, "render")
            one.append(envspec(project, "lock", "--mirror", mirror))
            one_cpu.append(CPU[-1])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

    def med(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    def runs(values: list[float], cpu: list[float]) -> str:
        return f"runs: {', '.join(f'{v:.2f}' for v in values)}; CPU (user+sys, all processes) {med(cpu):.2f} s"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [
        ("channel records", f"{total}", f"{len(list(args.channel.glob('*/*.conda')))} .conda files"),
        ("4-target lock, cold", f"{med(cold):.2f} s", "goal <= 3 s; " + runs(cold, cold_cpu)),
        ("4-target no-op", f"{med(noop):.2f} s", "goal <= 0.5 s; " + runs(noop, noop_cpu)),
        ("one-target re-lock", f"{med(one):.2f} s", runs(one, one_cpu)),
        ("peak memory", f"{peak_kib / 1024:.0f} MiB", "largest RSS of any single process (envspec/conda-lock/shim)"),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"envspec lock benchmark ({os.cpu_count()} CPUs, load average {load:.1f}, Python {sys.version.split()[0]})")
    for name, value, note in rows:
        print(f"  {name.ljust(width)}  {value.rjust(vwidth)}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
