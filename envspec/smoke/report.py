"""The smoke report: ``smoke.json`` (schema ``envspec-smoke/1``), ``smoke.png``, and the one-line verdict.

The schema is fixed: envspec's report generator reads it. Add fields only with a new schema version.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from envspec.smoke.atomic import atomic_write

SCHEMA: Final = "envspec-smoke/1"
Verdict = Literal["pass", "fail", "error"]
IMAGE_FILE: Final = "smoke.png"
REPORT_FILE: Final = "smoke.json"


if sys.platform == "win32":  # a check mypy --platform understands: resource is POSIX only

    def peak_host_mib() -> float | None:
        """Peak resident memory of this process (None where the platform does not tell)."""
        try:  # Windows: PROCESS_MEMORY_COUNTERS.PeakWorkingSetSize
            import ctypes
            from ctypes import wintypes

            class Counters(ctypes.Structure):
                _fields_ = [
                    ("cb", wintypes.DWORD),
                    ("PageFaultCount", wintypes.DWORD),
                    ("PeakWorkingSetSize", ctypes.c_size_t),
                    ("WorkingSetSize", ctypes.c_size_t),
                    ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
                    ("QuotaPagedPoolUsage", ctypes.c_size_t),
                    ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
                    ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
                    ("PagefileUsage", ctypes.c_size_t),
                    ("PeakPagefileUsage", ctypes.c_size_t),
                ]

            counters = Counters()
            counters.cb = ctypes.sizeof(Counters)
            windll = ctypes.windll  # type: ignore[attr-defined,unused-ignore]
            handle = windll.kernel32.GetCurrentProcess()
            if windll.psapi.GetProcessMemoryInfo(handle, ctypes.byref(counters), counters.cb):
                return round(float(counters.PeakWorkingSetSize) / (1024 * 1024), 1)
        except (ImportError, AttributeError, OSError):
            pass
        return None

else:

    def peak_host_mib() -> float | None:
        """Peak resident memory of this process (None where the platform does not tell)."""
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(float(peak) / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries the smoke test uses (None: not importable)."""
    found: dict[str, str | None] = {"python": platform.python_version(), "torch_cuda": None}
    for key, getter in _VERSION_GETTERS.items():
        try:
            found[key] = getter()
        except Exception:
            found[key] = None
    return {k: found.get(k) for k in ("python", "torch", "torch_cuda", "diffusers", "transformers", "numpy", "pillow")}


def _torch() -> str:
    import torch

    return str(torch.__version__)


def _torch_cuda() -> str | None:
    import torch

    cuda = torch.version.cuda
    return None if cuda is None else str(cuda)


def _diffusers() -> str:
    import diffusers

    return str(diffusers.__version__)


def _transformers() -> str:
    import transformers

    return str(transformers.__version__)


def _numpy() -> str:
    import numpy

    return str(numpy.__version__)


def _pillow() -> str:
    import PIL

    return str(PIL.__version__)


_VERSION_GETTERS: Final[dict[str, Callable[[], str | None]]] = {
    "torch": _torch,
    "torch_cuda": _torch_cuda,
    "diffusers": _diffusers,
    "transformers": _transformers,
    "numpy": _numpy,
    "pillow": _pillow,
}


def empty_report(target: str | None, mode: str, seed: int, allow_cpu: bool) -> dict[str, Any]:
    """A report with every schema field present; the run fills it in as it goes."""
    return {
        "schema": SCHEMA,
        "target": target,
        "verdict": "error",
        "message": "",
        "promised_device": None,
        "device": "none",
        "device_name": "",
        "allow_cpu": allow_cpu,
        "dtype": "",
        "mode": mode,
        "model": None,
        "resolution": [0, 0],
        "steps": 0,
        "seed": seed,
        "versions": {},
        "timings_s": dict.fromkeys(("import", "load", "first_step", "median_step", "decode", "total")),
        "memory": {"peak_host_mib": None, "peak_device_mib": None},
        "image": {"file": IMAGE_FILE, "width": 0, "height": 0, "mean": None, "std": None, "distinct_values": 0},
        "checks": [],
        "benchmark": None,
    }


def verdict_line(report: dict[str, Any]) -> str:
    """The one line printed at the end: verdict, where it ran, and what failed."""
    verdict = str(report["verdict"]).upper()
    return f"smoke {verdict}: {report['message']}"


def write_report(out: Path, report: dict[str, Any], png: bytes | None) -> None:
    """Write smoke.png (when there is one) then smoke.json, both atomically.

    A run without an image removes the smoke.png of an earlier run, so an old picture never
    stands beside a new verdict.
    """
    if png is not None:
        atomic_write(out / IMAGE_FILE, png)
    elif (out / IMAGE_FILE).is_file():
        (out / IMAGE_FILE).unlink()
    text = json.dumps(report, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(out / REPORT_FILE, text.encode("utf-8"))
