"""What the doctor's word-for-word check tests share: recorded machines, made-up facts and targets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from envspec.doctor.check import Check
from envspec.doctor.gpu import (
    cuda_checks,
)
from envspec.doctor.machine import (
    CondaTool,
    GpuInfo,
    MachineFacts,
    NvidiaFacts,
)
from envspec.doctor.probe import PlatformFacts
from envspec.spec.load import ResolvedTarget, Spec

DATA = Path(__file__).resolve().parent.parent / "data" / "doctor"
REPO = Path(__file__).resolve().parents[2]
MiB = 1024**2
GiB = 1024**3


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def rows(checks: tuple[Check, ...] | list[Check]) -> list[tuple[str, str, str, str | None]]:
    return [(c.name, str(c.status), c.reason, c.fix) for c in checks]


NO_XCODE = (
    "xcode-clt",
    "PASS",
    "not needed: the spec has no compiler packages and builds no pip package from source",
    None,
)


DRIVER_580 = ("nvidia-driver", "PASS", "driver 580.65.06 >= 575.51.03 for CUDA 12.9 (supports CUDA <= 13.0)", None)


def _plat(system: str = "Linux", machine: str = "x86_64", release: str = "6.8.0-48-generic", bits: int = 64):
    return PlatformFacts(system=system, machine=machine, release=release, python_version="3.12.7", python_bits=bits)


def _facts(nvidia: NvidiaFacts, system: str = "Linux", **kw: Any) -> MachineFacts:
    machine = "AMD64" if system == "Windows" else "x86_64"
    subdir = "win-64" if system == "Windows" else "linux-64"
    return MachineFacts(
        platform=_plat(system, machine), python_subdir=subdir, hardware_subdir=subdir, nvidia=nvidia, **kw
    )


def _gpu(name: str = "NVIDIA H100", driver: str = "580.65.06", mib: int | None = 81559, cc: str | None = "9.0"):
    return GpuInfo(name=name, driver=driver, memory_mib=mib, compute_cap=cc)


def _cuda_target(spec: Spec, cuda: str, name: str = "linux-cuda") -> ResolvedTarget:
    base = spec.resolve(name)
    return dataclasses.replace(
        base, name=f"{name}-{cuda}", cuda_version=cuda, virtual_packages={**base.virtual_packages, "__cuda": cuda}
    )


def _gpu_rows(spec: Spec, gpu: GpuInfo, cuda: str = "12.9", targets: tuple[str, ...] = ()) -> list[Any]:
    target = _cuda_target(spec, cuda)
    others = [_cuda_target(spec, c) for c in targets]
    facts = _facts(NvidiaFacts("found", gpus=(gpu,), driver=gpu.driver))
    return rows(cuda_checks(facts, target, [target, *others]))


def _mac(rosetta: bool | None, apple: bool | None, macos: str | None = "15.1", **kw: Any) -> MachineFacts:
    machine = "arm64" if apple and not rosetta else "x86_64"
    return MachineFacts(
        platform=_plat("Darwin", machine, "24.1.0"),
        python_subdir="osx-arm64" if machine == "arm64" else "osx-64",
        hardware_subdir="osx-arm64" if apple else "osx-64",
        rosetta=rosetta,
        apple_silicon=apple,
        macos_version=macos,
        **kw,
    )


def _tools(*tools: CondaTool, **kw: Any) -> MachineFacts:
    return _mac(False, True, conda_tools=tools, **kw)
