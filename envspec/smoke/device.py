"""Which device to run on, and which device the environment promised.

Pure decisions over a :class:`DeviceProbe` (what torch reports), so they are unit-tested
without a GPU; :func:`probe_torch` is the only part that asks torch.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from envspec.smoke.errors import SmokeSetupError

Device = Literal["cuda", "mps", "cpu"]
DEVICES: Final[tuple[Device, ...]] = ("cuda", "mps", "cpu")  # preference order

ENV_DEVICE: Final = "ENVSPEC_DEVICE"
ENV_TARGET: Final = "ENVSPEC_TARGET"


@dataclass(frozen=True)
class DeviceProbe:
    """What this torch can do. ``*_built``: compiled in; ``*_available``: usable right now."""

    torch_version: str
    cuda_built: bool
    cuda_available: bool
    cuda_name: str | None
    mps_built: bool
    mps_available: bool
    cpu_name: str


@dataclass(frozen=True)
class Promise:
    """The device and target this environment was provisioned for, and where that came from."""

    device: Device | None
    target: str | None
    source: str  # "--expect", "ENVSPEC_DEVICE", "<prefix>/conda-meta/state", or "none"


@dataclass(frozen=True)
class DeviceChoice:
    device: Device
    name: str
    promise_met: bool | None  # None: nothing was promised
    note: str  # why this device (and, when the promise was not met, why that is allowed)


def probe_torch() -> DeviceProbe:
    """Ask the imported torch what it can run on (no side effects beyond CUDA init)."""
    import platform

    import torch

    cuda_built = torch.version.cuda is not None or getattr(torch.version, "hip", None) is not None
    cuda_available = bool(cuda_built and torch.cuda.is_available())
    mps_backend = getattr(torch.backends, "mps", None)
    mps_built = bool(mps_backend is not None and mps_backend.is_built())
    mps_available = bool(mps_backend is not None and mps_backend.is_available())
    return DeviceProbe(
        torch_version=str(torch.__version__),
        cuda_built=cuda_built,
        cuda_available=cuda_available,
        cuda_name=torch.cuda.get_device_name(0) if cuda_available else None,
        mps_built=mps_built,
        mps_available=mps_available,
        cpu_name=platform.machine() or "cpu",  # platform.processor() spawns `uname -p`
    )


def _as_device(value: str | None, where: str) -> Device | None:
    if value is None or value.strip() == "":
        return None
    value = value.strip().lower()
    for device in DEVICES:
        if value == device:
            return device
    raise SmokeSetupError(
        f"{where} names device {value!r}, expected one of {', '.join(DEVICES)}",
        tip="fix the value (the installer writes it from the target's smoke_device)",
    )


def read_state_file(prefix: Path) -> dict[str, str]:
    """``env_vars`` of ``<prefix>/conda-meta/state`` (written by the installer, read by conda activate)."""
    path = prefix / "conda-meta" / "state"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SmokeSetupError(f"cannot read {path}: {exc}", tip="reinstall the environment") from None
    env_vars = data.get("env_vars") if isinstance(data, dict) else None
    if not isinstance(env_vars, dict):
        return {}
    return {str(k): str(v) for k, v in env_vars.items() if v is not None}


def find_promise(
    expect: str | None,
    target: str | None,
    environ: dict[str, str] | None = None,
    prefix: Path | None = None,
) -> Promise:
    """The promised device: ``--expect``, else ``$ENVSPEC_DEVICE``, else the prefix's state file.

    The target name follows the same order (``--target``, ``$ENVSPEC_TARGET``, state file).
    """
    env = dict(os.environ) if environ is None else environ
    state = read_state_file(Path(sys.prefix) if prefix is None else prefix)
    state_where = f"{(Path(sys.prefix) if prefix is None else prefix) / 'conda-meta' / 'state'}"
    target_name = target or env.get(ENV_TARGET) or state.get(ENV_TARGET) or None
    if expect:
        return Promise(_as_device(expect, "--expect"), target_name, "--expect")
    if env.get(ENV_DEVICE):
        return Promise(_as_device(env[ENV_DEVICE], f"${ENV_DEVICE}"), target_name, f"${ENV_DEVICE}")
    if state.get(ENV_DEVICE):
        return Promise(_as_device(state[ENV_DEVICE], state_where), target_name, state_where)
    return Promise(None, target_name, "none")


def why_missing(device: Device, probe: DeviceProbe) -> str:
    """A one-line reason a device cannot be used with this torch on this machine."""
    if device == "cuda":
        if not probe.cuda_built:
            return f"torch {probe.torch_version} was built without CUDA (a CPU build was installed)"
        return (
            f"torch {probe.torch_version} has CUDA but no GPU is usable "
            "(no NVIDIA GPU, driver too old for this CUDA, or CUDA_VISIBLE_DEVICES hides it)"
        )
    if device == "mps":
        if not probe.mps_built:
            return f"torch {probe.torch_version} was built without MPS (not an arm64 macOS build)"
        return "MPS is built but not available (macOS older than 14, Rosetta/x86 Python, or a VM)"
    return "cpu is always available"


def _available(device: Device, probe: DeviceProbe) -> bool:
    return {"cuda": probe.cuda_available, "mps": probe.mps_available, "cpu": True}[device]


def _name(device: Device, probe: DeviceProbe) -> str:
    if device == "cuda":
        return probe.cuda_name or "cuda"
    if device == "mps":
        return "Apple MPS"
    return probe.cpu_name


def choose_device(probe: DeviceProbe, forced: str | None, promise: Promise, allow_cpu: bool) -> DeviceChoice:
    """cuda > mps > cpu, or ``forced``; a promised device that is missing is a setup error.

    With ``allow_cpu`` a missing promised device falls back to cpu and the choice says so.
    """
    promised = promise.device
    target = f"target {promise.target} " if promise.target else ""
    if forced is not None:
        wanted = _as_device(forced, "--device")
        assert wanted is not None
        if promised is not None and promised != wanted and not allow_cpu and not _available(promised, probe):
            # forcing another device must not hide a broken promise (e.g. --device cpu on a CPU-only torch)
            raise SmokeSetupError(
                f"{target}promises {promised} ({promise.source}) but {why_missing(promised, probe)}",
                tip="install the lockfile of a target for this machine, or pass --allow-cpu (CI without GPU)",
            )
        if not _available(wanted, probe):
            if allow_cpu and wanted != "cpu":
                return DeviceChoice(
                    "cpu",
                    _name("cpu", probe),
                    False if promised else None,
                    f"--device {wanted} unavailable ({why_missing(wanted, probe)}); cpu allowed by --allow-cpu",
                )
            raise SmokeSetupError(
                f"--device {wanted} is not usable: {why_missing(wanted, probe)}",
                tip="use --allow-cpu to run on cpu anyway",
            )
        met = None if promised is None else promised == wanted
        return DeviceChoice(wanted, _name(wanted, probe), met, f"forced by --device {wanted}")
    if promised is not None:
        if _available(promised, probe):
            chosen: Device = promised
            return DeviceChoice(chosen, _name(chosen, probe), True, f"promised by {promise.source}")
        reason = why_missing(promised, probe)
        if not allow_cpu:
            raise SmokeSetupError(
                f"{target}promises {promised} ({promise.source}) but {reason}",
                tip="install the lockfile of a target for this machine, or pass --allow-cpu (CI without GPU)",
            )
        fallback: Device = next(d for d in DEVICES if _available(d, probe))
        return DeviceChoice(
            fallback,
            _name(fallback, probe),
            False,
            f"{target}promised {promised} but {reason}; running on {fallback} (--allow-cpu)",
        )
    device = next(d for d in DEVICES if _available(d, probe))
    return DeviceChoice(device, _name(device, probe), None, "best available (nothing promised)")


def dtype_name(device: Device) -> str:
    """fp16 on CUDA; fp32 on MPS (the old guide's --full_precision) and CPU."""
    return "float16" if device == "cuda" else "float32"
