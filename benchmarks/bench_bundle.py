"""Carrying an environment: ``envspec pack`` and ``envspec install --from`` vs. a ``file://`` mirror.

    python benchmarks/bench_bundle.py [--mib 400] [--packages 4] [--repeat 2]

Builds a local channel of real ``.conda`` packages holding ``--mib`` MiB in total (random text,
so the archives stay large), writes an explicit lockfile for them, then times, each in a child
process with a cold package cache:

* the floor: ``envspec install --mirror conda-forge=file://CHANNEL`` (copy + hash + link);
* ``envspec pack`` of the same lockfile from that mirror;
* ``envspec install --from BUNDLE`` (stream the bundle, check every member, then the same install).

Prints a table with each child's peak memory (streamed: it must not grow with the bundle). Goal:
``install --from`` <= 1.5x the floor, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/ is a plain folder, not a package

from channel_factory import Pkg, conda_archive, index_channel  # noqa: E402

GOAL = 1.5
CF = "https://conda.anaconda.org/conda-forge"


def build(root: Path, mib: int, packages: int) -> tuple[Path, int]:
    """The channel (noarch packages of ``mib`` MiB in all) and a project whose lockfile names them."""
    channel = root / "channel"
    (channel / "noarch").mkdir(parents=True)
    lines = ["# platform: linux-64", "@EXPLICIT"]
    total = 0
    for i in range(packages):
        text = os.urandom((mib << 20) // packages // 2).hex()
        pkg = Pkg(f"payload{i}", "1.0", "h0_0", 0, "noarch", noarch="generic", files=((f"share/p{i}.txt", text),))
        data = conda_archive(pkg)
        (channel / "noarch" / pkg.filename).write_bytes(data)
        total += len(data)
        lines.append(f"{CF}/noarch/{pkg.filename}#{hashlib.md5(data, usedforsecurity=False).hexdigest()}")
    index_channel(channel)
    project = root / "proj"
    (project / "lockfiles").mkdir(parents=True)
    synthetic = REPO / "tests" / "data" / "synthetic" / "envspec.yml"  # the synthetic channel's spec
    shutil.copy2(synthetic, project / "envspec.yml")
    (project / "lockfiles" / "linux-cuda.lock").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return project, total


def timed(project: Path, *args: str) -> tuple[float, int]:
    """Seconds and peak memory (KiB, this child's own: ``os.wait4``) of ``envspec ARGS``."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - t0
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            raise SystemExit(f"envspec {' '.join(args)} failed ({child.returncode}): {err.read().decode()}")
    return seconds, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=400)
    parser.add_argument("--packages", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--build-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into is not None:  # in a child: the parent's memory (and its children's peaks) stay small
        _, total = build(args.build_into, args.mib, args.packages)
        print(total, flush=True)
        os._exit(0)  # py-rattler (the index) may crash at interpreter exit
    if sys.platform != "linux":
        print("bench_bundle: the lockfile is linux-64; skipped on this platform")
        return 0
    with tempfile.TemporaryDirectory(prefix="envspec-bench-bundle-") as tmp:
        root = Path(tmp)
        built = subprocess.run(
            [sys.executable, __file__, "--build-into", str(root), "--mib", str(args.mib), "--packages",
             str(args.packages)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        project, total = root / "proj", int(built.stdout.split()[-1])
        mirror = f"conda-forge={(root / 'channel').as_uri()}"
        rows: dict[str, list[tuple[float, int]]] = {"floor": [], "pack": [], "from": []}
        for n in range(args.repeat):
            bundle = root / f"b{n}.tar"
            rows["floor"].append(timed(project, "install", "linux-cuda", "--frozen", "--mirror", mirror,
                                       "-p", str(root / f"e{n}"), "--cache-dir", str(root / f"c{n}")))  # fmt: skip
            rows["pack"].append(timed(project, "pack", "linux-cuda", "-o", str(bundle), "--mirror", mirror))
            rows["from"].append(timed(project, "install", "linux-cuda", "--from", str(bundle),
                                      "-p", str(root / f"f{n}"), "--cache-dir", str(root / f"d{n}")))  # fmt: skip
            size = bundle.stat().st_size
            for path in (root / f"e{n}", root / f"f{n}", root / f"c{n}", root / f"d{n}", bundle):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    floor = statistics.median(s for s, _ in rows["floor"])
    print(f"bundle: {size / 2**20:.1f} MiB ({args.packages} packages, {total / 2**20:.1f} MiB of archives)")
    print(f"{'step':<40} {'median s':>9} {'x floor':>8} {'peak RSS':>10}")
    for key, label in (("floor", "install --mirror file:// (floor)"), ("pack", "pack"), ("from", "install --from")):
        median = statistics.median(s for s, _ in rows[key])
        peak = max(m for _, m in rows[key]) / 1024
        print(f"{label:<40} {median:>9.2f} {median / floor:>8.2f} {peak:>8.0f} MiB")
    ratio = statistics.median(s for s, _ in rows["from"]) / floor
    print(f"goal: install --from <= {GOAL}x the floor: {'met' if ratio <= GOAL else 'NOT met'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
