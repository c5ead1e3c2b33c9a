"""CLI latency: the commands people type most, against the cost of starting Python and importing yaml.

    python benchmarks/bench_cli.py [--runs 9] [--project DIR]

Each command runs as its own process ``--runs`` times (after one warm-up run that also fills the
stamps a nothing-changed run reads), in rounds that interleave it with ``python -c "import yaml"``;
each median wall time is compared with that floor's median, measured in the same run. The goal
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


def seconds(cmd: Sequence[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def medians(commands: dict[str, list[str]], runs: int, cwd: Path) -> dict[str, float]:
    """Median wall time of each command over ``runs`` rounds, after one untimed warm-up round.

    Each round runs every command once, in turn, so a change in the machine's load during the
    benchmark reaches the floor and the commands alike (the ratios stay comparable)."""
    for cmd in commands.values():
        seconds(cmd, cwd)
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, cmd in commands.items():
            times[label].append(seconds(cmd, cwd))
    return {label: statistics.median(values) for label, values in times.items()}


def locked_project(dest: Path, mirror: str) -> Path:
    """The synthetic channel's envspec.yml in ``dest``, rendered and locked once."""
    if not (CHANNEL / "noarch" / "repodata.json").is_file():
        print(f"generating a small channel in {CHANNEL} (once) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(FACTORY), str(CHANNEL)], check=True)
    synthetic = REPO / "tests" / "data" / "synthetic" / "envspec.yml"  # templates: envspec's own
    shutil.copy2(synthetic, dest / "envspec.yml")
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
    floor_cmd = {"python -c 'import yaml'": [sys.executable, "-c", "import yaml"]}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        project = locked_project(Path(tmp), mirror)
        result = medians({**floor_cmd, **commands, **reference}, args.runs, project)
    floor = result.pop(next(iter(floor_cmd)))
    print(f"floor: python -c 'import yaml'  {floor * 1000:7.1f} ms (median of {args.runs}, interleaved)")
    print(f"{'command':<26} {'median ms':>10} {'x floor':>8}  goal <= {GOAL:g}x")
    worst = 0.0
    for label, value in result.items():
        ratio = value / floor
        counted = label in commands
        if counted:
            worst = max(worst, ratio)
        mark = ("ok" if ratio <= GOAL else "SLOW") if counted else "(reference)"
        print(f"{label:<26} {value * 1000:10.1f} {ratio:8.2f}  {mark}")
    print(f"worst ratio {worst:.2f} (goal <= {GOAL:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
