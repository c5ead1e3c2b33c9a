"""The GPU checks at each boundary: the driver table, compute capability and memory thresholds.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from checks_support import (
    DRIVER_580,
    GiB,
    MiB,
    _cuda_target,
    _facts,
    _gpu,
    _gpu_rows,
    _plat,
    rows,
)

from envspec.doctor.check import DOCTOR_ADVICE, UP_ADVICE, Status, gib
from envspec.doctor.gpu import (
    accelerator_present,
    arch_name,
    cuda_checks,
    driver_floor,
    max_cuda_for_driver,
    target_cuda,
)
from envspec.doctor.machine import (
    MachineFacts,
    NvidiaFacts,
)
from envspec.spec.load import Spec

# ---- GPU: the driver table, compute capability and memory thresholds ------------------------------


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
