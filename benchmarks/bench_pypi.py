"""Benchmark of the PyPI part of `envspec lock` against `uv pip compile` of the same requirements (`nox -s bench`).

For each platform (linux-64 with __glibc 2.28, osx-arm64 with __osx 14.0, win-64), cold caches each time:

* floor: ``uv pip compile REQS --python-platform P --python-version V --generate-hashes --no-build``
  against the index, writing ``pylock.toml`` (what a uv user runs);
* envspec: the PyPI part of one target as ``envspec lock`` runs it (``envspec.lock.pypi.finish``:
  the stand-ins of a real conda solution, uv on top of it, the download and sha256 check of every
  pinned file, which uv does not do (its share is printed), the merge into conda-lock's own
  lockfile model, the explicit file and ``<t>.pip.txt``);

and prints the ratio (goal: <= 2x), then the time until a conflict with the conda solution is
reported (``torchvision>=0.24`` against conda's pytorch 2.7.1; goal: <= 15 s). By default the index
is the tests' local one (real PyPI metadata, tests/data/pypi, served on 127.0.0.1): offline, and
the requirements are those that index can resolve. ``--index https://pypi.org/simple`` measures
against the real registry with the issue's requirements (by hand: needs the network).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

PLATFORMS = {  # subdir: (virtual packages file text, uv --python-platform, MACOSX_DEPLOYMENT_TARGET)
    "linux-64": ("subdirs:\n  linux-64:\n    packages:\n      __glibc: '2.28'\n", "x86_64-manylinux_2_28", None),
    "osx-arm64": ("subdirs:\n  osx-arm64:\n    packages:\n      __osx: '14.0'\n", "aarch64-apple-darwin", "14.0"),
    "win-64": ("subdirs:\n  win-64:\n    packages: {}\n", "x86_64-pc-windows-msvc", None),
}
LOCAL_REQUIREMENTS = ("pynvml", "six", "pyparsing")  # what the tests' index resolves without conda
#: The issue's kind of requirements (packages that depend on torch beside the Hugging Face stack).
REAL_REQUIREMENTS = ("accelerate", "kornia", "torchmetrics", "torchvision", "pynvml", "einops", "omegaconf",
                     "compel", "lpips", "open-clip-torch")  # fmt: skip
CONFLICT = ("accelerate", "torchvision>=0.24")


@contextlib.contextmanager
def index_url(choice: str | None) -> Iterator[str]:
    if choice:
        yield choice
        return
    import pypi_index

    with (
        tempfile.TemporaryDirectory(prefix="envspec-bench-index-") as tmp,
        pypi_index.serve(Path(tmp), pypi_index.recorded()) as served,
    ):
        yield served.url


#: The tests' conda solution has an old transformers (4.20.1: the compel conflict); against the real
#: registry the benchmark resolves the issue's requirements on a current one.
TRANSFORMERS = {"local": "4.20.1", "real": "4.46.3"}
MODE = "local"


def conda_lock_text(subdir: str) -> str:
    """The tests' conda solution (real linux-64 records + the Hugging Face stack), for ``subdir``."""
    import pypi_index

    records = [(n, TRANSFORMERS[MODE] if n == "transformers" else v, b, p) for n, v, b, p in pypi_index.CONDA]
    text: str = pypi_index.conda_lock_text(records)
    return text.replace("linux-64", subdir)


def floor(requirements: tuple[str, ...], url: str, subdir: str, work: Path) -> float:
    from uv import find_uv_bin

    _, platform, osx = PLATFORMS[subdir]
    (work / "req.in").write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
    cmd = [str(find_uv_bin()), "pip", "compile", str(work / "req.in"), "-o", str(work / "pylock.toml"),
           "--python-platform", platform, "--python-version", "3.12.11", "--generate-hashes", "--no-build",
           "--default-index", url, "--cache-dir", str(work / "cache"), "--no-python-downloads",
           "--python", sys.executable, "--quiet"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}  # as envspec runs uv
    env.update({"UV_NO_CONFIG": "1", **({"MACOSX_DEPLOYMENT_TARGET": osx} if osx else {})})
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"uv pip compile failed for {subdir}: {proc.stderr[-2000:]}")
    return seconds


#: What the lock's verification of the pinned files (envspec.lock.pypi_verify) took, per finish() call.
VERIFIED: list[tuple[float, int]] = []


def _recording_verify() -> None:
    from envspec.lock import pypi_verify

    real = pypi_verify.verify
    if real.__name__ == "recording":
        return

    def recording(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        VERIFIED.append((result.seconds, result.bytes))
        return result

    pypi_verify.verify = recording


def envspec_pypi(requirements: tuple[str, ...], url: str, subdir: str, work: Path) -> float:
    from envspec.lock import pypi
    from envspec.lock.pypi_parts import CondaPart, PipRun

    _recording_verify()
    job = pypi.PipJob(requirements, frozenset(), pypi.pip_index({"pypi": url}), frozenset({"pytorch"}))
    (work / "tmp" / "t").mkdir(parents=True)
    start = time.perf_counter()
    pypi.finish(
        job,
        CondaPart(
            target="bench",
            subdir=subdir,
            lock_text=conda_lock_text(subdir),
            explicit_text="@EXPLICIT\n",
            virtual_packages=PLATFORMS[subdir][0],
            input_hash="sha256:" + "0" * 64,
        ),
        PipRun(work=work / "tmp" / "t"),
    )  # fmt: skip  (its uv cache: work/uv-cache, fresh: cold)
    return time.perf_counter() - start


def conflict(url: str, work: Path) -> tuple[float, str]:
    from envspec.errors import UnsatisfiableError
    from envspec.lock import pypi
    from envspec.lock.pypi_parts import CondaPart, PipRun

    job = pypi.PipJob(CONFLICT, frozenset(), pypi.pip_index({"pypi": url}), frozenset({"pytorch"}))
    (work / "tmp" / "t").mkdir(parents=True)
    start = time.perf_counter()
    try:
        pypi.finish(
            job,
            CondaPart(
                target="bench",
                subdir="linux-64",
                lock_text=conda_lock_text("linux-64"),
                explicit_text="@EXPLICIT\n",
                virtual_packages=PLATFORMS["linux-64"][0],
                input_hash="sha256:x",
            ),
            PipRun(work=work / "tmp" / "t"),
        )
    except UnsatisfiableError as exc:
        return time.perf_counter() - start, exc.one_line()
    raise SystemExit("the conflict resolved: the benchmark's premise is broken")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", help="a PEP 503 index URL (default: the tests' local index of real metadata)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    requirements = REAL_REQUIREMENTS if args.index else LOCAL_REQUIREMENTS
    global MODE  # noqa: PLW0603 - one switch for the helpers above
    MODE = "real" if args.index else "local"
    with index_url(args.index) as url:
        print(f"PyPI lock benchmark: {url} ({'real registry' if args.index else 'local, real metadata'}), "
              f"requirements {' '.join(requirements)}; cold caches, median of {args.repeat}")  # fmt: skip
        worst = 0.0
        for subdir in PLATFORMS:
            floors, ours = [], []
            VERIFIED.clear()
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="envspec-bench-pypi-") as tmp:
                    floors.append(floor(requirements, url, subdir, Path(tmp)))
                with tempfile.TemporaryDirectory(prefix="envspec-bench-pypi-") as tmp:
                    ours.append(envspec_pypi(requirements, url, subdir, Path(tmp)))
            f, o = statistics.median(floors), statistics.median(ours)
            worst = max(worst, o / f)
            v_s, v_mb = statistics.median(v for v, _ in VERIFIED), statistics.median(b for _, b in VERIFIED) / 1e6
            print(f"  {subdir:10} uv pip compile {f:6.2f} s   envspec PyPI part {o:6.2f} s   ratio {o / f:4.2f}x"
                  f"   (of which verifying the pinned files: {v_s:.2f} s, {v_mb:.1f} MB)")  # fmt: skip
        print(f"  worst ratio {worst:.2f}x (goal <= 2x): {'OK' if worst <= 2 else 'OVER'}")
        with tempfile.TemporaryDirectory(prefix="envspec-bench-pypi-") as tmp:
            seconds, line = conflict(url, Path(tmp))
        print(f"  conflict ({' + '.join(CONFLICT)} on conda's pytorch 2.7.1) reported in {seconds:.2f} s "
              f"(goal <= 15 s): {'OK' if seconds <= 15 else 'OVER'}\n    {line}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
