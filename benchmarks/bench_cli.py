"""CLI latency: the commands people type most, against the cost of starting Python and importing yaml.

    python benchmarks/bench_cli.py [--runs 9] [--project DIR]

Each command runs as its own process ``--runs`` times (after one warm-up run that also fills the
stamps a nothing-changed run reads); the median wall time is compared with the median of
``python -c "import yaml"`` measured in the same run, on the same machine, just before. The goal
(issue #20) is every ratio <= 2.0:

* ``envspec --help``
* ``envspec targets``
* ``envspec render --check`` on an unchanged spec
* ``envspec lock`` with nothing changed since the last lock
* ``envspec doctor`` is printed for reference (it asks the machine: nvidia-smi, conda...).

The project is this repository's envspec.yml and templates, rendered in a temporary folder and
locked once against a small local channel made by ``tests/channel_factory.py`` (cached in
``.envspec-cache/bench-cli-channel``), so ``lock`` has current lockfiles to find.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL = 2.0
FACTORY = REPO / "tests" / "channel_factory.py"
CHANNEL = REPO / ".envspec-cache" / "bench-cli-channel"


def median_seconds(cmd: Sequence[str], runs: int, cwd: Path) -> float:
    """Median wall time of ``runs`` runs of ``cmd`` (after one untimed warm-up run)."""
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def locked_project(dest: Path, mirror: str) -> Path:
    """envspec.yml and templates/ of this repository in ``dest``, rendered and locked once."""
    if not (CHANNEL / "noarch" / "repodata.json").is_file():
        print(f"generating a small channel in {CHANNEL} (once) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(FACTORY), str(CHANNEL)], check=True)
    shutil.copy2(REPO / "envspec.yml", dest / "envspec.yml")
    shutil.copytree(REPO / "templates", dest / "templates")
    for args in (["render"], ["lock", "--mirror", mirror]):
        proc = subprocess.run(
            [sys.executable, "-m", "envspec", *args], cwd=dest, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            sys.exit(f"envspec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    envspec = [sys.executable, "-m", "envspec"]
    mirror = f"conda-forge={CHANNEL.resolve().as_uri()}"
    commands = {
        "envspec --help": [*envspec, "--help"],
        "envspec targets": [*envspec, "targets"],
        "envspec render --check": [*envspec, "render", "--check"],
        "envspec lock (no change)": [*envspec, "lock", "--mirror", mirror],
    }
    reference = {"envspec doctor": [*envspec, "doctor"]}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        project = locked_project(Path(tmp), mirror)
        floor = median_seconds([sys.executable, "-c", "import yaml"], args.runs, project)
        print(f"floor: python -c 'import yaml'  {floor * 1000:7.1f} ms (median of {args.runs})")
        print(f"{'command':<26} {'median ms':>10} {'x floor':>8}  goal <= {GOAL:g}x")
        worst = 0.0
        for label, cmd in {**commands, **reference}.items():
            seconds = median_seconds(cmd, args.runs, project)
            ratio = seconds / floor
            counted = label in commands
            if counted:
                worst = max(worst, ratio)
            mark = ("ok" if ratio <= GOAL else "SLOW") if counted else "(reference)"
            print(f"{label:<26} {seconds * 1000:10.1f} {ratio:8.2f}  {mark}")
    print(f"worst ratio {worst:.2f} (goal <= {GOAL:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
