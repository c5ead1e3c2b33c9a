"""What this machine is: facts gathered through a ``Probe``, and the pure parsers behind them.

``collect_facts`` is the only function here that asks the probe anything; every parser is a pure
function of the text a real tool prints (``sw_vers``, ``sysctl``, ``nvidia-smi`` CSV,
``conda --version``, ``/proc/driver/nvidia/version``) and returns ``None`` for text it does not
recognise, never raising. Unknown facts stay ``None`` with a note saying why, so the doctor can
report a WARN with the reason instead of crashing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Final, Literal

from envspec import settings
from envspec.doctor.checkpoint import CHECKPOINT_RELPATH
from envspec.doctor.probe import DistroFacts, PlatformFacts, Probe, ProbeResult, SystemProbe
from envspec.errors import PlatformMismatch

#: Set to a conda subdir, it is what ``host_subdir`` answers (e.g. osx-64 to install an Intel
#: environment on an M1 on purpose).
HOST_SUBDIR_ENV: Final = settings.HOST_SUBDIR_ENV

#: conda subdir of a (system, machine) pair as ``platform`` reports it (machine compared in lower
#: case: Windows says AMD64/ARM64). The one table of it: doctor and install both use ``subdir_of``
#: (or ``host_subdir``, which also knows Rosetta).
_SUBDIRS: Final[dict[tuple[str, str], str]] = {
    ("Linux", "x86_64"): "linux-64",
    ("Linux", "amd64"): "linux-64",
    ("Linux", "aarch64"): "linux-aarch64",
    ("Linux", "arm64"): "linux-aarch64",
    ("Linux", "ppc64le"): "linux-ppc64le",
    ("Darwin", "x86_64"): "osx-64",
    ("Darwin", "arm64"): "osx-arm64",
    ("Windows", "amd64"): "win-64",
    ("Windows", "x86_64"): "win-64",
    ("Windows", "arm64"): "win-arm64",
}

NVIDIA_QUERY: Final = ("--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader,nounits")
#: Drivers before ~510 do not know the compute_cap field; ask again without it.
NVIDIA_QUERY_NO_CC: Final = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits")
#: Where older Windows drivers put nvidia-smi (newer ones put it in System32, on PATH).
NVIDIA_SMI_WINDOWS_FALLBACK: Final = r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe"
NVIDIA_PROC_VERSION: Final = "/proc/driver/nvidia/version"

CONDA_TOOLS: Final = ("conda", "mamba", "micromamba")

#: Windows: paths over 260 characters work only with this DWORD set to 1 (and an aware program).
LONG_PATHS_KEY: Final = r"SYSTEM\CurrentControlSet\Control\FileSystem"
LONG_PATHS_VALUE: Final = "LongPathsEnabled"

NvidiaStatus = Literal["found", "no-gpu", "no-driver", "driver-error", "unparsable", "smi-missing"]


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_mib: int | None
    compute_cap: str | None  # "9.0"


@dataclass(frozen=True)
class NvidiaFacts:
    """What ``nvidia-smi`` (or the kernel module) said.

    ``found``: GPUs listed; ``no-gpu``: the driver runs but sees no GPU; ``no-driver``: neither
    nvidia-smi nor the kernel module exists; ``driver-error``: nvidia-smi cannot talk to the driver;
    ``unparsable``: nvidia-smi printed something we cannot read; ``smi-missing``: the kernel module is
    loaded (driver version known) but nvidia-smi is not on PATH.
    """

    status: NvidiaStatus
    gpus: tuple[GpuInfo, ...] = ()
    driver: str | None = None
    detail: str = ""

    @property
    def best(self) -> GpuInfo | None:
        """The GPU with the most memory (the one a single-GPU run should use)."""
        if not self.gpus:
            return None
        return max(self.gpus, key=lambda g: g.memory_mib or 0)


@dataclass(frozen=True)
class CondaTool:
    name: str  # "conda", "mamba", "micromamba"
    path: str
    version: str | None  # "25.9.1"; None when --version printed something unreadable
    platform: str | None = None  # the subdir the tool installs for (conda info), when known
    detail: str = ""


@dataclass(frozen=True)
class MachineFacts:
    platform: PlatformFacts
    python_subdir: str | None  # subdir of the running Python build
    hardware_subdir: str | None  # subdir the hardware runs natively (osx-arm64 on an M1, even under Rosetta)
    rosetta: bool | None = None  # the running Python is translated by Rosetta 2
    apple_silicon: bool | None = None
    macos_version: str | None = None
    distro: DistroFacts | None = None
    glibc: str | None = None
    nvidia: NvidiaFacts = field(default_factory=lambda: NvidiaFacts("no-driver"))
    disk_free: int | None = None
    memory_total: int | None = None
    conda_tools: tuple[CondaTool, ...] = ()
    conda_subdir_env: str | None = None  # $CONDA_SUBDIR
    xcode_clt: bool | None = None  # Xcode command-line tools present (macOS only)
    checkpoint_path: str = CHECKPOINT_RELPATH
    checkpoint_size: int | None = None
    notes: dict[str, str] = field(default_factory=dict)  # fact name -> why it is unknown
    forced_subdir: str | None = None  # $ENVSPEC_HOST_SUBDIR: the machine is taken to be this subdir
    long_paths: bool | None = None  # Windows: LongPathsEnabled is set (None: unknown, or not Windows)

    @property
    def install_subdir(self) -> str | None:
        """The subdir a target must be built for to install here (``$ENVSPEC_HOST_SUBDIR`` wins)."""
        return self.forced_subdir or self.hardware_subdir


# --------------------------------------------------------------------------------------------
# Pure parsers: text in, value or None out. They never raise on odd input.
# --------------------------------------------------------------------------------------------

_VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def subdir_of(system: str, machine: str) -> str | None:
    return _SUBDIRS.get((system, machine.lower()))


def parse_sw_vers(text: str) -> str | None:
    """``sw_vers -productVersion`` prints "15.1" or "14.6.1"."""
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if re.fullmatch(r"\d+(\.\d+){0,2}", line) else None


def parse_sysctl_flag(result: ProbeResult | None) -> bool | None:
    """``sysctl -n NAME`` prints "1" or "0"; a missing oid (Intel Macs) means "no"."""
    if result is None:
        return None
    out = result.stdout.strip()
    if result.ok and out in ("0", "1"):
        return out == "1"
    if "unknown oid" in (result.stderr + result.stdout).lower():
        return False
    return None


def parse_conda_version(text: str) -> str | None:
    """``conda --version`` -> "conda 25.9.1"; ``mamba --version`` (1.x) prints "mamba 1.5.8\\nconda 24.3.0";
    ``micromamba --version`` and mamba 2 print "2.0.5". The first version-looking word wins."""
    for line in text.strip().splitlines():
        match = re.fullmatch(r"\s*(?:(?:conda|mamba|micromamba)\s+)?v?(\d+\.\d+(?:\.\d+)?\S*)\s*", line)
        if match:
            return match.group(1)
    return None


def parse_conda_info_platform(text: str) -> str | None:
    """``conda info --json`` has ``"platform": "osx-arm64"``."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    value = data.get("platform") if isinstance(data, dict) else None
    return value if isinstance(value, str) and re.fullmatch(r"[a-z]+-[a-z0-9_]+", value) else None


def parse_micromamba_info_platform(text: str) -> str | None:
    """``micromamba info`` prints a line "       platform : osx-arm64"."""
    match = re.search(r"^\s*platform\s*:\s*([a-z]+-[a-z0-9_]+)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def parse_proc_driver_version(text: str) -> str | None:
    """``/proc/driver/nvidia/version``: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul ..."."""
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


class NvidiaParseError(ValueError):
    pass


def parse_nvidia_smi_csv(text: str) -> tuple[GpuInfo, ...]:
    """Parse ``nvidia-smi --query-gpu=name,driver_version,memory.total[,compute_cap] --format=csv,noheader,nounits``.

    One GPU per line: ``NVIDIA H100 80GB HBM3, 580.65.06, 81559, 9.0``. Memory may carry " MiB" (when
    ``nounits`` was not honoured), and any field may be "[N/A]" or "[Not Supported]". Raises
    ``NvidiaParseError`` (a ValueError) with a short reason for anything else.
    """
    gpus = []
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise NvidiaParseError("nvidia-smi printed nothing")
    for line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (3, 4):
            raise NvidiaParseError(f"expected 3 or 4 comma-separated fields, got {len(fields)}: {line[:80]!r}")
        name, driver, memory = fields[:3]
        cc = fields[3] if len(fields) == 4 else None
        if not name or name.startswith("["):
            raise NvidiaParseError(f"no GPU name in {line[:80]!r}")
        if not re.fullmatch(r"\d{3,4}(\.\d{1,3}){1,2}", driver):
            raise NvidiaParseError(f"driver version {driver[:40]!r} is not like 580.65.06")
        mem_match = re.fullmatch(r"(\d+)(?:\s*MiB)?", memory)
        memory_mib = int(mem_match.group(1)) if mem_match else None
        if memory_mib is None and not memory.startswith("["):
            raise NvidiaParseError(f"memory {memory[:40]!r} is not a number of MiB")
        compute_cap = None
        if cc is not None:
            if re.fullmatch(r"\d{1,2}\.\d{1,2}", cc):
                compute_cap = cc
            elif not cc.startswith("["):
                raise NvidiaParseError(f"compute capability {cc[:40]!r} is not like 8.6")
        gpus.append(GpuInfo(name=name, driver=driver, memory_mib=memory_mib, compute_cap=compute_cap))
    return tuple(gpus)


_NO_DEVICES = re.compile(r"no devices were found", re.IGNORECASE)
_NO_COMM = re.compile(r"couldn't communicate with the nvidia driver|failed to initialize nvml", re.IGNORECASE)
_BAD_FIELD = re.compile(r"not a valid field to query|invalid field", re.IGNORECASE)


def interpret_nvidia_smi(
    result: ProbeResult | None, retry: ProbeResult | None = None, proc_version: str | None = None
) -> NvidiaFacts:
    """Turn nvidia-smi's answers into ``NvidiaFacts``.

    ``result`` is the full query; ``retry`` the query without compute_cap (asked when the driver
    rejected the field); ``proc_version`` the text of ``/proc/driver/nvidia/version`` if any.
    """
    proc_driver = parse_proc_driver_version(proc_version) if proc_version else None
    if result is None:
        if proc_driver:
            return NvidiaFacts(
                "smi-missing", driver=proc_driver, detail=f"nvidia-smi not found; kernel module {proc_driver} is loaded"
            )
        return NvidiaFacts("no-driver", detail="no nvidia-smi and no NVIDIA kernel module")
    if retry is not None and _BAD_FIELD.search(result.stdout + result.stderr):
        result = retry
    text = result.stdout + "\n" + result.stderr
    if _NO_DEVICES.search(text):
        return NvidiaFacts("no-gpu", driver=proc_driver, detail="nvidia-smi: No devices were found")
    if _NO_COMM.search(text):
        return NvidiaFacts("driver-error", driver=proc_driver, detail=_first_line(text))
    if not result.ok:
        return NvidiaFacts(
            "unparsable",
            driver=proc_driver,
            detail=f"nvidia-smi exited {result.returncode}: {_first_line(text) or 'no output'}",
        )
    try:
        gpus = parse_nvidia_smi_csv(result.stdout)
    except NvidiaParseError as exc:
        return NvidiaFacts("unparsable", driver=proc_driver, detail=f"cannot read nvidia-smi output: {exc}")
    return NvidiaFacts("found", gpus=gpus, driver=gpus[0].driver)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:160]
    return ""


# --------------------------------------------------------------------------------------------
# Gathering: the one place that asks the probe.
# --------------------------------------------------------------------------------------------


def _apple_silicon(probe: Probe, plat: PlatformFacts) -> tuple[bool | None, bool]:
    """(Python runs under Rosetta 2, the Mac is Apple silicon) for a Mac. Under Rosetta an Intel
    Python reports x86_64 although the hardware is arm64 (what an environment with MPS needs)."""
    rosetta = parse_sysctl_flag(probe.run(["sysctl", "-n", "sysctl.proc_translated"]))
    arm64_hw = parse_sysctl_flag(probe.run(["sysctl", "-n", "hw.optional.arm64"]))
    return rosetta, plat.machine == "arm64" or bool(rosetta) or bool(arm64_hw)


def host_subdir(probe: Probe | None = None) -> str:
    """The conda subdir of this machine's hardware: what a target must be built for to install here.

    ``$ENVSPEC_HOST_SUBDIR`` overrides it. An Intel Python under Rosetta on Apple silicon answers
    osx-arm64, as the doctor's ``hardware_subdir`` does. ``PlatformMismatch`` when no conda subdir
    is known for the machine.
    """
    probe = probe or SystemProbe()
    override = probe.env(HOST_SUBDIR_ENV)
    if override:
        return override
    plat = probe.platform()
    subdir = subdir_of(plat.system, plat.machine)
    if plat.system == "Darwin" and _apple_silicon(probe, plat)[1]:
        subdir = "osx-arm64"
    if subdir is None:
        raise PlatformMismatch(f"no conda subdir is known for this machine ({plat.system} {plat.machine})")
    return subdir


def _long_paths(probe: Probe) -> bool | None:
    value = probe.registry_dword(LONG_PATHS_KEY, LONG_PATHS_VALUE)
    return None if value is None else value == 1


def collect_facts(probe: Probe, project_root: str, *, hardware_only: bool = False) -> MachineFacts:
    """Ask the probe everything the doctor needs. ``hardware_only`` skips the conda tools, disk and
    checkpoint (what choosing a target does not need; `conda info` alone can take a second)."""
    plat = probe.platform()
    notes: dict[str, str] = {}
    python_subdir = subdir_of(plat.system, plat.machine)
    hardware_subdir = python_subdir

    rosetta = apple_silicon = xcode_clt = None
    macos_version = None
    if plat.system == "Darwin":
        rosetta, apple_silicon = _apple_silicon(probe, plat)
        if rosetta is None and plat.machine != "arm64":
            notes["rosetta"] = "sysctl -n sysctl.proc_translated gave no answer"
        if apple_silicon:
            hardware_subdir = "osx-arm64"
        sw = probe.run(["sw_vers", "-productVersion"])
        macos_version = parse_sw_vers(sw.stdout) if sw is not None and sw.ok else None
        if macos_version is None:
            notes["macos"] = "sw_vers -productVersion " + ("not found" if sw is None else "gave no version")
        clt = probe.run(["xcode-select", "-p"])
        xcode_clt = None if clt is None else clt.ok

    distro = glibc = None
    if plat.system == "Linux":
        distro = probe.distro()
        if distro is None:
            notes["distro"] = "no /etc/os-release"
        glibc = probe.glibc()
        if glibc is None:
            notes["glibc"] = "not a GNU C library (musl?) or its version is unreadable"

    nvidia = NvidiaFacts("no-driver", detail="macOS has no NVIDIA CUDA driver")
    if plat.system != "Darwin":
        smi_exe = "nvidia-smi"
        smi = probe.run([smi_exe, *NVIDIA_QUERY])
        if smi is None and plat.system == "Windows":
            smi_exe = NVIDIA_SMI_WINDOWS_FALLBACK
            smi = probe.run([smi_exe, *NVIDIA_QUERY])
        retry = None
        if smi is not None and _BAD_FIELD.search(smi.stdout + smi.stderr):
            retry = probe.run([smi_exe, *NVIDIA_QUERY_NO_CC])
        proc = probe.read_file(NVIDIA_PROC_VERSION) if plat.system == "Linux" else None
        nvidia = interpret_nvidia_smi(smi, retry, proc)

    tools = []
    for name in () if hardware_only else CONDA_TOOLS:
        path = probe.which(name)
        if path is None:
            continue
        got = probe.run([name, "--version"])
        version = parse_conda_version(got.stdout + "\n" + got.stderr) if got is not None and got.ok else None
        platform = None
        if name == "micromamba":
            info = probe.run([name, "info"])
            platform = parse_micromamba_info_platform(info.stdout) if info is not None and info.ok else None
        else:
            info = probe.run([name, "info", "--json"])
            platform = parse_conda_info_platform(info.stdout) if info is not None and info.ok else None
        detail = "" if version else f"`{name} --version` printed no version"
        tools.append(CondaTool(name=name, path=path, version=version, platform=platform, detail=detail))

    root = project_root.rstrip("/\\")
    checkpoint = f"{root}/{CHECKPOINT_RELPATH}"
    memory = probe.memory_total()
    if memory is None:
        notes["memory"] = "total memory is unreadable"
    disk = None if hardware_only else probe.disk_free(root)
    if disk is None and not hardware_only:
        notes["disk"] = f"free space at {root} is unreadable"
    return MachineFacts(
        platform=plat,
        python_subdir=python_subdir,
        hardware_subdir=hardware_subdir,
        rosetta=rosetta,
        apple_silicon=apple_silicon,
        macos_version=macos_version,
        distro=distro,
        glibc=glibc,
        nvidia=nvidia,
        disk_free=disk,
        memory_total=memory,
        conda_tools=tuple(tools),
        conda_subdir_env=probe.env("CONDA_SUBDIR"),
        xcode_clt=xcode_clt,
        checkpoint_path=CHECKPOINT_RELPATH,
        checkpoint_size=None if hardware_only else probe.file_size(checkpoint),
        notes=notes,
        forced_subdir=probe.env(HOST_SUBDIR_ENV) or None,
        long_paths=None if plat.system != "Windows" or hardware_only else _long_paths(probe),
    )
