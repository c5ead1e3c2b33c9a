"""Which target fits this machine, and what stands in the way: pure checks over machine facts.

Inputs are ``MachineFacts`` (gathered once through a probe, see ``envspec.doctor.machine``) and the spec's
resolved targets; outputs are ``Check`` records (PASS / WARN / FAIL, a one-line reason, a fix).
Nothing here touches the machine, so every situation is a unit test with recorded facts.

The recommended target is chosen from the spec's targets as data, never by name: first the
targets whose ``subdir`` is the hardware's own (``osx-arm64`` on an M1 even when Python runs under
Rosetta), then those the hardware can emulate (``osx-64`` on Apple silicon); among them the one
whose accelerator the machine has, with the fewest FAILs, preferring cuda > mps > cpu, then the
fewest WARNs, then the newest CUDA. A GPU-less Linux box therefore gets a ``linux-cpu`` target when
the spec has one; with the shipped four targets it gets ``linux-cuda`` with a FAIL that says there
is no NVIDIA GPU and how to go on (add a CPU target, or accept CPU with ``envspec smoke --allow-cpu``).

Every threshold below is data with its source, so a newer CUDA is one more table row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from envspec.doctor.machine import MachineFacts
from envspec.spec.model import ACCELERATOR_RULES, ResolvedTarget
from envspec.versions import version_tuple

GiB: Final = 1024**3
MiB: Final = 1024**2


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    reason: str
    fix: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"name": self.name, "status": str(self.status), "reason": self.reason, "fix": self.fix}


# --------------------------------------------------------------------------------------------
# Data tables
# --------------------------------------------------------------------------------------------


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

#: Host RAM (on Apple silicon it is also the GPU's memory).
RAM_FAIL_BELOW: Final = 4 * GiB
RAM_WARN_BELOW: Final = 8 * GiB

#: Environment size when the lockfile has no package sizes: conda-forge torch environments measured
#: as download + extracted (CUDA pulls cuDNN, cuBLAS, NCCL... a few GiB compressed).
ENV_DEFAULT_BYTES: Final[dict[str, int]] = {"cuda": 12 * GiB, "mps": 4 * GiB, "cpu": 4 * GiB}
#: Download sizes -> disk: the package cache keeps the archive and its extracted copy, the
#: environment hardlinks the extracted files; extracted is ~3x the compressed size.
DOWNLOAD_TO_DISK_FACTOR: Final = 4.0
#: sd-v1-4.ckpt / v1-5-pruned-emaonly.ckpt are ~4.27 GB.
CHECKPOINT_BYTES: Final = 4_265_380_512
CHECKPOINT_SUSPICIOUS_BELOW: Final = 1_000_000_000
DISK_HEADROOM: Final = 1.25

#: Preference among accelerators the machine has (lower is better).
ACCELERATOR_PREFERENCE: Final[dict[str, int]] = {"cuda": 0, "mps": 1, "cpu": 2}

#: Subdirs a machine can run besides its own, by emulation (Rosetta 2, Windows on Arm's x64 layer).
EMULATED_SUBDIRS: Final[dict[str, tuple[str, ...]]] = {"osx-arm64": ("osx-64",), "win-arm64": ("win-64",)}

#: Packages whose presence means the environment builds code, so macOS needs Xcode's CLT.
COMPILER_PACKAGES: Final = frozenset(
    {"c-compiler", "cxx-compiler", "fortran-compiler", "compilers", "clang", "clangxx", "gcc", "gxx", "make", "cmake"}
)


@dataclass(frozen=True)
class InstallRecipe:
    tool: str
    command: str  # {env} and {file} are filled in


#: How each tool installs an explicit lockfile without a solve. `conda create --file` reads
#: @EXPLICIT files on every conda; `conda env create -f` learnt to (through a solve) in 25.5.
INSTALL_RECIPES: Final[tuple[InstallRecipe, ...]] = (
    InstallRecipe("conda", "conda create -n {env} --file {file}"),
    InstallRecipe("mamba", "mamba create -n {env} --file {file}"),
    InstallRecipe("micromamba", "micromamba create -n {env} -f {file}"),
)
#: conda/conda#14820 (environment-specifier plugins, explicit files), released in conda 25.5.0.
CONDA_ENV_CREATE_EXPLICIT_SINCE: Final = "25.5.0"
ENVSPEC_INSTALL: Final = "envspec install {target} --prefix ./env"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _gib(n: int | float) -> str:
    return f"{n / GiB:.1f} GiB"


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


def _package_name(match_spec: str) -> str:
    """ "conda-forge::gcc>=13" -> "gcc" (enough of a match spec for a name lookup)."""
    name = match_spec.rsplit("::", maxsplit=1)[-1].strip()
    return re.split(r"[\s=<>!~\[]", name, maxsplit=1)[0].lower()


def needs_compiler(target: ResolvedTarget) -> str | None:
    """Why the environment needs a compiler, or None (the default spec must not)."""
    names = sorted({_package_name(d) for d in target.dependencies} & COMPILER_PACKAGES)
    if names:
        return f"the spec installs {', '.join(names)}"
    if target.pip:
        return "the spec has pip packages, which may build from source"
    return None


@dataclass(frozen=True)
class EnvEstimate:
    bytes: int
    source: str  # for people: where the figure comes from


def estimate_env_bytes(lock_data: Any, target: ResolvedTarget) -> EnvEstimate:
    """Disk an environment needs, from a parsed ``conda-lock.yml`` when it carries package sizes.

    conda-lock's own format has no sizes; a lockfile that does (a ``size`` per package, as rattler
    lockfiles and FETCH records have) gives a figure for this environment. Otherwise a documented
    default per accelerator.
    """
    default = EnvEstimate(ENV_DEFAULT_BYTES[target.accelerator], f"default for a {target.accelerator} environment")
    packages = lock_data.get("package") if isinstance(lock_data, dict) else None
    if not isinstance(packages, list):
        return default
    mine = [p for p in packages if isinstance(p, dict) and p.get("platform") in (target.subdir, None)]
    sizes = [p.get("size") for p in mine]
    known = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool) and s >= 0]
    if not mine or len(known) < len(mine):
        return EnvEstimate(default.bytes, f"{default.source}; the lockfile ({len(mine)} packages) has no sizes")
    download = sum(known)
    return EnvEstimate(
        int(download * DOWNLOAD_TO_DISK_FACTOR),
        f"{len(mine)} packages, {_gib(download)} to download (x{DOWNLOAD_TO_DISK_FACTOR:g} for cache + environment)",
    )


# --------------------------------------------------------------------------------------------
# Checks about the hardware and OS: used both to rank targets and to report
# --------------------------------------------------------------------------------------------


def accelerator_present(facts: MachineFacts, accelerator: str) -> bool:
    if accelerator == "cuda":  # a driver that answers badly still means an NVIDIA GPU is likely there
        return facts.nvidia.status not in ("no-driver", "no-gpu")
    if accelerator == "mps":
        return facts.hardware_subdir == "osx-arm64"
    return True


def machine_checks(facts: MachineFacts, target: ResolvedTarget, targets: Sequence[ResolvedTarget]) -> list[Check]:
    checks = [_check_platform(facts, target, targets)]
    system = facts.platform.system
    family = target.platform_family
    if system == "Linux" and family == "linux":
        checks.append(_check_distro(facts))
        checks.append(_check_glibc(facts, target))
        kernel = _check_kernel(facts, target)
        if kernel:
            checks.append(kernel)
    if system == "Darwin":
        checks.append(_check_rosetta(facts, target))
        if family == "osx":
            checks.append(_check_macos(facts, target))
    conda_subdir = _check_conda_subdir(facts, target)
    if conda_subdir:
        checks.append(conda_subdir)
    if target.accelerator == "cuda":
        checks.extend(_cuda_checks(facts, target, targets))
    return checks


def _describe_machine(facts: MachineFacts) -> str:
    p = facts.platform
    name = {"Darwin": "macOS", "Linux": "Linux", "Windows": "Windows"}.get(p.system, p.system)
    if facts.apple_silicon:
        return f"{name} on Apple silicon ({facts.hardware_subdir})"
    return f"{name} {p.machine} ({facts.hardware_subdir or 'unknown subdir'})"


def _check_platform(facts: MachineFacts, target: ResolvedTarget, targets: Sequence[ResolvedTarget]) -> Check:
    hw = facts.hardware_subdir
    machine = _describe_machine(facts)
    if facts.platform.python_bits != 64:
        return Check(
            "platform",
            Status.FAIL,
            f"Python is a {facts.platform.python_bits}-bit build; conda-forge torch is 64-bit only",
            "install a 64-bit Python (Miniforge)",
        )
    if hw is None:
        return Check(
            "platform",
            Status.FAIL,
            f"{facts.platform.system} {facts.platform.machine} is not a platform conda-forge builds torch for",
            None,
        )
    if target.subdir == hw:
        return Check("platform", Status.PASS, f"{machine}; target {target.name} is for {target.subdir}")
    best = recommend_target(facts, targets)
    other = f"use --target {best.name}" if best and best.name != target.name else f"add a target for {hw}"
    if target.subdir in EMULATED_SUBDIRS.get(hw, ()):
        return Check(
            "platform",
            Status.WARN,
            f"target {target.name} is for {target.subdir}; it runs on this {machine} only under emulation "
            "(slower, no GPU)",
            other,
        )
    return Check("platform", Status.FAIL, f"target {target.name} is for {target.subdir}; this is {machine}", other)


def _check_distro(facts: MachineFacts) -> Check:
    d = facts.distro
    if d is None:
        return Check(
            "distro",
            Status.WARN,
            f"Linux distribution unknown ({facts.notes.get('distro', 'no answer')})",
            "nothing to do if glibc below passes",
        )
    return Check("distro", Status.PASS, d.name or f"{d.id} {d.version}".strip())


def _check_glibc(facts: MachineFacts, target: ResolvedTarget) -> Check:
    need = target.virtual_packages.get("__glibc")
    have = facts.glibc
    if have is None:
        return Check(
            "glibc",
            Status.WARN,
            f"cannot read the C library version ({facts.notes.get('glibc', 'no answer')}); "
            "conda-forge linux packages need glibc, musl distributions (Alpine) cannot run them",
            "use a glibc-based distribution (Debian, Ubuntu, Fedora, RHEL...)",
        )
    if need is None:
        return Check("glibc", Status.PASS, f"glibc {have}; target {target.name} sets no __glibc")
    need_v = need.split()[0]
    if version_tuple(have) >= version_tuple(need_v):
        return Check("glibc", Status.PASS, f"glibc {have} >= {need_v} (target's __glibc)")
    return Check(
        "glibc",
        Status.FAIL,
        f"glibc {have} is older than {need_v}, which target {target.name}'s packages were locked for",
        f"use a distribution with glibc >= {need_v}, or lower __glibc in envspec.yml and re-lock",
    )


def _check_kernel(facts: MachineFacts, target: ResolvedTarget) -> Check | None:
    need = target.virtual_packages.get("__linux")
    if need is None:
        return None
    release = facts.platform.release
    have = release.split("-")[0]
    if not have or not have[0].isdigit():
        return Check("kernel", Status.WARN, f"cannot read the kernel version from {release!r}", None)
    need_v = need.split()[0]
    if version_tuple(have) >= version_tuple(need_v):
        return Check("kernel", Status.PASS, f"Linux kernel {have} >= {need_v} (target's __linux)")
    return Check(
        "kernel",
        Status.WARN,
        f"Linux kernel {have} is older than {need_v}, the __linux the lock assumed: "
        "packages that need a newer kernel may fail",
        f"update the kernel to >= {need_v}, or lower __linux in envspec.yml and re-lock",
    )


def _check_rosetta(facts: MachineFacts, target: ResolvedTarget) -> Check:
    if facts.rosetta:
        if target.subdir == "osx-arm64":
            return Check(
                "rosetta",
                Status.FAIL,
                "this Python runs under Rosetta (sysctl.proc_translated = 1): a conda started from it "
                "installs Intel (osx-64) packages, and Intel torch has no MPS",
                "use an arm64 Python and conda (Miniforge3-MacOSX-arm64); with an Intel conda set "
                "CONDA_SUBDIR=osx-arm64 (`conda config --env --set subdir osx-arm64`)",
            )
        return Check(
            "rosetta",
            Status.WARN,
            "this Python runs under Rosetta (sysctl.proc_translated = 1): Intel packages, CPU only",
            "on Apple silicon prefer an arm64 Python and the osx-arm64 target",
        )
    if facts.rosetta is None and not facts.apple_silicon:
        return Check(
            "rosetta",
            Status.WARN,
            f"cannot tell whether Python runs under Rosetta ({facts.notes.get('rosetta', 'no answer')})",
            "run `sysctl -n sysctl.proc_translated` (1 means Rosetta)",
        )
    if facts.apple_silicon:
        return Check("rosetta", Status.PASS, f"native arm64 Python on Apple silicon ({facts.platform.machine})")
    return Check("rosetta", Status.PASS, "Intel Mac: Rosetta does not apply")


def _check_macos(facts: MachineFacts, target: ResolvedTarget) -> Check:
    need = target.virtual_packages.get("__osx", "0").split()[0]
    why = "target's __osx"
    rule_min = ACCELERATOR_RULES[target.accelerator].min_virtual.get("__osx")
    if rule_min and version_tuple(rule_min) > version_tuple(need):
        need, why = rule_min, f"{target.accelerator.upper()} minimum"
    elif target.accelerator == "mps":
        why += " and MPS minimum"
    have = facts.macos_version
    if have is None:
        return Check(
            "macos",
            Status.WARN,
            f"macOS version unknown ({facts.notes.get('macos', 'no answer')}); need >= {need}",
            "run `sw_vers -productVersion`",
        )
    if version_tuple(have) >= version_tuple(need):
        return Check("macos", Status.PASS, f"macOS {have} >= {need} ({why})")
    return Check(
        "macos",
        Status.FAIL,
        f"macOS {have} is older than {need} ({why}) that target {target.name}'s torch needs",
        f"update macOS to {need} or later (System Settings > General > Software Update)",
    )


def _check_conda_subdir(facts: MachineFacts, target: ResolvedTarget) -> Check | None:
    env_subdir = facts.conda_subdir_env
    if env_subdir and env_subdir != target.subdir:
        return Check(
            "conda-subdir",
            Status.FAIL,
            f"CONDA_SUBDIR={env_subdir} makes conda solve for {env_subdir}, not {target.subdir}",
            f"unset CONDA_SUBDIR or set CONDA_SUBDIR={target.subdir}",
        )
    wrong = [t for t in facts.conda_tools if t.platform and t.platform != target.subdir]
    if wrong and not env_subdir:
        tool = wrong[0]
        return Check(
            "conda-subdir",
            Status.WARN,
            f"{tool.name} at {tool.path} is built for {tool.platform}: lockfiles/{target.name}.lock installs as "
            f"locked, but `{tool.name} env create -f environment-{target.name}.yml` would solve {tool.platform} "
            "packages",
            f"set CONDA_SUBDIR={target.subdir} (`conda config --env --set subdir {target.subdir}`) "
            f"or install a native {target.subdir} conda",
        )
    if env_subdir or any(t.platform for t in facts.conda_tools):
        return Check("conda-subdir", Status.PASS, f"conda installs {target.subdir} packages")
    return None


def _alternative(
    targets: Sequence[ResolvedTarget], target: ResolvedTarget, ok: Callable[[ResolvedTarget], bool], what: str
) -> str:
    """'use --target X' for a target on the same subdir that passes ``ok``, else how to add one."""
    names = [t.name for t in targets if t.subdir == target.subdir and t.name != target.name and ok(t)]
    if names:
        return f"use --target {names[0]}"
    return f"add a target for {target.subdir} with {what} to envspec.yml"


def _cuda_checks(facts: MachineFacts, target: ResolvedTarget, targets: Sequence[ResolvedTarget]) -> list[Check]:
    nv = facts.nvidia
    cuda = target_cuda(target)
    cpu_way = _alternative(targets, target, lambda t: t.accelerator == "cpu", "accelerator: cpu")
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
                f"on a machine with an NVIDIA GPU install its driver; here {cpu_way}, "
                "or accept CPU with `envspec smoke --allow-cpu`",
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
        checks.append(_check_driver(facts, target, driver, cuda, targets))
    elif cuda is None:
        checks.append(Check("nvidia-driver", Status.WARN, f"target {target.name} names no CUDA version", None))
    gpu = nv.best
    if gpu is not None and cuda:
        checks.append(_check_compute_cap(gpu.compute_cap, cuda, target, targets))
    if gpu is not None:
        checks.append(_check_gpu_memory(gpu.memory_mib, gpu.name))
    return checks


def _check_driver(
    facts: MachineFacts, target: ResolvedTarget, driver: str, cuda: str, targets: Sequence[ResolvedTarget]
) -> Check:
    system = facts.platform.system
    floor = driver_floor(cuda, system)
    if floor is None:
        return Check(
            "nvidia-driver",
            Status.WARN,
            f"driver {driver}; no driver table entry for CUDA {cuda} (known: "
            f"{', '.join(r.cuda for r in CUDA_DRIVER_TABLE)})",
            "add a row to CUDA_DRIVER_TABLE in envspec/doctor.py from NVIDIA's release notes",
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


def _check_compute_cap(cc: str | None, cuda: str, target: ResolvedTarget, targets: Sequence[ResolvedTarget]) -> Check:
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
            f"{_gib(size)} of GPU memory: less than SD-1's fp16 weights plus activations need "
            f"({_gib(GPU_MEMORY_FAIL_BELOW)})",
            "use a GPU with >= 6 GiB, or run on the CPU",
        )
    if size < GPU_MEMORY_WARN_BELOW:
        return Check(
            "gpu-memory",
            Status.WARN,
            f"{_gib(size)} of GPU memory: SD-1 fp16 at 512x512 is tight below {_gib(GPU_MEMORY_WARN_BELOW)}",
            "enable attention slicing or use smaller images",
        )
    return Check("gpu-memory", Status.PASS, f"{_gib(size)} of GPU memory (SD-1 fp16 512x512 fits)")


# --------------------------------------------------------------------------------------------
# Recommendation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fit:
    target: ResolvedTarget
    tier: int  # 0 native subdir, 1 emulated
    present: bool  # the machine has the target's accelerator
    fails: int
    warns: int

    def key(self, order: int) -> tuple[Any, ...]:
        cuda = target_cuda(self.target)
        newest_cuda = tuple(-n for n in version_tuple(cuda)) if cuda else ()
        return (
            self.tier,
            not self.present,
            self.fails,
            ACCELERATOR_PREFERENCE.get(self.target.accelerator, 9),
            self.warns,
            newest_cuda,
            order,
        )


def rank_targets(facts: MachineFacts, targets: Sequence[ResolvedTarget]) -> list[Fit]:
    """The targets this machine can run, best first (empty when none is for its platform)."""
    hw = facts.hardware_subdir
    if hw is None:
        return []
    tiers = {hw: 0, **dict.fromkeys(EMULATED_SUBDIRS.get(hw, ()), 1)}
    fits = []
    for order, target in enumerate(targets):
        tier = tiers.get(target.subdir)
        if tier is None:
            continue
        checks = [c for c in machine_checks(facts, target, ()) if c.name != "platform"]
        fits.append(
            (
                order,
                Fit(
                    target=target,
                    tier=tier,
                    present=accelerator_present(facts, target.accelerator),
                    fails=sum(c.status is Status.FAIL for c in checks),
                    warns=sum(c.status is Status.WARN for c in checks),
                ),
            )
        )
    return [fit for _, fit in sorted(fits, key=lambda pair: pair[1].key(pair[0]))]


def recommend_target(facts: MachineFacts, targets: Sequence[ResolvedTarget]) -> ResolvedTarget | None:
    ranked = rank_targets(facts, targets)
    return ranked[0].target if ranked else None


# --------------------------------------------------------------------------------------------
# Resource checks: disk, memory, installer, checkpoint, compiler
# --------------------------------------------------------------------------------------------


def resource_checks(
    facts: MachineFacts, target: ResolvedTarget | None, estimate: EnvEstimate | None, project_root: str
) -> list[Check]:
    checks = []
    if facts.platform.system == "Darwin":
        checks.append(_check_xcode(facts, target))
    if target is not None and estimate is not None:
        checks.append(_check_disk(facts, estimate, project_root))
    checks.append(_check_memory(facts, target))
    checks.append(_check_installer(facts, target))
    checks.append(_check_checkpoint(facts))
    return checks


def _check_xcode(facts: MachineFacts, target: ResolvedTarget | None) -> Check:
    why = needs_compiler(target) if target else None
    if why is None:
        return Check("xcode-clt", Status.PASS, "not needed: the spec has no compiler packages and no pip packages")
    if facts.xcode_clt:
        return Check("xcode-clt", Status.PASS, f"Xcode command-line tools present ({why})")
    if facts.xcode_clt is None:
        return Check("xcode-clt", Status.WARN, f"cannot tell whether Xcode's CLT are installed ({why})", None)
    return Check("xcode-clt", Status.FAIL, f"Xcode command-line tools missing and {why}", "xcode-select --install")


def _check_disk(facts: MachineFacts, estimate: EnvEstimate, project_root: str) -> Check:
    has_checkpoint = facts.checkpoint_size is not None and facts.checkpoint_size >= CHECKPOINT_SUSPICIOUS_BELOW
    checkpoint = 0 if has_checkpoint else CHECKPOINT_BYTES
    need = estimate.bytes + checkpoint
    parts = f"environment ~{_gib(estimate.bytes)} ({estimate.source})"
    if checkpoint:
        parts += f" + {_gib(checkpoint)} for an SD-1 checkpoint"
    free = facts.disk_free
    if free is None:
        return Check("disk", Status.WARN, f"free space unknown ({facts.notes.get('disk', 'no answer')}); need {parts}")
    fix = (
        "free some space, or put the environment and package cache on a bigger disk "
        "(--prefix, CONDA_PKGS_DIRS / RATTLER_CACHE_DIR)"
    )
    if free < need:
        return Check("disk", Status.FAIL, f"{_gib(free)} free at {project_root}, need ~{_gib(need)}: {parts}", fix)
    if free < need * DISK_HEADROOM:
        return Check(
            "disk",
            Status.WARN,
            f"{_gib(free)} free at {project_root}, just above the ~{_gib(need)} needed: {parts}",
            fix,
        )
    return Check("disk", Status.PASS, f"{_gib(free)} free, need ~{_gib(need)}: {parts}")


def _check_memory(facts: MachineFacts, target: ResolvedTarget | None) -> Check:
    total = facts.memory_total
    shared = " (shared with the GPU)" if target is not None and target.accelerator == "mps" else ""
    if total is None:
        return Check("memory", Status.WARN, f"RAM unknown ({facts.notes.get('memory', 'no answer')})", None)
    if total < RAM_FAIL_BELOW:
        return Check(
            "memory",
            Status.FAIL,
            f"{_gib(total)} RAM{shared}: SD-1 needs >= {_gib(RAM_FAIL_BELOW)} to load",
            "use a machine with >= 8 GiB",
        )
    if total < RAM_WARN_BELOW:
        return Check(
            "memory",
            Status.WARN,
            f"{_gib(total)} RAM{shared}: loading SD-1 will swap below {_gib(RAM_WARN_BELOW)}",
            "close other programs; expect slow loading",
        )
    return Check("memory", Status.PASS, f"{_gib(total)} RAM{shared}")


def install_commands(facts: MachineFacts, target: ResolvedTarget | None) -> list[str]:
    """The commands that install this target's explicit lockfile with the tools found here."""
    env = target.env_name if target else "ENV"
    file = f"lockfiles/{target.name}.lock" if target else "lockfiles/TARGET.lock"
    found = {t.name for t in facts.conda_tools}
    commands = [r.command.format(env=env, file=file) for r in INSTALL_RECIPES if r.tool in found]
    commands.append(ENVSPEC_INSTALL.format(target=target.name if target else "TARGET"))
    return commands


def _check_installer(facts: MachineFacts, target: ResolvedTarget | None) -> Check:
    commands = install_commands(facts, target)
    if not facts.conda_tools:
        return Check(
            "installer",
            Status.PASS,
            f"no conda, mamba or micromamba; `{commands[-1]}` installs the lockfile itself (py-rattler, no conda)",
            None,
        )
    described = []
    unreadable = []
    for tool in facts.conda_tools:
        if tool.version is None:
            unreadable.append(tool.name)
            described.append(f"{tool.name} (version unknown)")
            continue
        text = f"{tool.name} {tool.version}"
        if tool.name == "conda":
            if version_tuple(tool.version) >= version_tuple(CONDA_ENV_CREATE_EXPLICIT_SINCE):
                text += " (`conda env create -f` reads explicit files too, with a solve)"
            else:
                text += (
                    f" (older than {CONDA_ENV_CREATE_EXPLICIT_SINCE}: `conda env create -f` cannot read explicit files)"
                )
        described.append(text)
    reason = f"{'; '.join(described)}; install with `{commands[0]}`"
    if unreadable:
        return Check(
            "installer",
            Status.WARN,
            reason,
            f"check `{unreadable[0]} --version` works; `{commands[-1]}` needs no conda",
        )
    return Check("installer", Status.PASS, reason)


def _check_checkpoint(facts: MachineFacts) -> Check:
    size = facts.checkpoint_size
    path = facts.checkpoint_path
    if size is None:
        return Check(
            "checkpoint",
            Status.PASS,
            f"no checkpoint at {path}: the smoke test uses its tiny built-in model (--model PATH for a real one)",
        )
    if size < CHECKPOINT_SUSPICIOUS_BELOW:
        return Check(
            "checkpoint",
            Status.WARN,
            f"{path} is only {size / 1e6:.1f} MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a "
            "git-lfs pointer?)",
            "download the checkpoint again",
        )
    return Check(
        "checkpoint",
        Status.PASS,
        f"{path} ({size / 1e9:.2f} GB); a .ckpt is a pickle: the smoke test loads it only with --trust-pickle",
    )


# --------------------------------------------------------------------------------------------
# The whole report
# --------------------------------------------------------------------------------------------

SCHEMA: Final = "envspec-doctor/1"


@dataclass(frozen=True)
class Report:
    facts: MachineFacts
    recommended: ResolvedTarget | None
    target: ResolvedTarget | None
    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status is Status.FAIL for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(c.status is s for c in self.checks) for s in Status}

    def as_json(self, spec_path: str) -> dict[str, Any]:
        f = self.facts
        return {
            "schema": SCHEMA,
            "spec": spec_path,
            "recommended": self.recommended.name if self.recommended else None,
            "target": self.target.name if self.target else None,
            "ok": not self.failed,
            "summary": self.counts(),
            "machine": {
                "system": f.platform.system,
                "machine": f.platform.machine,
                "python": f.platform.python_version,
                "python_subdir": f.python_subdir,
                "hardware_subdir": f.hardware_subdir,
                "rosetta": f.rosetta,
                "macos": f.macos_version,
                "distro": None if f.distro is None else {"id": f.distro.id, "version": f.distro.version},
                "glibc": f.glibc,
                "nvidia": {
                    "status": f.nvidia.status,
                    "driver": f.nvidia.best.driver if f.nvidia.best else f.nvidia.driver,
                    "gpus": [
                        {"name": g.name, "memory_mib": g.memory_mib, "compute_cap": g.compute_cap}
                        for g in f.nvidia.gpus
                    ],
                },
                "memory_total": f.memory_total,
                "disk_free": f.disk_free,
                "conda_tools": [
                    {"name": t.name, "version": t.version, "platform": t.platform, "path": t.path}
                    for t in f.conda_tools
                ],
            },
            "install_commands": install_commands(f, self.target),
            "checks": [c.as_json() for c in self.checks],
        }


def diagnose(
    facts: MachineFacts,
    targets: Sequence[ResolvedTarget],
    *,
    chosen: ResolvedTarget | None = None,
    estimate: EnvEstimate | None = None,
    project_root: str = ".",
) -> Report:
    """All checks for ``chosen`` (default: the recommended target)."""
    recommended = recommend_target(facts, targets)
    target = chosen or recommended
    checks: list[Check] = []
    if target is None:
        hw = facts.hardware_subdir or f"{facts.platform.system} {facts.platform.machine}"
        have = ", ".join(sorted({t.subdir for t in targets})) or "none"
        checks.append(
            Check(
                "platform",
                Status.FAIL,
                f"no target in the spec is for this machine ({hw}); targets are for: {have}",
                f"add a target with subdir: {hw} to envspec.yml, or pass --target to check another",
            )
        )
    else:
        checks.extend(machine_checks(facts, target, targets))
        if estimate is None:
            estimate = estimate_env_bytes(None, target)
    checks.extend(resource_checks(facts, target, estimate, project_root))
    return Report(facts=facts, recommended=recommended, target=target, checks=tuple(checks))
