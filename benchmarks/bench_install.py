"""Install speed: a realistic-size lockfile from a WARM package cache vs. the hardlink floor.

    python benchmarks/bench_install.py [--packages 150] [--files 40000] [--repeat 3]

Builds a local channel of real ``.conda`` packages whose file counts follow a Stable Diffusion
environment on conda-forge (a few packages with thousands of files — pytorch, python, numpy,
transformers — and a long tail of small ones, a third of them noarch Python), writes an explicit
lockfile for it, installs it once to fill the cache (cold), then times:

* ``envspec install`` from the warm cache (the library call, and the whole CLI process);
* the floor: ``os.link`` of every file of every extracted package into a fresh folder (what any
  installer must at least do), and ``cp -al`` of the same folders for reference.

Prints a table; the goal is warm install <= 1.5x the os.link floor. Each install runs in a child
process (py-rattler may crash at interpreter exit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/ is a plain folder, not a package

from channel_factory import Pkg, conda_archive  # noqa: E402

GOAL = 1.5
# File counts of the biggest packages of a linux-cuda SD environment (rounded, conda-forge 2025).
BIG = {
    "pytorch": 0.30,
    "python": 0.12,
    "transformers": 0.07,
    "numpy": 0.03,
    "sympy": 0.03,
    "diffusers": 0.025,
    "libcublas": 0.001,
    "pillow": 0.01,
    "networkx": 0.015,
    "jinja2": 0.002,
}


def package_set(n_packages: int, n_files: int) -> list[Pkg]:
    """``n_packages`` packages with ``n_files`` files in all, shaped like a real SD environment."""
    shares = dict(BIG)
    tail = n_packages - len(shares)
    rest = max(0.0, 1.0 - sum(shares.values()))
    for i in range(tail):
        shares[f"dep-{i:03d}"] = rest / tail
    pkgs = []
    for i, (name, share) in enumerate(shares.items()):
        count = max(1, round(n_files * share))
        noarch = name != "python" and i % 3 == 1
        root = f"site-packages/{name.replace('-', '_')}" if noarch else f"lib/{name}"
        files = tuple(
            (f"{root}/sub{j // 200:03d}/f{j:05d}.py", f"# {name} file {j}\n" + "x = 1\n" * (j % 40))
            for j in range(count)
        )
        subdir = "noarch" if noarch else "linux-64"
        version = "3.12.11" if name == "python" else "1.0.0"
        build = "pyhd8ed1ab_0" if noarch else "h0000000_0"
        depends = ("python >=3.10",) if noarch else ()
        pkgs.append(Pkg(name, version, build, 0, subdir, depends, noarch="python" if noarch else None, files=files))
    return pkgs


def write_channel(root: Path, pkgs: list[Pkg]) -> Path:
    lines = ["# platform: linux-64", "@EXPLICIT"]
    for pkg in pkgs:
        (root / pkg.subdir).mkdir(parents=True, exist_ok=True)
        data = conda_archive(pkg)
        path = root / pkg.subdir / pkg.filename
        path.write_bytes(data)
        lines.append(f"{path.as_uri()}#{hashlib.md5(data).hexdigest()}")
    lock = root / "bench.lock"
    lock.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lock


CHILD = r"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from envspec.install.execute import install_rattler
from types import SimpleNamespace
from envspec.install.plan import Destination, LockInput, parse_lock, plan_install
lock_path, prefix, cache = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
text = lock_path.read_text()
subdir = parse_lock(text, str(lock_path)).platform
plan = plan_install(SimpleNamespace(name="bench", subdir=subdir, variables={"ENVSPEC_TARGET": "bench"}),
                    LockInput(text, str(lock_path)), host=subdir,
                    destination=Destination(prefix), mirrors={})
t, c = time.perf_counter(), time.process_time()
report = install_rattler(plan, cache=cache, progress=lambda m: None)
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"wall": wall, "cpu": cpu, "hits": report.cache_hits, **report.seconds}))
sys.stdout.flush()
os._exit(0)
"""


def install_child(lock: Path, prefix: Path, cache: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(lock), str(prefix), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def install_cli(lock: Path, prefix: Path, cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ENVSPEC_HOST_SUBDIR": "linux-64"}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(REPO / "envspec.yml"), "install", "linux-cuda",
         "--lockfile", str(lock), "--prefix", str(prefix), "--cache-dir", str(cache)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - t


def link_floor(extracted: list[Path], dest: Path) -> tuple[float, float, int]:
    """os.link every payload file of every extracted package (not info/) into ``dest``.

    Plain ``os`` string calls on purpose: pathlib objects would slow the floor down and flatter
    the installer.
    """
    t, c = time.perf_counter(), time.process_time()
    count = 0
    made: set[str] = set()
    for pkg in extracted:
        for dirpath, dirnames, filenames in os.walk(pkg):
            rel = os.path.relpath(dirpath, pkg)
            if rel == "info" or rel.startswith("info" + os.sep):
                dirnames.clear()
                continue
            target = os.path.join(dest, rel)  # noqa: PTH118
            if target not in made:
                os.makedirs(target, exist_ok=True)  # noqa: PTH103
                made.add(target)
            for name in filenames:
                os.link(os.path.join(dirpath, name), os.path.join(target, name))  # noqa: PTH118
                count += 1
    return time.perf_counter() - t, time.process_time() - c, count


def cp_floor(extracted: list[Path], dest: Path) -> float:
    dest.mkdir()
    t = time.perf_counter()
    for pkg in extracted:
        sources = [str(p) for p in pkg.iterdir() if p.name != "info"]
        subprocess.run(["cp", "-al", *sources, str(dest)], check=True)
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=150)
    parser.add_argument("--files", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="envspec-bench-install-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        pkgs = package_set(args.packages, args.files)
        lock = write_channel(root / "channel", pkgs)
        n_files = sum(len(p.files) for p in pkgs)
        built = time.perf_counter() - t
        print(f"channel: {len(pkgs)} packages, {n_files} files, built in {built:.1f} s", file=sys.stderr)
        cache = root / "pkgs"
        cold = install_child(lock, root / "cold", cache)
        extracted = sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("."))
        warm: list[dict[str, float]] = []
        cli: list[float] = []
        floor: list[float] = []
        floor_cpu: list[float] = []
        cp: list[float] = []
        linked = 0
        for i in range(args.repeat):  # interleaved, so each pair sees the same machine load
            w = install_child(lock, root / f"warm{i}", cache)
            assert w["hits"] == len(pkgs), w
            warm.append(w)
            seconds, cpu, linked = link_floor(extracted, root / f"floor{i}")
            floor.append(seconds)
            floor_cpu.append(cpu)
            cli.append(install_cli(lock, root / f"cli{i}", cache))
            cp.append(cp_floor(extracted, root / f"cp{i}"))
        med = statistics.median
        ws = [w["wall"] for w in warm]
        rows = [
            ("cold install (download + extract + link)", [cold["wall"]]),
            ("  of which fetch/verify (copy + md5/sha256)", [cold["fetch"]]),
            ("  of which extract + link (py-rattler)", [cold["link"]]),
            ("warm install: envspec library call", ws),
            ("  of which fetch/verify (cache lookups)", [w["fetch"] for w in warm]),
            ("  of which link (py-rattler)", [w["link"] for w in warm]),
            ("  of which swap into place", [w["swap"] for w in warm]),
            ("warm install: whole `envspec install` process", cli),
            (f"floor: os.link of {linked} files (Python)", floor),
            ("floor: cp -al of the same folders", cp),
            ("CPU time: warm install (all threads)", [w["cpu"] for w in warm]),
            ("CPU time: os.link floor", floor_cpu),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{len(pkgs)} packages, {n_files} files, {args.repeat} interleaved runs (wall seconds unless noted)")
        print(f"{'step'.ljust(width)}  median     min  x floor")
        print(f"{'-' * width}  ------  ------  -------")
        for label, values in rows:
            ref = med(floor_cpu) if label.startswith("CPU") else med(floor)
            print(f"{label.ljust(width)}  {med(values):6.3f}  {min(values):6.3f}  {med(values) / ref:7.2f}")
        wall_ratio = med(w / f for w, f in zip(ws, floor, strict=True))
        cpu_ratio = med(w["cpu"] / f for w, f in zip(warm, floor_cpu, strict=True))
        print()
        for name, ratio in (("wall", wall_ratio), ("CPU", cpu_ratio)):
            verdict = "OK" if ratio <= GOAL else "MISSED"
            label = f"warm install / os.link floor, median of paired {name} ratios"
            print(f"{label} = {ratio:.2f}x (goal <= {GOAL}x): {verdict}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
