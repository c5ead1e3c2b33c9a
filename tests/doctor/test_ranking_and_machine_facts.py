"""How targets are ranked for a machine, and what the doctor asks the machine and makes of its answers.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from checks_support import (
    GiB,
    _cuda_target,
    _facts,
    _gpu,
    _gpu_rows,
    _mac,
    _plat,
    _tools,
    recording,
    rows,
)

from envspec.doctor.checkpoint import check_checkpoint
from envspec.doctor.diagnosis import diagnose
from envspec.doctor.gpu import (
    cuda_checks,
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
from envspec.doctor.platform import system_checks
from envspec.doctor.probe import DistroFacts, PlatformFacts, ProbeResult, RecordedProbe
from envspec.doctor.recommend import Fit, rank_targets, recommend_target
from envspec.doctor.resources import EnvEstimate, ModelsNeed
from envspec.doctor.tools import check_installer
from envspec.spec.load import ResolvedTarget, Spec

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
