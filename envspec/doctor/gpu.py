"""Can this machine's GPU run the target's torch: NVIDIA GPU present, driver new enough for the
target's CUDA, compute capability the CUDA release still builds for, enough GPU memory.

Every threshold is data with its source (NVIDIA's release notes), so a newer CUDA is one more table
row. ``accelerator_present`` is what target ranking asks first: does the machine have the
target's accelerator at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from envspec.doctor.check import DOCTOR_ADVICE, Advice, Check, GiB, MiB, Status, gib
from envspec.doctor.machine import MachineFacts
from envspec.spec import ResolvedTarget
from envspec.versions import version_tuple


@dataclass(frozen=True)
class CudaDriverFloor:
    cuda: str
    linux: str
    windows: str | None  # None: NVIDIA lists "N/A" (Windows drivers no longer ship with 13.x); use the branch


#: Minimum driver for each CUDA toolkit release (GA rows), from NVIDIA's CUDA Toolkit release notes,
#: table "CUDA Toolkit and Corresponding Driver Versions" (docs.nvidia.com/cuda/cuda-toolkit-release-notes).
CUDA_DRIVER_TABLE: Final[tuple[CudaDriverFloor, ...]] = (
    CudaDriverFloor("13.2", "595.45.04", None),
    CudaDriverFloor("13.1", "590.44.01", None),
    CudaDriverFloor("13.0", "580.65.06", None),
    CudaDriverFloor("12.9", "575.51.03", "576.02"),
    CudaDriverFloor("12.8", "570.26", "570.65"),
    CudaDriverFloor("12.6", "560.28.03", "560.76"),
    CudaDriverFloor("12.5", "555.42.02", "555.85"),
    CudaDriverFloor("12.4", "550.54.14", "551.61"),
    CudaDriverFloor("12.3", "545.23.06", "545.84"),
    CudaDriverFloor("12.0", "525.60.13", "527.41"),
)

#: NVIDIA "CUDA minor version compatibility": a build for any 12.x runs on a 12.0-era driver, a
#: 13.x build on an R580 driver, without features that need a newer driver (e.g. JIT of newer PTX).
#: (Linux floor, Windows floor).
CUDA_MINOR_COMPAT: Final[dict[int, tuple[str, str]]] = {13: ("580.65.06", "580"), 12: ("525.60.13", "528.33")}

#: Oldest GPU architecture each CUDA major builds for (compute capability). CUDA 13 dropped
#: Maxwell, Pascal and Volta (sm_75+, domain notes); CUDA 12 still covers sm_50+.
CUDA_MIN_COMPUTE_CAP: Final[dict[int, str]] = {13: "7.5", 12: "5.0", 11: "3.5"}

#: GPUs that only newer toolkits know: (compute capability at least, CUDA at least). Blackwell
#: (sm_100, sm_120) arrived with CUDA 12.8.
ARCH_MIN_CUDA: Final[tuple[tuple[str, str], ...]] = (("10.0", "12.8"),)

ARCH_NAMES: Final[dict[str, str]] = {
    "5": "Maxwell",
    "6": "Pascal",
    "7.0": "Volta",
    "7.2": "Volta",
    "7.5": "Turing",
    "8.0": "Ampere",
    "8.6": "Ampere",
    "8.7": "Ampere",
    "8.9": "Ada",
    "9": "Hopper",
    "10": "Blackwell",
    "12": "Blackwell",
}

#: Stable Diffusion 1.x in fp16 needs ~2.1 GB of weights alone (UNet 860 M + CLIP 123 M + VAE 84 M
#: parameters); 512x512 with guidance is comfortable from ~6 GiB, possible with attention slicing below.
GPU_MEMORY_FAIL_BELOW: Final = int(2.5 * GiB)
GPU_MEMORY_WARN_BELOW: Final = 6 * GiB


def _cuda_major(version: str) -> int:
    return version_tuple(version)[0]


def target_cuda(target: ResolvedTarget) -> str | None:
    """The CUDA version a target's torch is built for: its cuda-version pin, else its __cuda."""
    if target.cuda_version and target.cuda_version != "*":
        return target.cuda_version
    vp = target.virtual_packages.get("__cuda")
    return vp.split()[0] if vp else None


def arch_name(cc: str) -> str:
    major = cc.split(".", maxsplit=1)[0]
    return ARCH_NAMES.get(cc) or ARCH_NAMES.get(major) or "unknown architecture"


def driver_floor(cuda: str, system: str) -> tuple[str, str | None] | None:
    """(driver for full support, driver for minor-version compatibility) for a CUDA version."""
    want = version_tuple(cuda)[:2]
    major = want[0]
    rows = [r for r in CUDA_DRIVER_TABLE if _cuda_major(r.cuda) == major and version_tuple(r.cuda)[:2] <= want]
    if not rows:
        return None
    row = max(rows, key=lambda r: version_tuple(r.cuda))
    windows = system == "Windows"
    full = (row.windows or row.linux.split(".")[0]) if windows else row.linux
    compat_pair = CUDA_MINOR_COMPAT.get(major)
    compat = (compat_pair[1] if windows else compat_pair[0]) if compat_pair else None
    return full, compat


def max_cuda_for_driver(driver: str, system: str) -> str | None:
    """Newest CUDA in the table this driver fully supports (what nvidia-smi's header calls "CUDA Version")."""
    have = version_tuple(driver)
    for row in sorted(CUDA_DRIVER_TABLE, key=lambda r: version_tuple(r.cuda), reverse=True):
        floor = driver_floor(row.cuda, system)
        if floor and have >= version_tuple(floor[0]):
            return row.cuda
    return None


def accelerator_present(facts: MachineFacts, accelerator: str) -> bool:
    """Whether the machine has the accelerator at all (what target ranking asks first)."""
    if accelerator == "cuda":  # a driver that answers badly still means an NVIDIA GPU is likely there
        return facts.nvidia.status not in ("no-driver", "no-gpu")
    if accelerator == "mps":
        return facts.hardware_subdir == "osx-arm64"
    return True


def cuda_checks(
    facts: MachineFacts,
    target: ResolvedTarget,
    targets: Sequence[ResolvedTarget],
    advice: Advice = DOCTOR_ADVICE,
) -> list[Check]:
    """The GPU checks of a CUDA target; ``targets`` are the spec's, for fixes that name another one."""
    nv = facts.nvidia
    cuda = target_cuda(target)
    cpu_way = _alternative(targets, target, lambda t: t.accelerator == "cpu", "accelerator: cpu", advice)
    checks: list[Check] = []
    if nv.status == "found":
        gpu = nv.best
        assert gpu is not None
        more = f" (+{len(nv.gpus) - 1} more)" if len(nv.gpus) > 1 else ""
        checks.append(Check("nvidia-gpu", Status.PASS, f"{gpu.name}{more}, driver {gpu.driver}"))
    elif nv.status == "no-driver":
        checks.append(
            Check(
                "nvidia-gpu",
                Status.FAIL,
                f"no NVIDIA GPU found ({nv.detail}); target {target.name}'s torch would only run on the CPU",
                f"on a machine with an NVIDIA GPU install its driver; here {cpu_way}, or {advice.allow_cpu}",
            )
        )
        return checks
    elif nv.status == "no-gpu":
        checks.append(
            Check(
                "nvidia-gpu",
                Status.FAIL,
                f"the NVIDIA driver runs but sees no GPU ({nv.detail})",
                "check the GPU is installed / passed through to this VM or container (`nvidia-smi -L` lists it)",
            )
        )
        return checks
    elif nv.status == "driver-error":
        checks.append(
            Check(
                "nvidia-gpu",
                Status.FAIL,
                f"nvidia-smi cannot talk to the driver: {nv.detail}",
                "reboot, or reinstall the NVIDIA driver, until `nvidia-smi` works",
            )
        )
        return checks
    elif nv.status == "smi-missing":
        checks.append(
            Check(
                "nvidia-gpu",
                Status.WARN,
                f"{nv.detail}; GPU model, memory and compute capability unknown",
                "install the NVIDIA utilities (nvidia-smi, e.g. nvidia-utils) or put nvidia-smi on PATH",
            )
        )
    else:  # unparsable
        checks.append(
            Check(
                "nvidia-gpu",
                Status.WARN,
                f"{nv.detail}; GPU, driver and memory unknown",
                "run `nvidia-smi` and check the driver works",
            )
        )
    driver = nv.best.driver if nv.best else nv.driver
    if driver and cuda:
        checks.append(_check_driver(facts, target, driver, cuda, targets, advice=advice))
    elif cuda is None:
        checks.append(Check("nvidia-driver", Status.WARN, f"target {target.name} names no CUDA version", None))
    gpu = nv.best
    if gpu is not None and cuda:
        checks.append(_check_compute_cap(gpu.compute_cap, cuda, target, targets, advice))
    if gpu is not None:
        checks.append(_check_gpu_memory(gpu.memory_mib, gpu.name))
    return checks


def _check_driver(
    facts: MachineFacts,
    target: ResolvedTarget,
    driver: str,
    cuda: str,
    targets: Sequence[ResolvedTarget],
    *,
    advice: Advice,
) -> Check:
    system = facts.platform.system
    floor = driver_floor(cuda, system)
    if floor is None:
        return Check(
            "nvidia-driver",
            Status.WARN,
            f"driver {driver}; no driver table entry for CUDA {cuda} (known: "
            f"{', '.join(r.cuda for r in CUDA_DRIVER_TABLE)})",
            "add a row to CUDA_DRIVER_TABLE in envspec/doctor/gpu.py from NVIDIA's release notes",
        )
    full, compat = floor
    have = version_tuple(driver)
    supports = max_cuda_for_driver(driver, system)
    supports_text = f"supports CUDA <= {supports}" if supports else "too old for any CUDA 12 build"
    if have >= version_tuple(full):
        return Check("nvidia-driver", Status.PASS, f"driver {driver} >= {full} for CUDA {cuda} ({supports_text})")
    lower = _alternative(
        targets,
        target,
        lambda t: (
            t.accelerator == "cuda"
            and (c := target_cuda(t)) is not None
            and (f := driver_floor(c, system)) is not None
            and have >= version_tuple(f[0])
        ),
        f"cuda-version {supports}" if supports else "",
        advice,
    )
    fix = f"update the NVIDIA driver to >= {full}"
    if supports or lower.startswith("use "):
        fix += f", or {lower}"
    if compat and have >= version_tuple(compat):
        return Check(
            "nvidia-driver",
            Status.WARN,
            f"driver {driver} is older than {full} for CUDA {cuda} ({supports_text}); it runs through CUDA "
            f"minor-version compatibility (>= {compat}) but features needing a newer driver fail",
            fix,
        )
    need = compat or full
    return Check(
        "nvidia-driver",
        Status.FAIL,
        f"driver {driver} is too old for CUDA {cuda}: needs >= {full} (>= {need} at the very least); {supports_text}",
        fix,
    )


def _check_compute_cap(
    cc: str | None, cuda: str, target: ResolvedTarget, targets: Sequence[ResolvedTarget], advice: Advice
) -> Check:
    if cc is None:
        return Check(
            "compute-capability",
            Status.WARN,
            "the driver did not report the GPU's compute capability (drivers before ~510 cannot)",
            "look the GPU up on developer.nvidia.com/cuda-gpus",
        )
    major = _cuda_major(cuda)
    minimum = CUDA_MIN_COMPUTE_CAP.get(major)
    sm = "sm_" + cc.replace(".", "")
    have = version_tuple(cc)
    if minimum is not None and have < version_tuple(minimum):
        older = _alternative(
            targets,
            target,
            lambda t: (
                t.accelerator == "cuda"
                and (c := target_cuda(t)) is not None
                and have >= version_tuple(CUDA_MIN_COMPUTE_CAP.get(_cuda_major(c), "0"))
            ),
            f"a CUDA {major - 1}.x cuda-version (those builds still cover {sm})",
            advice,
        )
        return Check(
            "compute-capability",
            Status.FAIL,
            f"{sm} ({arch_name(cc)}) is below sm_{minimum.replace('.', '')}, the oldest GPU CUDA {major} builds run on",
            older,
        )
    for cc_min, cuda_min in ARCH_MIN_CUDA:
        if have >= version_tuple(cc_min) and version_tuple(cuda) < version_tuple(cuda_min):
            return Check(
                "compute-capability",
                Status.FAIL,
                f"{sm} ({arch_name(cc)}) needs CUDA >= {cuda_min}; target {target.name} is CUDA {cuda}",
                f"pin cuda-version >= {cuda_min} for this target in envspec.yml",
            )
    floor = f" >= sm_{minimum.replace('.', '')}" if minimum else ""
    return Check("compute-capability", Status.PASS, f"{sm} ({arch_name(cc)}){floor} for CUDA {major}")


def _check_gpu_memory(memory_mib: int | None, name: str) -> Check:
    if memory_mib is None:
        return Check("gpu-memory", Status.WARN, f"{name}: memory size not reported", None)
    size = memory_mib * MiB
    if size < GPU_MEMORY_FAIL_BELOW:
        return Check(
            "gpu-memory",
            Status.FAIL,
            f"{gib(size)} of GPU memory: less than SD-1's fp16 weights plus activations need "
            f"({gib(GPU_MEMORY_FAIL_BELOW)})",
            "use a GPU with >= 6 GiB, or run on the CPU",
        )
    if size < GPU_MEMORY_WARN_BELOW:
        return Check(
            "gpu-memory",
            Status.WARN,
            f"{gib(size)} of GPU memory: SD-1 fp16 at 512x512 is tight below {gib(GPU_MEMORY_WARN_BELOW)}",
            "enable attention slicing or use smaller images",
        )
    return Check("gpu-memory", Status.PASS, f"{gib(size)} of GPU memory (SD-1 fp16 512x512 fits)")


def _alternative(
    targets: Sequence[ResolvedTarget],
    target: ResolvedTarget,
    ok: Callable[[ResolvedTarget], bool],
    what: str,
    advice: Advice,
) -> str:
    """'use --target X' (in the command's words) for a target on the same subdir that passes ``ok``,
    else how to add one."""
    names = [t.name for t in targets if t.subdir == target.subdir and t.name != target.name and ok(t)]
    if names:
        return advice.other_target.format(name=names[0])
    return f"add a target for {target.subdir} with {what} to envspec.yml"
