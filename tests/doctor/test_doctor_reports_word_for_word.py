"""Every recorded machine's full diagnosis, word for word, and the doctor's JSON document.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from checks_support import (
    DATA,
    DRIVER_580,
    NO_XCODE,
    _plat,
    recording,
    rows,
)

from envspec.doctor.diagnosis import SCHEMA, Diagnosis, diagnose, resource_checks
from envspec.doctor.machine import (
    MachineFacts,
    collect_facts,
)
from envspec.doctor.probe import RecordedProbe
from envspec.doctor.resources import EnvEstimate
from envspec.doctor.tools import LONG_PATHS_FIX
from envspec.spec.load import Spec

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
