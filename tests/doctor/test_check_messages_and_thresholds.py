"""The doctor's checks word for word: every recorded machine's full diagnosis, the JSON document,
and each threshold of the GPU, platform, room and tool checks at its exact boundary.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from envspec.doctor.check import DOCTOR_ADVICE, UP_ADVICE, Check, Status, gib
from envspec.doctor.checkpoint import check_checkpoint
from envspec.doctor.diagnosis import SCHEMA, Diagnosis, diagnose, resource_checks
from envspec.doctor.gpu import (
    accelerator_present,
    arch_name,
    cuda_checks,
    driver_floor,
    max_cuda_for_driver,
    target_cuda,
)
from envspec.doctor.machine import (
    CondaTool,
    GpuInfo,
    MachineFacts,
    NvidiaFacts,
    NvidiaParseError,
    collect_facts,
    interpret_nvidia_smi,
    parse_conda_info_platform,
    parse_micromamba_info_platform,
    parse_nvidia_smi_csv,
    parse_proc_driver_version,
    parse_sw_vers,
)
from envspec.doctor.platform import check_platform, system_checks
from envspec.doctor.probe import DistroFacts, PlatformFacts, ProbeResult, RecordedProbe
from envspec.doctor.recommend import Fit, rank_targets, recommend_target
from envspec.doctor.resources import EnvEstimate, ModelsNeed, check_disk, check_memory, estimate_env_bytes
from envspec.doctor.tools import LONG_PATHS_FIX, check_installer, check_xcode, install_commands, needs_compiler
from envspec.spec.load import ResolvedTarget, Spec, load_spec

DATA = Path(__file__).resolve().parent.parent / "data" / "doctor"
REPO = Path(__file__).resolve().parents[2]
MiB = 1024**2
GiB = 1024**3


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(REPO / "envspec.yml")


def rows(checks: tuple[Check, ...] | list[Check]) -> list[tuple[str, str, str, str | None]]:
    return [(c.name, str(c.status), c.reason, c.fix) for c in checks]


# ---- every recorded machine, every check, word for word -------------------------------------

CKPT = (
    "checkpoint",
    "PASS",
    (
        "no checkpoint at models/ldm/stable-diffusion-v1/model.ckpt: the smoke test uses its tiny built-in model "
        "(--model PATH for a real one)"
    ),
    None,
)
NO_XCODE = (
    "xcode-clt",
    "PASS",
    "not needed: the spec has no compiler packages and builds no pip package from source",
    None,
)
UBUNTU = ("distro", "PASS", "Ubuntu 24.04.1 LTS", None)
GLIBC_239 = ("glibc", "PASS", "glibc 2.39 >= 2.28 (target's __glibc)", None)
KERNEL_68 = ("kernel", "PASS", "Linux kernel 6.8.0 >= 5.10 (target's __linux)", None)
LINUX_PLATFORM = ("platform", "PASS", "Linux x86_64 (linux-64); target linux-cuda is for linux-64", None)
DISK_CUDA_412 = (
    "disk",
    "PASS",
    (
        "412.0 GiB free, need ~16.0 GiB: environment ~12.0 GiB (default for a cuda environment) + 4.0 GiB for an "
        "SD-1 checkpoint"
    ),
    None,
)
RAM_64 = ("memory", "PASS", "64.0 GiB RAM", None)
RATTLER_INSTALL = (
    "installer",
    "PASS",
    (
        "no conda, mamba or micromamba; `envspec install linux-cuda --prefix ./env` installs the lockfile itself "
        "(py-rattler, no conda)"
    ),
    None,
)
DRIVER_580 = ("nvidia-driver", "PASS", "driver 580.65.06 >= 575.51.03 for CUDA 12.9 (supports CUDA <= 13.0)", None)
H100 = [
    ("nvidia-gpu", "PASS", "NVIDIA H100 80GB HBM3, driver 580.65.06", None),
    DRIVER_580,
    ("compute-capability", "PASS", "sm_90 (Hopper) >= sm_50 for CUDA 12", None),
    ("gpu-memory", "PASS", "79.6 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
]
CONDA_25 = "conda 25.9.1 (`conda env create -f` reads explicit files too, with a solve)"

EXPECTED: dict[str, tuple[str, list[tuple[str, str, str, str | None]]]] = {
    "intel-mac": (
        "osx-64",
        [
            ("platform", "PASS", "macOS x86_64 (osx-64); target osx-64 is for osx-64", None),
            ("rosetta", "PASS", "Intel Mac: Rosetta does not apply", None),
            ("macos", "PASS", "macOS 13.7.1 >= 13.0 (target's __osx)", None),
            ("conda-subdir", "PASS", "conda installs osx-64 packages", None),
            NO_XCODE,
            (
                "disk",
                "PASS",
                (
                    "120.0 GiB free, need ~8.0 GiB: environment ~4.0 GiB (default for a cpu environment) + 4.0 GiB for "
                    "an SD-1 checkpoint"
                ),
                None,
            ),
            ("memory", "PASS", "16.0 GiB RAM", None),
            (
                "installer",
                "PASS",
                f"{CONDA_25}; install with `conda create -n stable-diffusion-osx-64 --file lockfiles/osx-64.lock`",
                None,
            ),
            CKPT,
        ],
    ),
    "linux-garbage-smi": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            (
                "nvidia-gpu",
                "WARN",
                (
                    "cannot read nvidia-smi output: no GPU name in '[Unknown Error], [Unknown Error], [Unknown Error], "
                    "[Unknown Error]'; GPU, driver and memory unknown"
                ),
                "run `nvidia-smi` and check the driver works",
            ),
            DISK_CUDA_412,
            RAM_64,
            RATTLER_INSTALL,
            CKPT,
        ],
    ),
    "linux-h100-580": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            ("conda-subdir", "PASS", "conda installs linux-64 packages", None),
            *H100,
            DISK_CUDA_412,
            RAM_64,
            (
                "installer",
                "PASS",
                (
                    f"{CONDA_25}; install with `conda create -n stable-diffusion-linux-cuda --file "
                    "lockfiles/linux-cuda.lock`"
                ),
                None,
            ),
            CKPT,
        ],
    ),
    "linux-low-disk": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            *H100,
            (
                "disk",
                "FAIL",
                (
                    "5.0 GiB free at /home/ada/sd, need ~16.0 GiB: environment ~12.0 GiB (default for a cuda "
                    "environment) + 4.0 GiB for an SD-1 checkpoint"
                ),
                (
                    "free some space, or put the environment and package cache on a bigger disk (--prefix, "
                    "CONDA_PKGS_DIRS / RATTLER_CACHE_DIR)"
                ),
            ),
            RAM_64,
            RATTLER_INSTALL,
            CKPT,
        ],
    ),
    "linux-no-gpu": (  # no NVIDIA GPU: the shipped linux-cpu target (#22), no FAIL
        "linux-cpu",
        [
            ("platform", "PASS", "Linux x86_64 (linux-64); target linux-cpu is for linux-64", None),
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            (
                "disk",
                "PASS",
                (
                    "412.0 GiB free, need ~8.0 GiB: environment ~4.0 GiB (default for a cpu environment) + 4.0 GiB "
                    "for an SD-1 checkpoint"
                ),
                None,
            ),
            ("memory", "PASS", "16.0 GiB RAM", None),
            (
                "installer",
                "PASS",
                (
                    "no conda, mamba or micromamba; `envspec install linux-cpu --prefix ./env` installs the lockfile "
                    "itself (py-rattler, no conda)"
                ),
                None,
            ),
            CKPT,
        ],
    ),
    "linux-no-smi": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            (
                "nvidia-gpu",
                "WARN",
                (
                    "nvidia-smi not found; kernel module 580.65.06 is loaded; GPU model, memory and compute capability "
                    "unknown"
                ),
                "install the NVIDIA utilities (nvidia-smi, e.g. nvidia-utils) or put nvidia-smi on PATH",
            ),
            DRIVER_580,
            DISK_CUDA_412,
            RAM_64,
            RATTLER_INSTALL,
            CKPT,
        ],
    ),
    "linux-old-driver": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            ("distro", "PASS", "Rocky Linux 8.10 (Green Obsidian)", None),
            ("glibc", "PASS", "glibc 2.28 >= 2.28 (target's __glibc)", None),
            (
                "kernel",
                "WARN",
                (
                    "Linux kernel 4.18.0 is older than 5.10, the __linux the lock assumed: packages that need a newer "
                    "kernel may fail"
                ),
                "update the kernel to >= 5.10, or lower __linux in envspec.yml and re-lock",
            ),
            ("conda-subdir", "PASS", "conda installs linux-64 packages", None),
            ("nvidia-gpu", "PASS", "NVIDIA GeForce RTX 2080 Ti, driver 470.256.02", None),
            (
                "nvidia-driver",
                "FAIL",
                (
                    "driver 470.256.02 is too old for CUDA 12.9: needs >= 575.51.03 (>= 525.60.13 at the very least); "
                    "too old for any CUDA 12 build"
                ),
                "update the NVIDIA driver to >= 575.51.03",
            ),
            (
                "compute-capability",
                "WARN",
                "the driver did not report the GPU's compute capability (drivers before ~510 cannot)",
                "look the GPU up on developer.nvidia.com/cuda-gpus",
            ),
            ("gpu-memory", "PASS", "11.0 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
            DISK_CUDA_412,
            RAM_64,
            (
                "installer",
                "PASS",
                (
                    "mamba 1.5.8; install with `mamba create -n stable-diffusion-linux-cuda --file "
                    "lockfiles/linux-cuda.lock`"
                ),
                None,
            ),
            CKPT,
        ],
    ),
    "linux-pascal": (
        "linux-cuda",
        [
            LINUX_PLATFORM,
            UBUNTU,
            GLIBC_239,
            KERNEL_68,
            ("nvidia-gpu", "PASS", "NVIDIA GeForce GTX 1080, driver 580.95.05", None),
            ("nvidia-driver", "PASS", "driver 580.95.05 >= 575.51.03 for CUDA 12.9 (supports CUDA <= 13.0)", None),
            ("compute-capability", "PASS", "sm_61 (Pascal) >= sm_50 for CUDA 12", None),
            ("gpu-memory", "PASS", "8.0 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
            DISK_CUDA_412,
            RAM_64,
            RATTLER_INSTALL,
            CKPT,
        ],
    ),
    "m1-arm64": (
        "osx-arm64",
        [
            ("platform", "PASS", "macOS on Apple silicon (osx-arm64); target osx-arm64 is for osx-arm64", None),
            ("rosetta", "PASS", "native arm64 Python on Apple silicon (arm64)", None),
            ("macos", "PASS", "macOS 15.1 >= 14.0 (target's __osx and MPS minimum)", None),
            ("conda-subdir", "PASS", "conda installs osx-arm64 packages", None),
            NO_XCODE,
            (
                "disk",
                "PASS",
                (
                    "180.0 GiB free, need ~8.0 GiB: environment ~4.0 GiB (default for a mps environment) + 4.0 GiB for "
                    "an SD-1 checkpoint"
                ),
                None,
            ),
            ("memory", "PASS", "16.0 GiB RAM (shared with the GPU)", None),
            (
                "installer",
                "PASS",
                (
                    "micromamba 2.0.5; install with `micromamba create -n stable-diffusion-osx-arm64 -f "
                    "lockfiles/osx-arm64.lock`"
                ),
                None,
            ),
            CKPT,
        ],
    ),
    "m1-rosetta": (
        "osx-arm64",
        [
            ("platform", "PASS", "macOS on Apple silicon (osx-arm64); target osx-arm64 is for osx-arm64", None),
            (
                "rosetta",
                "FAIL",
                (
                    "this Python runs under Rosetta (sysctl.proc_translated = 1): a conda started from it installs "
                    "Intel (osx-64) packages, and Intel torch has no MPS"
                ),
                (
                    "use an arm64 Python and conda (Miniforge3-MacOSX-arm64); with an Intel conda set "
                    "CONDA_SUBDIR=osx-arm64 (`conda config --env --set subdir osx-arm64`)"
                ),
            ),
            ("macos", "PASS", "macOS 14.6.1 >= 14.0 (target's __osx and MPS minimum)", None),
            (
                "conda-subdir",
                "WARN",
                (
                    "conda at /recorded/bin/conda is built for osx-64: lockfiles/osx-arm64.lock installs as locked, "
                    "but `conda env create -f environment-osx-arm64.yml` would solve osx-64 packages"
                ),
                (
                    "set CONDA_SUBDIR=osx-arm64 (`conda config --env --set subdir osx-arm64`) or install a native "
                    "osx-arm64 conda"
                ),
            ),
            NO_XCODE,
            (
                "disk",
                "PASS",
                (
                    "95.0 GiB free, need ~8.0 GiB: environment ~4.0 GiB (default for a mps environment) + 4.0 GiB for "
                    "an SD-1 checkpoint"
                ),
                None,
            ),
            ("memory", "PASS", "8.0 GiB RAM (shared with the GPU)", None),
            (
                "installer",
                "PASS",
                (
                    "conda 23.7.4 (older than 25.5.0: `conda env create -f` cannot read explicit files); install with "
                    "`conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock`"
                ),
                None,
            ),
            CKPT,
        ],
    ),
    "windows-cuda": (
        "win-cuda",
        [
            ("platform", "PASS", "Windows AMD64 (win-64); target win-cuda is for win-64", None),
            ("conda-subdir", "PASS", "conda installs win-64 packages", None),
            ("nvidia-gpu", "PASS", "NVIDIA GeForce RTX 4090, driver 576.88", None),
            ("nvidia-driver", "PASS", "driver 576.88 >= 576.02 for CUDA 12.9 (supports CUDA <= 12.9)", None),
            ("compute-capability", "PASS", "sm_89 (Ada) >= sm_50 for CUDA 12", None),
            ("gpu-memory", "PASS", "24.0 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
            (
                "long-paths",
                "WARN",
                "LongPathsEnabled is off: a file path over 260 characters in an environment fails to install",
                LONG_PATHS_FIX,
            ),
            (
                "disk",
                "PASS",
                (
                    "300.0 GiB free, need ~16.0 GiB: environment ~12.0 GiB (default for a cuda environment) + 4.0 GiB "
                    "for an SD-1 checkpoint"
                ),
                None,
            ),
            ("memory", "PASS", "32.0 GiB RAM", None),
            (
                "installer",
                "PASS",
                f"{CONDA_25}; install with `conda create -n stable-diffusion-win-cuda --file lockfiles/win-cuda.lock`",
                None,
            ),
            CKPT,
        ],
    ),
}


def run_doctor(data: dict[str, Any], spec: Spec, target: str | None = None, **kw: Any) -> Diagnosis:
    facts = collect_facts(RecordedProbe(data), "/home/ada/sd")
    chosen = spec.resolve(target) if target else None
    return diagnose(facts, spec.resolve_all(), chosen=chosen, project_root="/home/ada/sd", **kw)


def test_every_recording_is_covered() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in DATA.glob("*.json"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_machine_diagnosis_word_for_word(spec: Spec, name: str) -> None:
    recommended, expected = EXPECTED[name]
    report = run_doctor(recording(name), spec)
    assert report.recommended is not None and report.recommended.name == recommended
    assert report.target == report.recommended
    assert rows(report.checks) == expected
    failed = any(status == "FAIL" for _, status, _, _ in expected)
    assert report.failed is failed
    assert report.counts() == {s: sum(row[1] == s for row in expected) for s in ("PASS", "WARN", "FAIL")}


# ---- the JSON document ------------------------------------------------------------------------


def test_json_document_of_a_gpu_machine(spec: Spec) -> None:
    report = run_doctor(recording("linux-h100-580"), spec)
    doc = report.as_json("envspec.yml")
    assert doc == {
        "schema": "envspec-doctor/1",
        "spec": "envspec.yml",
        "recommended": "linux-cuda",
        "target": "linux-cuda",
        "ok": True,
        "summary": {"PASS": 13, "WARN": 0, "FAIL": 0},
        "machine": {
            "system": "Linux",
            "machine": "x86_64",
            "python": "3.12.7",
            "python_subdir": "linux-64",
            "hardware_subdir": "linux-64",
            "rosetta": None,
            "macos": None,
            "distro": {"id": "ubuntu", "version": "24.04"},
            "glibc": "2.39",
            "nvidia": {
                "status": "found",
                "driver": "580.65.06",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "compute_cap": "9.0"}],
            },
            "memory_total": 68719476736,
            "disk_free": 442381631488,
            "conda_tools": [
                {"name": "conda", "version": "25.9.1", "platform": "linux-64", "path": "/recorded/bin/conda"}
            ],
        },
        "install_commands": [
            "conda create -n stable-diffusion-linux-cuda --file lockfiles/linux-cuda.lock",
            "envspec install linux-cuda --prefix ./env",
        ],
        "checks": [{"name": n, "status": s, "reason": r, "fix": f} for n, s, r, f in EXPECTED["linux-h100-580"][1]],
    }
    assert SCHEMA == "envspec-doctor/1"
    json.dumps(doc)  # a JSON document, nothing Python-only in it


def test_json_document_of_a_rosetta_mac_and_of_a_driver_without_smi(spec: Spec) -> None:
    doc = run_doctor(recording("m1-rosetta"), spec).as_json("x/envspec.yml")
    assert doc["spec"] == "x/envspec.yml"
    assert doc["ok"] is False
    assert doc["summary"] == {"PASS": 7, "WARN": 1, "FAIL": 1}
    machine = doc["machine"]
    assert (machine["system"], machine["machine"], machine["python"]) == ("Darwin", "x86_64", "3.11.5")
    assert (machine["python_subdir"], machine["hardware_subdir"]) == ("osx-64", "osx-arm64")
    assert (machine["rosetta"], machine["macos"], machine["distro"], machine["glibc"]) == (True, "14.6.1", None, None)
    assert machine["nvidia"] == {"status": "no-driver", "driver": None, "gpus": []}
    # No GPU listed: the driver the kernel module reported.
    no_smi = run_doctor(recording("linux-no-smi"), spec).as_json("envspec.yml")["machine"]["nvidia"]
    assert no_smi == {"status": "smi-missing", "driver": "580.65.06", "gpus": []}


def test_json_document_without_a_target(spec: Spec) -> None:
    data = recording("linux-no-gpu")
    data["platform"]["machine"] = "aarch64"
    report = run_doctor(data, spec)
    doc = report.as_json("envspec.yml")
    assert (doc["recommended"], doc["target"], doc["ok"]) == (None, None, False)
    assert doc["install_commands"] == ["envspec install TARGET --prefix ./env"]
    assert rows(report.checks) == [
        (
            "platform",
            "FAIL",
            (
                "no target in the spec is for this machine (linux-aarch64); targets are for: linux-64, osx-64, "
                "osx-arm64, win-64"
            ),
            "add a target with subdir: linux-aarch64 to envspec.yml (`envspec targets` lists the spec's targets)",
        ),
        ("memory", "PASS", "16.0 GiB RAM", None),
        (*RATTLER_INSTALL[:2], RATTLER_INSTALL[2].replace("linux-cuda", "TARGET"), None),
        CKPT,
    ]
    assert doc["summary"] == {"PASS": 3, "WARN": 0, "FAIL": 1}


def test_no_target_on_an_unknown_platform_and_an_empty_spec() -> None:
    facts = MachineFacts(platform=_plat("Plan9", "mips"), python_subdir=None, hardware_subdir=None)
    report = diagnose(facts, [])
    assert rows(report.checks)[0] == (
        "platform",
        "FAIL",
        "no target in the spec is for this machine (Plan9 mips); targets are for: none",
        "add a target with subdir: Plan9 mips to envspec.yml (`envspec targets` lists the spec's targets)",
    )
    assert [c.name for c in report.checks] == ["platform", "memory", "installer", "checkpoint"]


def test_resource_checks_order_and_the_mac_only_xcode_check(spec: Spec) -> None:
    mac = collect_facts(RecordedProbe(recording("m1-arm64")), "/p")
    target = spec.resolve("osx-arm64")
    names = [c.name for c in resource_checks(mac, target, None, "/p")]
    assert names == ["xcode-clt", "memory", "installer", "checkpoint"]  # no estimate: no disk check
    linux = collect_facts(RecordedProbe(recording("linux-h100-580")), "/p")
    names = [c.name for c in resource_checks(linux, spec.resolve("linux-cuda"), EnvEstimate(1, "x"), "/p")]
    assert names == ["disk", "memory", "installer", "checkpoint"]
    assert [c.name for c in resource_checks(linux, None, EnvEstimate(1, "x"), "/p")] == [
        "memory",
        "installer",
        "checkpoint",
    ]


# ---- GPU: the driver table, compute capability and memory thresholds ------------------------------


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


@pytest.mark.parametrize(
    ("cuda", "system", "expected"),
    [
        ("12.9", "Linux", ("575.51.03", "525.60.13")),
        ("12.9", "Windows", ("576.02", "528.33")),
        ("12.7", "Linux", ("560.28.03", "525.60.13")),  # no 12.7 row: the newest row not above it
        ("12.6", "Linux", ("560.28.03", "525.60.13")),
        ("12.0", "Windows", ("527.41", "528.33")),
        ("12.1", "Linux", ("525.60.13", "525.60.13")),
        ("13.0", "Linux", ("580.65.06", "580.65.06")),
        ("13.0", "Windows", ("580", "580")),  # NVIDIA lists N/A: the Linux branch
        ("13.5", "Linux", ("595.45.04", "580.65.06")),
        ("13.2.1", "Windows", ("595", "580")),
        ("11.8", "Linux", None),
        ("14.0", "Linux", None),
    ],
)
def test_driver_floor(cuda: str, system: str, expected: tuple[str, str | None] | None) -> None:
    assert driver_floor(cuda, system) == expected


@pytest.mark.parametrize(
    ("driver", "system", "expected"),
    [
        ("595.45.04", "Linux", "13.2"),
        ("595.45.03", "Linux", "13.1"),
        ("580.65.06", "Linux", "13.0"),
        ("580.65.05", "Linux", "12.9"),
        ("575.51.03", "Linux", "12.9"),
        ("570.26", "Linux", "12.8"),
        ("525.60.13", "Linux", "12.0"),
        ("525.60.12", "Linux", None),
        ("576.02", "Windows", "12.9"),
        ("576.01", "Windows", "12.8"),
        ("580.88", "Windows", "13.0"),
        ("527.41", "Windows", "12.0"),
        ("527.40", "Windows", None),
    ],
)
def test_max_cuda_for_driver(driver: str, system: str, expected: str | None) -> None:
    assert max_cuda_for_driver(driver, system) == expected


@pytest.mark.parametrize(
    ("cc", "name"),
    [
        ("5.2", "Maxwell"),
        ("6.1", "Pascal"),
        ("7.0", "Volta"),
        ("7.2", "Volta"),
        ("7.5", "Turing"),
        ("8.0", "Ampere"),
        ("8.6", "Ampere"),
        ("8.7", "Ampere"),
        ("8.9", "Ada"),
        ("9.0", "Hopper"),
        ("10.0", "Blackwell"),
        ("12.0", "Blackwell"),
        ("7.3", "unknown architecture"),
        ("3.7", "unknown architecture"),
        ("11.0", "unknown architecture"),
    ],
)
def test_arch_name(cc: str, name: str) -> None:
    assert arch_name(cc) == name


def test_target_cuda_prefers_the_pin_then_the_virtual_package(spec: Spec) -> None:
    base = spec.resolve("linux-cuda")
    assert target_cuda(dataclasses.replace(base, cuda_version="12.6")) == "12.6"
    vp = {**base.virtual_packages, "__cuda": "12.4 0"}
    assert target_cuda(dataclasses.replace(base, cuda_version="*", virtual_packages=vp)) == "12.4"
    assert target_cuda(dataclasses.replace(base, cuda_version=None, virtual_packages=vp)) == "12.4"
    no_vp = {k: v for k, v in base.virtual_packages.items() if k != "__cuda"}
    assert target_cuda(dataclasses.replace(base, cuda_version=None, virtual_packages=no_vp)) is None


@pytest.mark.parametrize(
    ("status", "subdir", "cuda", "mps", "cpu"),
    [
        ("found", "linux-64", True, False, True),
        ("unparsable", "linux-64", True, False, True),
        ("driver-error", "linux-64", True, False, True),
        ("smi-missing", "linux-64", True, False, True),
        ("no-driver", "linux-64", False, False, True),
        ("no-gpu", "linux-64", False, False, True),
        ("no-driver", "osx-arm64", False, True, True),
        ("no-driver", "osx-64", False, False, True),
    ],
)
def test_accelerator_present(status: str, subdir: str, cuda: bool, mps: bool, cpu: bool) -> None:
    facts = MachineFacts(
        platform=_plat(),
        python_subdir=subdir,
        hardware_subdir=subdir,
        nvidia=NvidiaFacts(status),  # type: ignore[arg-type]
    )
    assert (accelerator_present(facts, "cuda"), accelerator_present(facts, "mps")) == (cuda, mps)
    assert accelerator_present(facts, "cpu") is cpu


def _gpu_rows(spec: Spec, gpu: GpuInfo, cuda: str = "12.9", targets: tuple[str, ...] = ()) -> list[Any]:
    target = _cuda_target(spec, cuda)
    others = [_cuda_target(spec, c) for c in targets]
    facts = _facts(NvidiaFacts("found", gpus=(gpu,), driver=gpu.driver))
    return rows(cuda_checks(facts, target, [target, *others]))


@pytest.mark.parametrize(
    ("mib", "status", "reason", "fix"),
    [
        (
            2559,
            "FAIL",
            "2.5 GiB of GPU memory: less than SD-1's fp16 weights plus activations need (2.5 GiB)",
            "use a GPU with >= 6 GiB, or run on the CPU",
        ),
        (
            2560,
            "WARN",
            "2.5 GiB of GPU memory: SD-1 fp16 at 512x512 is tight below 6.0 GiB",
            "enable attention slicing or use smaller images",
        ),
        (
            6143,
            "WARN",
            "6.0 GiB of GPU memory: SD-1 fp16 at 512x512 is tight below 6.0 GiB",
            "enable attention slicing or use smaller images",
        ),
        (6144, "PASS", "6.0 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
        (None, "WARN", "Tiny GPU: memory size not reported", None),
    ],
)
def test_gpu_memory_thresholds(spec: Spec, mib: int | None, status: str, reason: str, fix: str | None) -> None:
    got = _gpu_rows(spec, _gpu(name="Tiny GPU", mib=mib))
    assert got[-1] == ("gpu-memory", status, reason, fix)


def test_several_gpus_name_the_one_with_most_memory(spec: Spec) -> None:
    small, big = _gpu("Small", mib=8192, cc="8.6"), _gpu("Big", mib=24576, cc="8.9")
    facts = _facts(NvidiaFacts("found", gpus=(small, big, small), driver="580.65.06"))
    got = rows(cuda_checks(facts, _cuda_target(spec, "12.9"), []))
    assert got[0] == ("nvidia-gpu", "PASS", "Big (+2 more), driver 580.65.06", None)
    assert got[2] == ("compute-capability", "PASS", "sm_89 (Ada) >= sm_50 for CUDA 12", None)
    assert got[3] == ("gpu-memory", "PASS", "24.0 GiB of GPU memory (SD-1 fp16 512x512 fits)", None)
    one = rows(
        cuda_checks(_facts(NvidiaFacts("found", gpus=(big,), driver="580.65.06")), _cuda_target(spec, "12.9"), [])
    )
    assert one[0] == ("nvidia-gpu", "PASS", "Big, driver 580.65.06", None)


@pytest.mark.parametrize(
    ("cc", "cuda", "status", "reason", "fix"),
    [
        ("7.5", "13.0", "PASS", "sm_75 (Turing) >= sm_75 for CUDA 13", None),
        (
            "7.0",
            "13.0",
            "FAIL",
            "sm_70 (Volta) is below sm_75, the oldest GPU CUDA 13 builds run on",
            "add a target for linux-64 with a CUDA 12.x cuda-version (those builds still cover sm_70) to envspec.yml",
        ),
        ("5.0", "12.9", "PASS", "sm_50 (Maxwell) >= sm_50 for CUDA 12", None),
        (
            "3.7",
            "12.9",
            "FAIL",
            "sm_37 (unknown architecture) is below sm_50, the oldest GPU CUDA 12 builds run on",
            "add a target for linux-64 with a CUDA 11.x cuda-version (those builds still cover sm_37) to envspec.yml",
        ),
        ("10.0", "12.8", "PASS", "sm_100 (Blackwell) >= sm_50 for CUDA 12", None),
        (
            "10.0",
            "12.6",
            "FAIL",
            "sm_100 (Blackwell) needs CUDA >= 12.8; target linux-cuda-12.6 is CUDA 12.6",
            "pin cuda-version >= 12.8 for this target in envspec.yml",
        ),
        ("9.0", "12.6", "PASS", "sm_90 (Hopper) >= sm_50 for CUDA 12", None),
    ],
)
def test_compute_capability_thresholds(
    spec: Spec, cc: str, cuda: str, *, status: str, reason: str, fix: str | None
) -> None:
    got = _gpu_rows(spec, _gpu(cc=cc, driver="595.45.04"), cuda=cuda)
    assert got[2] == ("compute-capability", status, reason, fix)


def test_compute_capability_of_a_cuda_major_without_a_floor(spec: Spec) -> None:
    target = dataclasses.replace(_cuda_target(spec, "12.9"), cuda_version="14.0")
    facts = _facts(NvidiaFacts("found", gpus=(_gpu(cc="9.0"),), driver="580.65.06"))
    cc = next(c for c in cuda_checks(facts, target, []) if c.name == "compute-capability")
    assert (cc.status, cc.reason) == (Status.PASS, "sm_90 (Hopper) for CUDA 14")
    assert next(c for c in cuda_checks(facts, target, []) if c.name == "nvidia-driver").reason == CUDA_14_DRIVER


CUDA_14_DRIVER = (
    "driver 580.65.06; no driver table entry for CUDA 14.0 (known: 13.2, 13.1, 13.0, 12.9, 12.8, 12.6, 12.5, 12.4, "
    "12.3, 12.0)"
)


def test_a_cuda_13_target_names_the_cuda_12_target_that_covers_an_old_gpu(spec: Spec) -> None:
    got = _gpu_rows(spec, _gpu(cc="6.1", driver="580.95.05"), cuda="13.0", targets=("13.1", "12.6"))
    assert got[2] == (
        "compute-capability",
        "FAIL",
        "sm_61 (Pascal) is below sm_75, the oldest GPU CUDA 13 builds run on",
        "use --target linux-cuda-12.6",
    )


def test_driver_table_miss_is_a_warning_with_the_known_rows(spec: Spec) -> None:
    got = _gpu_rows(spec, _gpu(driver="470.256.02", cc="7.5"), cuda="11.8")
    assert got[1] == (
        "nvidia-driver",
        "WARN",
        (
            "driver 470.256.02; no driver table entry for CUDA 11.8 (known: 13.2, 13.1, 13.0, 12.9, 12.8, 12.6, 12.5, "
            "12.4, 12.3, 12.0)"
        ),
        "add a row to CUDA_DRIVER_TABLE in envspec/doctor/gpu.py from NVIDIA's release notes",
    )
    assert got[2] == ("compute-capability", "PASS", "sm_75 (Turing) >= sm_35 for CUDA 11", None)


@pytest.mark.parametrize(
    ("driver", "status", "reason", "fix"),
    [
        ("575.51.03", "PASS", "driver 575.51.03 >= 575.51.03 for CUDA 12.9 (supports CUDA <= 12.9)", None),
        (
            "575.51.02",
            "WARN",
            (
                "driver 575.51.02 is older than 575.51.03 for CUDA 12.9 (supports CUDA <= 12.8); it runs through CUDA "
                "minor-version compatibility (>= 525.60.13) but features needing a newer driver fail"
            ),
            (
                "update the NVIDIA driver to >= 575.51.03, or add a target for linux-64 with cuda-version 12.8 to "
                "envspec.yml"
            ),
        ),
        (
            "525.60.13",
            "WARN",
            (
                "driver 525.60.13 is older than 575.51.03 for CUDA 12.9 (supports CUDA <= 12.0); it runs through CUDA "
                "minor-version compatibility (>= 525.60.13) but features needing a newer driver fail"
            ),
            (
                "update the NVIDIA driver to >= 575.51.03, or add a target for linux-64 with cuda-version 12.0 to "
                "envspec.yml"
            ),
        ),
        (
            "525.60.12",
            "FAIL",
            (
                "driver 525.60.12 is too old for CUDA 12.9: needs >= 575.51.03 (>= 525.60.13 at the very least); too "
                "old for any CUDA 12 build"
            ),
            "update the NVIDIA driver to >= 575.51.03",
        ),
    ],
)
def test_driver_thresholds(spec: Spec, driver: str, status: str, reason: str, fix: str | None) -> None:
    assert _gpu_rows(spec, _gpu(driver=driver))[1] == ("nvidia-driver", status, reason, fix)


def test_driver_fix_names_a_lower_cuda_target_the_driver_runs(spec: Spec) -> None:
    got = _gpu_rows(spec, _gpu(driver="560.28.03"), targets=("12.8", "12.6", "12.4"))
    assert got[1][1] == "WARN"
    assert got[1][3] == "update the NVIDIA driver to >= 575.51.03, or use --target linux-cuda-12.6"
    # Too old for every row: still the target that runs, when there is one.
    cuda13 = _gpu_rows(spec, _gpu(driver="575.51.03"), cuda="13.0", targets=("12.9",))
    assert cuda13[1] == (
        "nvidia-driver",
        "FAIL",
        (
            "driver 575.51.03 is too old for CUDA 13.0: needs >= 580.65.06 (>= 580.65.06 at the very least); supports "
            "CUDA <= 12.9"
        ),
        "update the NVIDIA driver to >= 580.65.06, or use --target linux-cuda-12.9",
    )


def test_driver_on_windows_uses_the_windows_column(spec: Spec) -> None:
    target = _cuda_target(spec, "12.9", name="win-cuda")
    gpu = _gpu(driver="576.01")
    facts = _facts(NvidiaFacts("found", gpus=(gpu,), driver=gpu.driver), system="Windows")
    driver = rows(cuda_checks(facts, target, [target]))[1]
    assert driver == (
        "nvidia-driver",
        "WARN",
        (
            "driver 576.01 is older than 576.02 for CUDA 12.9 (supports CUDA <= 12.8); it runs through CUDA "
            "minor-version compatibility (>= 528.33) but features needing a newer driver fail"
        ),
        "update the NVIDIA driver to >= 576.02, or add a target for win-64 with cuda-version 12.8 to envspec.yml",
    )


@pytest.mark.parametrize(
    ("nvidia", "expected"),
    [
        (
            NvidiaFacts("no-gpu", detail="nvidia-smi: No devices were found"),
            [
                (
                    "nvidia-gpu",
                    "FAIL",
                    "the NVIDIA driver runs but sees no GPU (nvidia-smi: No devices were found)",
                    "check the GPU is installed / passed through to this VM or container (`nvidia-smi -L` lists it)",
                )
            ],
        ),
        (
            NvidiaFacts("driver-error", detail="NVIDIA-SMI has failed"),
            [
                (
                    "nvidia-gpu",
                    "FAIL",
                    "nvidia-smi cannot talk to the driver: NVIDIA-SMI has failed",
                    "reboot, or reinstall the NVIDIA driver, until `nvidia-smi` works",
                )
            ],
        ),
        (
            NvidiaFacts("unparsable", driver="580.65.06", detail="nvidia-smi exited 139: Segmentation fault"),
            [
                (
                    "nvidia-gpu",
                    "WARN",
                    "nvidia-smi exited 139: Segmentation fault; GPU, driver and memory unknown",
                    "run `nvidia-smi` and check the driver works",
                ),
                DRIVER_580,
            ],
        ),
    ],
)
def test_nvidia_states_without_a_gpu_list(spec: Spec, nvidia: NvidiaFacts, expected: list[Any]) -> None:
    target = _cuda_target(spec, "12.9")
    assert rows(cuda_checks(_facts(nvidia), target, [target])) == expected


def test_no_driver_fix_in_the_words_of_envspec_up(spec: Spec) -> None:
    target = spec.resolve("linux-cuda")
    cpu = dataclasses.replace(target, name="linux-cpu", accelerator="cpu")
    facts = _facts(NvidiaFacts("no-driver", detail="no nvidia-smi and no NVIDIA kernel module"))
    got = rows(cuda_checks(facts, target, [target, cpu], UP_ADVICE))
    assert got == [
        (
            "nvidia-gpu",
            "FAIL",
            (
                "no NVIDIA GPU found (no nvidia-smi and no NVIDIA kernel module); target linux-cuda's torch would only "
                "run on the CPU"
            ),
            (
                "on a machine with an NVIDIA GPU install its driver; here run `envspec up linux-cpu ...` instead, or "
                "accept CPU with --allow-cpu"
            ),
        )
    ]
    assert DOCTOR_ADVICE.other_target.format(name="x") == "use --target x"


def test_a_target_without_cuda_version_warns(spec: Spec) -> None:
    base = spec.resolve("linux-cuda")
    vp = {k: v for k, v in base.virtual_packages.items() if k != "__cuda"}
    target = dataclasses.replace(base, cuda_version=None, virtual_packages=vp)
    got = rows(cuda_checks(_facts(NvidiaFacts("found", gpus=(_gpu(),), driver="580.65.06")), target, [target]))
    assert got == [
        ("nvidia-gpu", "PASS", "NVIDIA H100, driver 580.65.06", None),
        ("nvidia-driver", "WARN", "target linux-cuda names no CUDA version", None),
        ("gpu-memory", "PASS", "79.6 GiB of GPU memory (SD-1 fp16 512x512 fits)", None),
    ]


def test_gib_formats_one_decimal() -> None:
    assert gib(0) == "0.0 GiB"
    assert gib(int(2.5 * GiB)) == "2.5 GiB"
    assert gib(1536 * MiB) == "1.5 GiB"


# ---- platform -----------------------------------------------------------------------------------


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


def test_platform_32_bit_python_and_unknown_hardware(spec: Spec) -> None:
    target = spec.resolve("linux-cuda")
    facts = MachineFacts(platform=_plat(bits=32), python_subdir="linux-64", hardware_subdir="linux-64")
    assert rows([check_platform(facts, target, target)]) == [
        (
            "platform",
            "FAIL",
            "Python is a 32-bit build; conda-forge torch is 64-bit only",
            "install a 64-bit Python (Miniforge)",
        )
    ]
    unknown = MachineFacts(platform=_plat("Linux", "riscv64"), python_subdir=None, hardware_subdir=None)
    assert rows([check_platform(unknown, target, None)]) == [
        ("platform", "FAIL", "Linux riscv64 is not a platform conda-forge builds torch for", None)
    ]


def test_platform_mismatch_emulated_or_not(spec: Spec) -> None:
    intel_target, arm_target = spec.resolve("osx-64"), spec.resolve("osx-arm64")
    m1 = _mac(False, True)
    assert rows([check_platform(m1, intel_target, arm_target)]) == [
        (
            "platform",
            "WARN",
            (
                "target osx-64 is for osx-64; it runs on this macOS on Apple silicon (osx-arm64) only under emulation "
                "(slower, no GPU)"
            ),
            "use --target osx-arm64",
        )
    ]
    # No other target recommended (or the recommended is this one): how to add one.
    assert check_platform(m1, intel_target, intel_target).fix == "add a target for osx-arm64"
    assert check_platform(m1, intel_target, None).fix == "add a target for osx-arm64"
    intel = _mac(False, False)
    assert rows([check_platform(intel, arm_target, intel_target, UP_ADVICE)]) == [
        (
            "platform",
            "FAIL",
            "target osx-arm64 is for osx-arm64; this is macOS x86_64 (osx-64)",
            "run `envspec up osx-64 ...` instead",
        )
    ]
    odd = MachineFacts(platform=_plat("FreeBSD", "amd64"), python_subdir="linux-64", hardware_subdir="linux-64")
    assert check_platform(odd, spec.resolve("linux-cuda"), None).reason == (
        "FreeBSD amd64 (linux-64); target linux-cuda is for linux-64"
    )


def test_linux_checks_without_distro_glibc_or_kernel_version(spec: Spec) -> None:
    target = spec.resolve("linux-cuda")
    facts = MachineFacts(
        platform=_plat(release="weird"),
        python_subdir="linux-64",
        hardware_subdir="linux-64",
        notes={"distro": "no /etc/os-release", "glibc": "musl?"},
    )
    assert rows(system_checks(facts, target)) == [
        ("distro", "WARN", "Linux distribution unknown (no /etc/os-release)", "nothing to do if glibc below passes"),
        (
            "glibc",
            "WARN",
            (
                "cannot read the C library version (musl?); conda-forge linux packages need glibc, musl distributions "
                "(Alpine) cannot run them"
            ),
            "use a glibc-based distribution (Debian, Ubuntu, Fedora, RHEL...)",
        ),
        ("kernel", "WARN", "cannot read the kernel version from 'weird'", None),
    ]
    bare = MachineFacts(platform=_plat(release=""), python_subdir="linux-64", hardware_subdir="linux-64")
    assert rows(system_checks(bare, target))[:3] == [
        ("distro", "WARN", "Linux distribution unknown (no answer)", "nothing to do if glibc below passes"),
        (
            "glibc",
            "WARN",
            (
                "cannot read the C library version (no answer); conda-forge linux packages need glibc, musl "
                "distributions (Alpine) cannot run them"
            ),
            "use a glibc-based distribution (Debian, Ubuntu, Fedora, RHEL...)",
        ),
        ("kernel", "WARN", "cannot read the kernel version from ''", None),
    ]


def test_linux_checks_at_their_thresholds(spec: Spec) -> None:
    base = spec.resolve("linux-cuda")
    target = dataclasses.replace(base, virtual_packages={"__glibc": "2.28 0", "__linux": "5.10 0"})
    facts = MachineFacts(
        platform=_plat(release="5.10-1"),
        python_subdir="linux-64",
        hardware_subdir="linux-64",
        distro=DistroFacts(id="alpine", version="3.20", name=""),
        glibc="2.27",
    )
    assert rows(system_checks(facts, target)) == [
        ("distro", "PASS", "alpine 3.20", None),
        (
            "glibc",
            "FAIL",
            "glibc 2.27 is older than 2.28, which target linux-cuda's packages were locked for",
            "use a distribution with glibc >= 2.28, or lower __glibc in envspec.yml and re-lock",
        ),
        ("kernel", "PASS", "Linux kernel 5.10 >= 5.10 (target's __linux)", None),
    ]
    # No __glibc / __linux in the target: glibc passes as is, no kernel check.
    loose = dataclasses.replace(base, name="loose", virtual_packages={})
    assert rows(system_checks(dataclasses.replace(facts, glibc="2.17"), loose)) == [
        ("distro", "PASS", "alpine 3.20", None),
        ("glibc", "PASS", "glibc 2.17; target loose sets no __glibc", None),
    ]
    nameless = DistroFacts(id="", version="", name="")
    assert system_checks(dataclasses.replace(facts, distro=nameless), loose)[0].reason == ""


def test_a_linux_target_on_another_system_gets_no_linux_checks(spec: Spec) -> None:
    win = _facts(NvidiaFacts("no-driver"), system="Windows")
    assert system_checks(win, spec.resolve("linux-cuda")) == []
    linux = MachineFacts(platform=_plat(), python_subdir="linux-64", hardware_subdir="linux-64")
    assert system_checks(linux, spec.resolve("win-cuda")) == []


def test_rosetta_and_macos_checks(spec: Spec) -> None:
    intel_target, arm_target = spec.resolve("osx-64"), spec.resolve("osx-arm64")
    assert rows(system_checks(_mac(True, True), intel_target))[0] == (
        "rosetta",
        "WARN",
        "this Python runs under Rosetta (sysctl.proc_translated = 1): Intel packages, CPU only",
        "on Apple silicon prefer an arm64 Python and the osx-arm64 target",
    )
    assert rows(system_checks(_mac(None, False, notes={"rosetta": "sysctl gave no answer"}), intel_target))[0] == (
        "rosetta",
        "WARN",
        "cannot tell whether Python runs under Rosetta (sysctl gave no answer)",
        "run `sysctl -n sysctl.proc_translated` (1 means Rosetta)",
    )
    assert system_checks(_mac(None, False), intel_target)[0].reason == (
        "cannot tell whether Python runs under Rosetta (no answer)"
    )
    # Unknown translation on Apple silicon hardware: the hardware answers.
    assert rows(system_checks(_mac(None, True), arm_target))[0] == (
        "rosetta",
        "PASS",
        "native arm64 Python on Apple silicon (arm64)",
        None,
    )
    assert rows(system_checks(_mac(False, True, macos="13.9"), arm_target))[1] == (
        "macos",
        "FAIL",
        "macOS 13.9 is older than 14.0 (target's __osx and MPS minimum) that target osx-arm64's torch needs",
        "update macOS to 14.0 or later (System Settings > General > Software Update)",
    )
    assert rows(system_checks(_mac(False, True, macos="14.0"), arm_target))[1] == (
        "macos",
        "PASS",
        "macOS 14.0 >= 14.0 (target's __osx and MPS minimum)",
        None,
    )
    assert rows(system_checks(_mac(False, True, macos=None, notes={"macos": "sw_vers not found"}), arm_target))[1] == (
        "macos",
        "WARN",
        "macOS version unknown (sw_vers not found); need >= 14.0",
        "run `sw_vers -productVersion`",
    )
    assert system_checks(_mac(False, True, macos=None), arm_target)[1].reason == (
        "macOS version unknown (no answer); need >= 14.0"
    )


def test_macos_minimum_of_the_accelerator_beats_a_lower_target_osx(spec: Spec) -> None:
    arm = spec.resolve("osx-arm64")
    low = dataclasses.replace(arm, virtual_packages={"__osx": "11.0"})
    assert rows(system_checks(_mac(False, True, macos="13.0"), low))[1] == (
        "macos",
        "FAIL",
        "macOS 13.0 is older than 14 (MPS minimum) that target osx-arm64's torch needs",
        "update macOS to 14 or later (System Settings > General > Software Update)",
    )
    high = dataclasses.replace(arm, virtual_packages={"__osx": "15.0"})
    assert system_checks(_mac(False, True, macos="15.0"), high)[1].reason == (
        "macOS 15.0 >= 15.0 (target's __osx and MPS minimum)"
    )
    # A CPU target without __osx: no minimum at all.
    cpu = dataclasses.replace(spec.resolve("osx-64"), virtual_packages={})
    assert system_checks(_mac(False, False, macos="10.9"), cpu)[1].reason == "macOS 10.9 >= 0 (target's __osx)"


def test_conda_subdir_checks(spec: Spec) -> None:
    arm = spec.resolve("osx-arm64")
    tool = CondaTool(name="mamba", path="/opt/bin/mamba", version="2.0.5", platform="osx-64")
    facts = _mac(False, True, conda_tools=(tool,), conda_subdir_env="osx-64")
    assert rows(system_checks(facts, arm))[-1] == (
        "conda-subdir",
        "FAIL",
        "CONDA_SUBDIR=osx-64 makes conda solve for osx-64, not osx-arm64",
        "unset CONDA_SUBDIR or set CONDA_SUBDIR=osx-arm64",
    )
    # CONDA_SUBDIR set right wins over the tool's own platform.
    right = dataclasses.replace(facts, conda_subdir_env="osx-arm64")
    assert rows(system_checks(right, arm))[-1] == ("conda-subdir", "PASS", "conda installs osx-arm64 packages", None)
    only_env = _mac(False, True, conda_subdir_env="osx-arm64")
    assert system_checks(only_env, arm)[-1].name == "conda-subdir"
    # A tool of unknown platform and no CONDA_SUBDIR: nothing to say.
    unknown = _mac(False, True, conda_tools=(dataclasses.replace(tool, platform=None),))
    assert [c.name for c in system_checks(unknown, arm)] == ["rosetta", "macos"]
    wrong = _mac(False, True, conda_tools=(dataclasses.replace(tool, platform=None), tool))
    assert system_checks(wrong, arm)[-1].reason.startswith("mamba at /opt/bin/mamba is built for osx-64: ")


# ---- room: disk, memory, checkpoint ----------------------------------------------------------------


CKPT_BYTES = 4_265_380_512
FREE_FIX = (
    "free some space, or put the environment and package cache on a bigger disk "
    "(--prefix, CONDA_PKGS_DIRS / RATTLER_CACHE_DIR)"
)


def _lock(*sizes: int | None, platform: str = "linux-64") -> str:
    packages = []
    for i, size in enumerate(sizes):
        p: dict[str, Any] = {"name": f"p{i}", "version": "1.0", "platform": platform}
        if size is not None:
            p["size"] = size
        packages.append(p)
    return yaml.safe_dump({"version": 1, "package": packages})


def test_env_estimate_sources(spec: Spec) -> None:
    cuda, mps = spec.resolve("linux-cuda"), spec.resolve("osx-arm64")
    assert estimate_env_bytes(None, cuda) == EnvEstimate(12 * GiB, "default for a cuda environment")
    assert estimate_env_bytes(None, mps) == EnvEstimate(4 * GiB, "default for a mps environment")
    assert estimate_env_bytes(": [", cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile is not a readable conda-lock.yml"
    )
    assert estimate_env_bytes(_lock(), cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile (0 packages) has no sizes"
    )
    assert estimate_env_bytes(_lock(GiB, None), cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile (2 packages) has no sizes"
    )
    assert estimate_env_bytes(_lock(GiB, GiB // 2), cuda) == EnvEstimate(
        6 * GiB, "2 packages, 1.5 GiB to download (x4 for cache + environment)"
    )
    # Another platform's packages are not this environment's.
    assert estimate_env_bytes(_lock(GiB, platform="osx-arm64"), cuda).source == (
        "default for a cuda environment; the lockfile (0 packages) has no sizes"
    )


def _room(free: int | None, checkpoint: int | None = None, **kw: Any) -> MachineFacts:
    return MachineFacts(
        platform=_plat(),
        python_subdir="linux-64",
        hardware_subdir="linux-64",
        disk_free=free,
        checkpoint_size=checkpoint,
        **kw,
    )


def test_disk_thresholds() -> None:
    env = EnvEstimate(4 * GiB, "test")
    need = 4 * GiB + CKPT_BYTES
    parts = "environment ~4.0 GiB (test) + 4.0 GiB for an SD-1 checkpoint"
    assert rows([check_disk(_room(need - 1), env, "/p")]) == [
        ("disk", "FAIL", f"8.0 GiB free at /p, need ~8.0 GiB: {parts}", FREE_FIX)
    ]
    assert rows([check_disk(_room(need), env, "/p")]) == [
        ("disk", "WARN", f"8.0 GiB free at /p, just above the ~8.0 GiB needed: {parts}", FREE_FIX)
    ]
    headroom = int(need * 1.25)
    assert check_disk(_room(headroom - 1), env, "/p").status is Status.WARN
    assert rows([check_disk(_room(headroom + 1), env, "/p")]) == [
        ("disk", "PASS", f"10.0 GiB free, need ~8.0 GiB: {parts}", None)
    ]
    assert rows([check_disk(_room(None, notes={"disk": "statvfs failed"}), env, "/p")]) == [
        ("disk", "WARN", f"free space unknown (statvfs failed); need {parts}", None)
    ]
    assert check_disk(_room(None), env, "/p").reason == f"free space unknown (no answer); need {parts}"


def test_disk_counts_the_checkpoint_only_when_none_is_in_place() -> None:
    env = EnvEstimate(4 * GiB, "test")
    in_place = check_disk(_room(5 * GiB, checkpoint=1_000_000_000), env, "/p")
    assert rows([in_place]) == [("disk", "PASS", "5.0 GiB free, need ~4.0 GiB: environment ~4.0 GiB (test)", None)]
    broken = check_disk(_room(5 * GiB, checkpoint=999_999_999), env, "/p")
    assert broken.status is Status.FAIL and broken.reason.endswith("+ 4.0 GiB for an SD-1 checkpoint")


def test_disk_counts_the_models_still_to_pull_instead_of_a_checkpoint() -> None:
    env = EnvEstimate(4 * GiB, "test")
    models = ModelsNeed(2 * GiB, "lockfiles/models.lock.yml, files not pulled yet")
    got = check_disk(_room(6 * GiB), env, "/p", models)
    assert rows([got]) == [
        (
            "disk",
            "WARN",
            (
                "6.0 GiB free at /p, just above the ~6.0 GiB needed: environment ~4.0 GiB (test) + models ~2.0 GiB "
                "(lockfiles/models.lock.yml, files not pulled yet)"
            ),
            FREE_FIX,
        )
    ]
    nothing_left = check_disk(_room(6 * GiB), env, "/p", ModelsNeed(0, "x"))
    assert nothing_left.reason == "6.0 GiB free, need ~4.0 GiB: environment ~4.0 GiB (test)"


@pytest.mark.parametrize(
    ("total", "accelerator", "status", "reason", "fix"),
    [
        (
            4 * GiB - 1,
            "cuda",
            "FAIL",
            "4.0 GiB RAM: SD-1 needs >= 4.0 GiB to load",
            "use a machine with >= 8 GiB",
        ),
        (
            4 * GiB,
            "mps",
            "WARN",
            "4.0 GiB RAM (shared with the GPU): loading SD-1 will swap below 8.0 GiB",
            "close other programs; expect slow loading",
        ),
        (
            8 * GiB - 1,
            "cpu",
            "WARN",
            "8.0 GiB RAM: loading SD-1 will swap below 8.0 GiB",
            "close other programs; expect slow loading",
        ),
        (8 * GiB, "cuda", "PASS", "8.0 GiB RAM", None),
        (
            GiB,
            "mps",
            "FAIL",
            "1.0 GiB RAM (shared with the GPU): SD-1 needs >= 4.0 GiB to load",
            "use a machine with >= 8 GiB",
        ),
    ],
)
def test_memory_thresholds(
    spec: Spec, total: int, accelerator: str, *, status: str, reason: str, fix: str | None
) -> None:
    target = dataclasses.replace(spec.resolve("linux-cuda"), accelerator=accelerator)
    assert rows([check_memory(_room(None, memory_total=total), target)]) == [("memory", status, reason, fix)]


def test_memory_unknown_or_without_a_target() -> None:
    assert rows([check_memory(_room(None, notes={"memory": "no /proc/meminfo"}), None)]) == [
        ("memory", "WARN", "RAM unknown (no /proc/meminfo)", None)
    ]
    assert check_memory(_room(None), None).reason == "RAM unknown (no answer)"
    assert check_memory(_room(None, memory_total=2 * GiB), None).reason == "2.0 GiB RAM: SD-1 needs >= 4.0 GiB to load"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (
            None,
            (
                "PASS",
                (
                    "no checkpoint at m/model.ckpt: the smoke test uses its tiny built-in model "
                    "(--model PATH for a real one)"
                ),
                None,
            ),
        ),
        (
            999_999_999,
            (
                "WARN",
                (
                    "m/model.ckpt is only 1000.0 MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a git-lfs "
                    "pointer?)"
                ),
                "download the checkpoint again",
            ),
        ),
        (
            133,
            (
                "WARN",
                (
                    "m/model.ckpt is only 0.0 MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a git-lfs "
                    "pointer?)"
                ),
                "download the checkpoint again",
            ),
        ),
        (
            1_000_000_000,
            (
                "PASS",
                "m/model.ckpt (1.00 GB); a .ckpt is a pickle: the smoke test loads it only with --trust-pickle",
                None,
            ),
        ),
    ],
)
def test_checkpoint(size: int | None, expected: tuple[str, str, str | None]) -> None:
    assert rows([check_checkpoint("m/model.ckpt", size)]) == [("checkpoint", *expected)]


# ---- tools: installer and Xcode ---------------------------------------------------------------------


def _tools(*tools: CondaTool, **kw: Any) -> MachineFacts:
    return _mac(False, True, conda_tools=tools, **kw)


def test_install_commands_in_tool_order(spec: Spec) -> None:
    target = spec.resolve("osx-arm64")
    everything = _tools(
        CondaTool("micromamba", "/b/micromamba", "2.0.5"),
        CondaTool("conda", "/b/conda", "25.9.1"),
        CondaTool("mamba", "/b/mamba", "2.0.5"),
    )
    assert install_commands(everything, target) == [
        "conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock",
        "mamba create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock",
        "micromamba create -n stable-diffusion-osx-arm64 -f lockfiles/osx-arm64.lock",
        "envspec install osx-arm64 --prefix ./env",
    ]
    assert install_commands(everything, None)[0] == "conda create -n ENV --file lockfiles/TARGET.lock"
    assert install_commands(_tools(), None) == ["envspec install TARGET --prefix ./env"]


def test_installer_with_an_unreadable_version_warns(spec: Spec) -> None:
    target = spec.resolve("osx-arm64")
    facts = _tools(CondaTool("conda", "/b/conda", "25.5.0"), CondaTool("mamba", "/b/mamba", None))
    assert rows([check_installer(facts, target)]) == [
        (
            "installer",
            "WARN",
            (
                "conda 25.5.0 (`conda env create -f` reads explicit files too, with a solve); mamba (version unknown); "
                "install with `conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock`"
            ),
            "check `mamba --version` works; `envspec install osx-arm64 --prefix ./env` needs no conda",
        )
    ]
    old = check_installer(_tools(CondaTool("conda", "/b/conda", "25.4.9")), target)
    assert old.reason.startswith("conda 25.4.9 (older than 25.5.0: `conda env create -f` cannot read explicit files);")
    assert old.status is Status.PASS


@pytest.mark.parametrize(
    ("deps", "pip", "sdist", "why"),
    [
        (("python=3.12",), (), (), None),
        (("conda-forge::GCC>=13",), (), (), "the spec installs gcc"),
        (
            ("cxx-compiler", "cmake 3.30.*", "make[build=h0]", "gcc_linux-64"),
            (),
            (),
            "the spec installs cmake, cxx-compiler, make",
        ),
        (("clangxx!=17",), (), (), "the spec installs clangxx"),
        (
            (),
            ("xformers==0.1",),
            ("xformers", "flash-attn"),
            (
                "pip_allow_sdist lets xformers, flash-attn build from source at install time, which needs a compiler "
                "for C extensions"
            ),
        ),
        ((), (), ("xformers",), None),  # allowed sdists without pip packages: nothing builds
        ((), ("xformers==0.1",), (), None),
    ],
)
def test_needs_compiler(
    spec: Spec, deps: tuple[str, ...], pip: tuple[str, ...], sdist: tuple[str, ...], why: str | None
) -> None:
    target = dataclasses.replace(spec.resolve("osx-arm64"), dependencies=deps, pip=pip, pip_allow_sdist=sdist)
    assert needs_compiler(target) == why


def test_xcode_check(spec: Spec) -> None:
    target = dataclasses.replace(spec.resolve("osx-arm64"), dependencies=("make",))
    assert rows([check_xcode(_tools(xcode_clt=True), target)]) == [
        ("xcode-clt", "PASS", "Xcode command-line tools present (the spec installs make)", None)
    ]
    assert rows([check_xcode(_tools(xcode_clt=None), target)]) == [
        ("xcode-clt", "WARN", "cannot tell whether Xcode's CLT are installed (the spec installs make)", None)
    ]
    assert rows([check_xcode(_tools(xcode_clt=False), target)]) == [
        ("xcode-clt", "FAIL", "Xcode command-line tools missing and the spec installs make", "xcode-select --install")
    ]
    assert rows([check_xcode(_tools(xcode_clt=False), None)]) == [NO_XCODE]


# ---- ranking ----------------------------------------------------------------------------------------


def _ranked(facts: MachineFacts, targets: list[ResolvedTarget]) -> list[tuple[str, int, bool, int, int]]:
    return [(f.target.name, f.tier, f.present, f.fails, f.warns) for f in rank_targets(facts, targets)]


def _linux(nvidia: NvidiaFacts, **kw: Any) -> MachineFacts:
    return _facts(nvidia, distro=DistroFacts("ubuntu", "24.04", "Ubuntu"), glibc="2.39", **kw)


def test_ranking_tiers_native_before_emulated(spec: Spec) -> None:
    targets = spec.resolve_all()
    assert _ranked(_mac(False, True), targets) == [("osx-arm64", 0, True, 0, 0), ("osx-64", 1, True, 0, 0)]
    assert _ranked(_mac(False, False, macos="13.7"), targets) == [("osx-64", 0, True, 0, 0)]
    assert rank_targets(MachineFacts(platform=_plat(), python_subdir=None, hardware_subdir=None), targets) == []
    assert recommend_target(MachineFacts(platform=_plat(), python_subdir=None, hardware_subdir=None), targets) is None


def test_ranking_accelerator_present_then_preference_then_fails_then_warns_then_newest_cuda(spec: Spec) -> None:
    cuda = spec.resolve("linux-cuda")
    cpu = dataclasses.replace(
        cuda, name="cpu", accelerator="cpu", cuda_version=None, virtual_packages={"__glibc": "2.28"}
    )
    mps = dataclasses.replace(cpu, name="mps", accelerator="mps")
    c126, c129 = _cuda_target(spec, "12.6"), _cuda_target(spec, "12.9")
    h100 = _linux(NvidiaFacts("found", gpus=(_gpu(),), driver="580.65.06"))
    # Everything passes: cuda before cpu, the newer CUDA first, then spec order; MPS is absent on Linux.
    assert [n for n, *_ in _ranked(h100, [mps, cpu, c126, c129, cuda])] == [
        "linux-cuda-12.9",
        "linux-cuda",
        "linux-cuda-12.6",
        "cpu",
        "mps",
    ]
    # No GPU: the CUDA targets are absent accelerators and go last, whatever they fail.
    none = _linux(NvidiaFacts("no-driver", detail="none"))
    assert _ranked(none, [c129, cpu]) == [("cpu", 0, True, 0, 0), ("linux-cuda-12.9", 0, False, 1, 0)]
    # A GPU the machine has beats fewer FAILs (an old driver): its FAIL says how to fix it...
    old = _linux(NvidiaFacts("found", gpus=(_gpu(driver="470.256.02"),), driver="470.256.02"))
    assert _ranked(old, [cpu, c129]) == [("linux-cuda-12.9", 0, True, 1, 0), ("cpu", 0, True, 0, 0)]
    # ...and the preferred accelerator beats fewer WARNs.
    compat = _linux(NvidiaFacts("found", gpus=(_gpu(driver="560.28.03"),), driver="560.28.03"))
    assert _ranked(compat, [cpu, c129]) == [("linux-cuda-12.9", 0, True, 0, 1), ("cpu", 0, True, 0, 0)]
    # Among CUDA targets, fewer WARNs beat a newer CUDA.
    assert [n for n, *_ in _ranked(compat, [c129, c126])] == ["linux-cuda-12.6", "linux-cuda-12.9"]


def test_fit_key_orders_unknown_accelerators_last_and_keeps_spec_order(spec: Spec) -> None:
    cpu = dataclasses.replace(spec.resolve("linux-cuda"), accelerator="cpu", cuda_version=None, virtual_packages={})
    fit = Fit(target=cpu, tier=0, present=True, fails=0, warns=2)
    assert fit.key(3) == (0, False, 2, 0, 2, (), 3)
    odd = Fit(target=dataclasses.replace(cpu, accelerator="rocm"), tier=1, present=False, fails=1, warns=0)  # type: ignore[arg-type]
    assert odd.key(0) == (1, True, 9, 1, 0, (), 0)
    cuda = Fit(target=_cuda_target(spec, "12.9"), tier=0, present=True, fails=0, warns=0)
    assert cuda.key(1) == (0, False, 0, 0, 0, (-12, -9), 1)


# ---- the facts: what the doctor asks the machine, and what it makes of the answers -------------------

SMI = "nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits"
SMI_NO_CC = "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits"
MAC_CALLS = [
    "sysctl -n sysctl.proc_translated",
    "sysctl -n hw.optional.arm64",
    "sw_vers -productVersion",
    "xcode-select -p",
]


class PathProbe(RecordedProbe):
    """A recording that also notes which paths the disk and file-size questions were about."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.paths: list[str] = []

    def disk_free(self, path: str) -> int | None:
        self.paths.append(f"disk_free {path}")
        return super().disk_free(path)

    def file_size(self, path: str) -> int | None:
        self.paths.append(f"file_size {path}")
        return super().file_size(path)


@pytest.mark.parametrize(
    ("name", "calls"),
    [
        ("intel-mac", [*MAC_CALLS, "conda --version", "conda info --json"]),
        ("m1-arm64", [*MAC_CALLS, "micromamba --version", "micromamba info"]),
        ("linux-no-gpu", [SMI]),
        ("linux-old-driver", [SMI, SMI_NO_CC, "mamba --version", "mamba info --json"]),
        ("windows-cuda", [SMI, "conda --version", "conda info --json"]),
    ],
)
def test_what_the_doctor_asks(name: str, calls: list[str]) -> None:
    probe = PathProbe(recording(name))
    collect_facts(probe, "/home/ada/sd/")
    assert probe.calls == calls
    assert probe.paths == [
        "disk_free /home/ada/sd",
        "file_size /home/ada/sd/models/ldm/stable-diffusion-v1/model.ckpt",
    ]


def test_choosing_a_target_asks_only_the_hardware() -> None:
    probe = PathProbe(recording("m1-arm64"))
    facts = collect_facts(probe, "/p", hardware_only=True)
    assert probe.calls == MAC_CALLS and probe.paths == []
    assert (facts.conda_tools, facts.disk_free, facts.checkpoint_size, facts.notes) == ((), None, None, {})
    assert facts.memory_total == recording("m1-arm64")["memory_total"]


def test_facts_of_a_rosetta_mac_in_full() -> None:
    facts = collect_facts(RecordedProbe(recording("m1-rosetta")), "/p")
    assert facts == MachineFacts(
        platform=PlatformFacts("Darwin", "x86_64", "23.6.0", "3.11.5", 64),
        python_subdir="osx-64",
        hardware_subdir="osx-arm64",
        rosetta=True,
        apple_silicon=True,
        macos_version="14.6.1",
        distro=None,
        glibc=None,
        nvidia=NvidiaFacts("no-driver", detail="macOS has no NVIDIA CUDA driver"),
        disk_free=102005473280,
        memory_total=8589934592,
        conda_tools=(CondaTool("conda", "/recorded/bin/conda", "23.7.4", "osx-64", ""),),
        conda_subdir_env=None,
        xcode_clt=False,
        checkpoint_path="models/ldm/stable-diffusion-v1/model.ckpt",
        checkpoint_size=None,
        notes={},
    )


def test_facts_of_a_linux_box_in_full() -> None:
    data = recording("linux-old-driver")
    data["files"]["models/ldm/stable-diffusion-v1/model.ckpt"] = 4_265_380_512
    data["env"] = {"CONDA_SUBDIR": "linux-64"}
    facts = collect_facts(RecordedProbe(data), "/p")
    assert (facts.platform.system, facts.python_subdir, facts.hardware_subdir) == ("Linux", "linux-64", "linux-64")
    assert (facts.rosetta, facts.apple_silicon, facts.macos_version, facts.xcode_clt) == (None, None, None, None)
    assert facts.distro == DistroFacts("rocky", "8.10", "Rocky Linux 8.10 (Green Obsidian)")
    assert facts.glibc == "2.28"
    assert facts.nvidia == NvidiaFacts(
        "found", gpus=(GpuInfo("NVIDIA GeForce RTX 2080 Ti", "470.256.02", 11264, None),), driver="470.256.02"
    )
    assert (facts.checkpoint_size, facts.conda_subdir_env, facts.notes) == (4_265_380_512, "linux-64", {})


def test_notes_say_why_a_fact_is_unknown() -> None:
    data = recording("linux-h100-580")
    del data["files"]["/etc/os-release"]
    data["glibc"] = None
    data["memory_total"] = None
    data["disk_free"] = None
    facts = collect_facts(RecordedProbe(data), "/home/ada/sd/")
    assert (facts.distro, facts.glibc, facts.memory_total, facts.disk_free) == (None, None, None, None)
    assert facts.notes == {
        "distro": "no /etc/os-release",
        "glibc": "not a GNU C library (musl?) or its version is unreadable",
        "memory": "total memory is unreadable",
        "disk": "free space at /home/ada/sd is unreadable",
    }
    assert collect_facts(RecordedProbe(data), "/p", hardware_only=True).notes == {
        "distro": "no /etc/os-release",
        "glibc": "not a GNU C library (musl?) or its version is unreadable",
        "memory": "total memory is unreadable",
    }


def test_mac_notes_and_the_apple_silicon_evidence() -> None:
    intel = recording("intel-mac")
    del intel["commands"]["sysctl -n sysctl.proc_translated"]
    del intel["commands"]["sw_vers -productVersion"]
    del intel["commands"]["xcode-select -p"]
    facts = collect_facts(RecordedProbe(intel), "/p")
    assert (facts.rosetta, facts.apple_silicon, facts.macos_version, facts.xcode_clt) == (None, False, None, None)
    assert facts.notes == {
        "rosetta": "sysctl -n sysctl.proc_translated gave no answer",
        "macos": "sw_vers -productVersion not found",
    }
    assert facts.hardware_subdir == "osx-64"
    # An arm64 Python needs no sysctl to know it is not translated.
    m1 = recording("m1-arm64")
    del m1["commands"]["sysctl -n sysctl.proc_translated"]
    del m1["commands"]["sysctl -n hw.optional.arm64"]
    m1["commands"]["sw_vers -productVersion"] = {"returncode": 1, "stdout": "15.1\n", "stderr": ""}
    facts = collect_facts(RecordedProbe(m1), "/p")
    assert (facts.rosetta, facts.apple_silicon, facts.hardware_subdir) == (None, True, "osx-arm64")
    assert facts.notes == {"macos": "sw_vers -productVersion gave no version"}
    # An x86_64 Python, not translated, on arm64 hardware (hw.optional.arm64 = 1): still Apple silicon.
    odd = recording("m1-rosetta")
    odd["commands"]["sysctl -n sysctl.proc_translated"]["stdout"] = "0\n"
    facts = collect_facts(RecordedProbe(odd), "/p")
    assert (facts.rosetta, facts.apple_silicon, facts.hardware_subdir) == (False, True, "osx-arm64")
    odd["commands"]["sysctl -n hw.optional.arm64"]["stdout"] = "0\n"
    facts = collect_facts(RecordedProbe(odd), "/p")
    assert (facts.rosetta, facts.apple_silicon, facts.hardware_subdir) == (False, False, "osx-64")


def test_windows_falls_back_to_nvidia_smi_in_program_files() -> None:
    data = recording("windows-cuda")
    answer = data["commands"].pop(SMI)
    fallback = r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe"
    data["commands"][
        f"{fallback} --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader,nounits"
    ] = {
        "returncode": 0,
        "stdout": 'Field "compute_cap" is not a valid field to query.\n',
        "stderr": "",
    }
    data["commands"][f"{fallback} --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits"] = {
        **answer,
        "stdout": "NVIDIA GeForce RTX 4090, 576.88, 24564\n",
    }
    data["files"] = {"/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  x"}
    probe = RecordedProbe(data)
    facts = collect_facts(probe, "/p", hardware_only=True)
    assert probe.calls == [SMI, f"{fallback} {SMI.split(' ', 1)[1]}", f"{fallback} {SMI_NO_CC.split(' ', 1)[1]}"]
    assert facts.nvidia == NvidiaFacts(
        "found", gpus=(GpuInfo("NVIDIA GeForce RTX 4090", "576.88", 24564, None),), driver="576.88"
    )
    # No nvidia-smi anywhere: a Linux kernel-module file means nothing on Windows.
    del data["commands"][f"{fallback} {SMI.split(' ', 1)[1]}"]
    assert collect_facts(RecordedProbe(data), "/p", hardware_only=True).nvidia == NvidiaFacts(
        "no-driver", detail="no nvidia-smi and no NVIDIA kernel module"
    )
    # Linux has no fallback path.
    linux = recording("linux-no-gpu")
    probe = RecordedProbe(linux)
    collect_facts(probe, "/p", hardware_only=True)
    assert probe.calls == [SMI]


def test_conda_tools_that_answer_badly() -> None:
    data = recording("m1-arm64")
    data["commands"]["micromamba --version"] = {"returncode": 1, "stdout": "2.0.5\n", "stderr": ""}
    data["commands"]["micromamba info"]["returncode"] = 2
    data["commands"]["conda --version"] = {"returncode": 0, "stdout": "", "stderr": "conda 24.1.2\n"}
    data["commands"]["conda info --json"] = {"returncode": 1, "stdout": '{"platform": "osx-arm64"}', "stderr": ""}
    data["commands"]["mamba --version"] = {"returncode": 0, "stdout": "weird\n", "stderr": ""}
    data["which"] = {"conda": "/opt/conda/bin/conda"}
    facts = collect_facts(RecordedProbe(data), "/p")
    assert facts.conda_tools == (
        CondaTool("conda", "/opt/conda/bin/conda", "24.1.2", None, ""),
        CondaTool("mamba", "/recorded/bin/mamba", None, None, "`mamba --version` printed no version"),
        CondaTool("micromamba", "/recorded/bin/micromamba", None, None, "`micromamba --version` printed no version"),
    )


def test_parsers_return_none_for_what_they_do_not_recognise() -> None:
    assert parse_sw_vers("") is None and parse_sw_vers("  \n") is None
    assert parse_sw_vers("14.6.1\nBuildVersion: 23G93\n") == "14.6.1"
    assert parse_conda_info_platform('{"platform": "Linux 64"}') is None
    assert parse_conda_info_platform('{"platform": 64}') is None
    assert parse_conda_info_platform('{"platform": "linux-64"}') == "linux-64"
    assert parse_micromamba_info_platform("platform: ?\n") is None
    assert parse_micromamba_info_platform("  platform : win-64  \n") == "win-64"
    assert parse_proc_driver_version("NVRM version: something else") is None
    assert (
        parse_proc_driver_version("NVIDIA UNIX Open Kernel Module for x86_64  575.64.03  Release Build") == "575.64.03"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\n \n", "nvidia-smi printed nothing"),
        ("a, b", "expected 3 or 4 comma-separated fields, got 2: 'a, b'"),
        ("x" * 90 + ",1,2,3,4", f"expected 3 or 4 comma-separated fields, got 5: {('x' * 80)!r}"),
        ("[N/A], 580.65.06, 1024", "no GPU name in '[N/A], 580.65.06, 1024'"),
        (" , 580.65.06, 1024", "no GPU name in ' , 580.65.06, 1024'"),
        ("[N/A]" + "y" * 90 + ", 580.65.06, 1024", f"no GPU name in {('[N/A]' + 'y' * 75)!r}"),
        ("GPU, 58.65, 1024", "driver version '58.65' is not like 580.65.06"),
        ("GPU, " + "9" * 50 + ", 1024", f"driver version {'9' * 40!r} is not like 580.65.06"),
        ("GPU, 580.65.06, lots", "memory 'lots' is not a number of MiB"),
        ("GPU, 580.65.06, " + "m" * 50, f"memory {'m' * 40!r} is not a number of MiB"),
        ("GPU, 580.65.06, 1024, sm90", "compute capability 'sm90' is not like 8.6"),
        ("GPU, 580.65.06, 1024, " + "c" * 50, f"compute capability {'c' * 40!r} is not like 8.6"),
    ],
)
def test_nvidia_csv_refusals_word_for_word(text: str, message: str) -> None:
    with pytest.raises(NvidiaParseError) as info:
        parse_nvidia_smi_csv(text)
    assert str(info.value) == message


def test_nvidia_csv_unknown_fields_and_units() -> None:
    assert parse_nvidia_smi_csv("GPU, 580.65.06, [N/A], [Not Supported]\nB, 580.65.06, 2048 MiB, 8.6\n") == (
        GpuInfo("GPU", "580.65.06", None, None),
        GpuInfo("B", "580.65.06", 2048, "8.6"),
    )


PROC = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:48 UTC 2025\n"


def _smi(code: int, out: str = "", err: str = "") -> ProbeResult:
    return ProbeResult(code, out, err)


@pytest.mark.parametrize(
    ("result", "retry", "proc", "expected"),
    [
        (None, None, None, NvidiaFacts("no-driver", detail="no nvidia-smi and no NVIDIA kernel module")),
        (
            None,
            None,
            PROC,
            NvidiaFacts(
                "smi-missing", driver="580.65.06", detail="nvidia-smi not found; kernel module 580.65.06 is loaded"
            ),
        ),
        (None, None, "garbage", NvidiaFacts("no-driver", detail="no nvidia-smi and no NVIDIA kernel module")),
        (
            _smi(6, "No devices were found\n"),
            None,
            PROC,
            NvidiaFacts("no-gpu", driver="580.65.06", detail="nvidia-smi: No devices were found"),
        ),
        (
            _smi(9, "", "Failed to initialize NVML: Driver/library version mismatch\n"),
            None,
            PROC,
            NvidiaFacts(
                "driver-error", driver="580.65.06", detail="Failed to initialize NVML: Driver/library version mismatch"
            ),
        ),
        (
            _smi(139, "", ""),
            None,
            PROC,
            NvidiaFacts("unparsable", driver="580.65.06", detail="nvidia-smi exited 139: no output"),
        ),
        (
            _smi(1, "\n  " + "e" * 200 + "  \nmore\n"),
            None,
            None,
            NvidiaFacts("unparsable", detail=f"nvidia-smi exited 1: {'e' * 160}"),
        ),
        (
            _smi(0, "GPU, 580.65.06\n"),
            None,
            PROC,
            NvidiaFacts(
                "unparsable",
                driver="580.65.06",
                detail="cannot read nvidia-smi output: expected 3 or 4 comma-separated fields, got 2: 'GPU, 580.65.06'",
            ),
        ),
        # The retry answers only when the first query was refused for its field.
        (
            _smi(0, "A, 580.65.06, 1024, 8.6\n"),
            _smi(0, "B, 580.65.06, 2048\n"),
            None,
            NvidiaFacts("found", gpus=(GpuInfo("A", "580.65.06", 1024, "8.6"),), driver="580.65.06"),
        ),
        (
            _smi(2, "", 'Field "compute_cap" is not a valid field to query.\n'),
            _smi(0, "B, 470.256.02, 2048\n"),
            PROC,
            NvidiaFacts("found", gpus=(GpuInfo("B", "470.256.02", 2048, None),), driver="470.256.02"),
        ),
    ],
)
def test_interpret_nvidia_smi_word_for_word(
    result: ProbeResult | None, retry: ProbeResult | None, proc: str | None, expected: NvidiaFacts
) -> None:
    assert interpret_nvidia_smi(result, retry, proc) == expected


def test_default_target_refusal_word_for_word(spec: Spec) -> None:
    from envspec.doctor.recommend import default_target
    from envspec.errors import PlatformMismatch

    data = recording("linux-no-gpu")
    data["platform"]["machine"] = "aarch64"
    with pytest.raises(PlatformMismatch) as info:
        default_target(spec, RecordedProbe(data))
    assert (info.value.message, info.value.tip) == (
        (
            f"{spec.path}: no target fits this machine (linux-aarch64); targets: osx-arm64 (osx-arm64), "
            "osx-64 (osx-64), linux-cuda (linux-64), linux-cpu (linux-64), win-cuda (win-64)"
        ),
        "pass --target NAME, or add a target with subdir: linux-aarch64 to envspec.yml; `envspec doctor` explains",
    )
    data["platform"]["machine"] = "riscv64"
    with pytest.raises(PlatformMismatch) as info:
        default_target(spec, RecordedProbe(data))
    assert info.value.message.startswith(f"{spec.path}: no target fits this machine (Linux riscv64); targets: ")
    assert info.value.tip is not None and "subdir: Linux riscv64 to" in info.value.tip


def test_diagnose_passes_the_project_root_and_the_models_to_the_disk_check(spec: Spec) -> None:
    facts = collect_facts(RecordedProbe(recording("linux-low-disk")), "/p")
    disk = next(c for c in diagnose(facts, spec.resolve_all()).checks if c.name == "disk")
    assert disk.reason.startswith("5.0 GiB free at ., need ~16.0 GiB: ")  # the default project root
    models = ModelsNeed(GiB, "lockfiles/models.lock.yml, files not pulled yet")
    disk = next(
        c for c in diagnose(facts, spec.resolve_all(), project_root="/q", models=models).checks if c.name == "disk"
    )
    assert disk.reason == (
        "5.0 GiB free at /q, need ~13.0 GiB: environment ~12.0 GiB (default for a cuda environment) + models ~1.0 GiB "
        "(lockfiles/models.lock.yml, files not pulled yet)"
    )
    estimate = EnvEstimate(GiB, "measured")
    disk = next(c for c in diagnose(facts, spec.resolve_all(), estimate=estimate).checks if c.name == "disk")
    assert disk.reason == (
        "5.0 GiB free at ., just above the ~5.0 GiB needed: environment ~1.0 GiB (measured) + 4.0 GiB for an SD-1 "
        "checkpoint"
    )


def test_thresholds_the_first_pass_left_open(spec: Spec) -> None:
    # Two GPUs: "+1 more".
    two = _facts(NvidiaFacts("found", gpus=(_gpu("A", mib=1024), _gpu("B")), driver="580.65.06"))
    assert cuda_checks(two, _cuda_target(spec, "12.9"), [])[0].reason == "B (+1 more), driver 580.65.06"
    # An old GPU exactly at the CUDA 12 floor is covered by the CUDA 12 target.
    at_floor = _gpu_rows(spec, _gpu(cc="5.0", driver="595.45.04"), cuda="13.0", targets=("12.6",))
    assert at_floor[2][3] == "use --target linux-cuda-12.6"
    # A CUDA major without a known floor is taken to cover the GPU.
    unknown = _gpu_rows(spec, _gpu(cc="6.1", driver="595.45.04"), cuda="13.0", targets=("14.0",))
    assert unknown[2][3] == "use --target linux-cuda-14.0"
    # Windows floors decide which lower target the driver runs (560.50 passes Linux's 560.28.03, not 560.76).
    win, lower = _cuda_target(spec, "12.9", name="win-cuda"), _cuda_target(spec, "12.6", name="win-cuda")
    facts = _facts(NvidiaFacts("found", gpus=(_gpu(driver="560.50"),), driver="560.50"), system="Windows")
    assert rows(cuda_checks(facts, win, [win, lower]))[1][3] == (
        "update the NVIDIA driver to >= 576.02, or add a target for win-64 with cuda-version 12.5 to envspec.yml"
    )
    # Checkpoint sizes just either side of a rounding step (MB with one decimal, GB with two).
    assert check_checkpoint("c", 999_950_500).reason.startswith("c is only 1000.0 MB;")
    assert check_checkpoint("c", 4_265_000_002).reason.startswith("c (4.27 GB);")
    # An MPS target whose __osx is exactly the MPS minimum: both reasons.
    arm = dataclasses.replace(spec.resolve("osx-arm64"), virtual_packages={"__osx": "14"})
    assert system_checks(_mac(False, True, macos="15.1"), arm)[1].reason == (
        "macOS 15.1 >= 14 (target's __osx and MPS minimum)"
    )


def test_rosetta_alone_means_apple_silicon() -> None:
    data = recording("m1-rosetta")
    del data["commands"]["sysctl -n hw.optional.arm64"]
    facts = collect_facts(RecordedProbe(data), "/p")
    assert (facts.rosetta, facts.apple_silicon, facts.hardware_subdir) == (True, True, "osx-arm64")


def test_project_root_loses_only_its_trailing_slashes() -> None:
    data = recording("linux-h100-580")
    data["disk_free"] = None
    probe = PathProbe(data)
    facts = collect_facts(probe, "/srv/X\\/")
    assert facts.notes["disk"] == "free space at /srv/X is unreadable"
    assert probe.paths == ["disk_free /srv/X", "file_size /srv/X/models/ldm/stable-diffusion-v1/model.ckpt"]


def test_installer_describes_every_tool_after_an_unreadable_one(spec: Spec) -> None:
    target = spec.resolve("osx-arm64")
    facts = _tools(CondaTool("conda", "/b/conda", None), CondaTool("micromamba", "/b/micromamba", "2.0.5"))
    assert check_installer(facts, target).reason == (
        "conda (version unknown); micromamba 2.0.5; install with "
        "`conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock`"
    )
