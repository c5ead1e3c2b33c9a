"""The parsers behind the doctor's facts: real tools' output formats, and fuzzing for no crash."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envspec.doctor.check import Status
from envspec.doctor.diagnosis import diagnose
from envspec.doctor.gpu import CUDA_DRIVER_TABLE, driver_floor, max_cuda_for_driver
from envspec.doctor.machine import (
    NVIDIA_QUERY,
    GpuInfo,
    NvidiaParseError,
    collect_facts,
    interpret_nvidia_smi,
    parse_conda_info_platform,
    parse_conda_version,
    parse_micromamba_info_platform,
    parse_nvidia_smi_csv,
    parse_proc_driver_version,
    parse_sw_vers,
    parse_sysctl_flag,
)
from envspec.doctor.probe import ProbeResult, RecordedProbe, parse_os_release
from envspec.spec.load import ResolvedTarget, load_spec
from envspec.versions import version_tuple


def test_nvidia_csv_one_and_many_gpus() -> None:
    assert parse_nvidia_smi_csv("NVIDIA H100 80GB HBM3, 580.65.06, 81559, 9.0\n") == (
        GpuInfo("NVIDIA H100 80GB HBM3", "580.65.06", 81559, "9.0"),
    )
    two = parse_nvidia_smi_csv(
        "NVIDIA GeForce RTX 3090, 575.64.03, 24576, 8.6\nNVIDIA GeForce GTX 1080 Ti, 575.64.03, 11264, 6.1\n"
    )
    assert [g.compute_cap for g in two] == ["8.6", "6.1"]
    # Units left in (no `nounits`), fields the GPU does not support.
    assert parse_nvidia_smi_csv("Tesla T4, 535.216.01, 15360 MiB, 7.5")[0].memory_mib == 15360
    assert parse_nvidia_smi_csv("NVIDIA A10G, 550.54.15, [N/A], [N/A]")[0] == GpuInfo(
        "NVIDIA A10G", "550.54.15", None, None
    )
    # Old drivers: no compute_cap column.
    assert parse_nvidia_smi_csv("Tesla V100-SXM2-16GB, 470.182.03, 16160")[0].compute_cap is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "[Unknown Error], [Unknown Error], [Unknown Error], [Unknown Error]",
        "NVIDIA H100, not-a-driver, 81559, 9.0",
        "NVIDIA H100, 580.65.06, lots, 9.0",
        "NVIDIA H100, 580.65.06, 81559, sm90",
        "name, driver_version, memory.total [MiB], compute_cap",  # a header slipped in
        "a,b",
    ],
)
def test_nvidia_csv_garbage_is_a_parse_error(text: str) -> None:
    with pytest.raises(NvidiaParseError):
        parse_nvidia_smi_csv(text)


def test_interpret_nvidia_smi() -> None:
    assert interpret_nvidia_smi(None).status == "no-driver"
    proc = (
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Wed Aug 27 05:01:49 UTC 2025\n"
    )
    missing = interpret_nvidia_smi(None, proc_version=proc)
    assert missing.status == "smi-missing" and missing.driver == "580.82.07"
    ok = interpret_nvidia_smi(ProbeResult(0, "NVIDIA L4, 570.172.08, 23034, 8.9\n", ""))
    assert ok.status == "found" and ok.driver == "570.172.08" and ok.best is not None
    bad_field = ProbeResult(2, 'Field "compute_cap" is not a valid field to query.\n', "")
    retry = ProbeResult(0, "Tesla P100-PCIE-16GB, 470.57.02, 16280\n", "")
    assert interpret_nvidia_smi(bad_field, retry).gpus[0].name == "Tesla P100-PCIE-16GB"
    assert interpret_nvidia_smi(ProbeResult(124, "", "timed out after 15 s")).status == "unparsable"


def test_best_gpu_is_the_biggest() -> None:
    facts = interpret_nvidia_smi(
        ProbeResult(0, "NVIDIA GeForce GT 1030, 580.65.06, 2048, 6.1\nNVIDIA RTX A6000, 580.65.06, 49140, 8.6\n", "")
    )
    assert facts.best is not None and facts.best.name == "NVIDIA RTX A6000"


def test_sw_vers_sysctl_conda() -> None:
    assert parse_sw_vers("15.1\n") == "15.1"
    assert parse_sw_vers("14.6.1\n") == "14.6.1"
    assert parse_sw_vers("ProductName:\tmacOS\n") is None
    assert parse_sysctl_flag(ProbeResult(0, "1\n", "")) is True
    assert parse_sysctl_flag(ProbeResult(0, "0\n", "")) is False
    assert parse_sysctl_flag(ProbeResult(1, "", "sysctl: unknown oid 'sysctl.proc_translated'\n")) is False
    assert parse_sysctl_flag(ProbeResult(0, "maybe\n", "")) is None
    assert parse_sysctl_flag(None) is None
    assert parse_conda_version("conda 25.9.1\n") == "25.9.1"
    assert parse_conda_version("mamba 1.5.8\nconda 24.3.0\n") == "1.5.8"
    assert parse_conda_version("2.0.5\n") == "2.0.5"
    assert parse_conda_version("command not found") is None
    assert parse_conda_info_platform('{"platform": "osx-64", "conda_version": "23.7.4"}') == "osx-64"
    assert parse_conda_info_platform("not json") is None
    assert parse_conda_info_platform('["osx-64"]') is None
    assert parse_micromamba_info_platform("  libmamba version : 2.0.5\n         platform : osx-arm64\n") == "osx-arm64"
    assert parse_proc_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May\n") == (
        "470.256.02"
    )


def test_os_release() -> None:
    d = parse_os_release('NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n')
    assert d is not None and (d.id, d.version, d.name) == ("ubuntu", "24.04", "Ubuntu 24.04.1 LTS")
    assert parse_os_release("# nothing here\n") is None


def test_driver_table_is_ordered_and_consistent() -> None:
    """Newer CUDA never needs an older driver (a typo in the table would break this)."""
    rows = sorted(CUDA_DRIVER_TABLE, key=lambda r: version_tuple(r.cuda))
    for system in ("Linux", "Windows"):
        floors = [version_tuple(driver_floor(r.cuda, system)[0]) for r in rows]  # type: ignore[index]
        assert floors == sorted(floors), system
    assert driver_floor("12.9", "Linux") == ("575.51.03", "525.60.13")
    assert driver_floor("12.8", "Windows") == ("570.65", "528.33")
    assert driver_floor("13.0", "Windows") == ("580", "580")
    assert driver_floor("12.7", "Linux") == ("560.28.03", "525.60.13")  # between rows: the older row
    assert driver_floor("11.8", "Linux") is None
    assert max_cuda_for_driver("580.65.06", "Linux") == "13.0"
    assert max_cuda_for_driver("570.124.06", "Linux") == "12.8"
    assert max_cuda_for_driver("470.256.02", "Linux") is None


# ---- Fuzzing: bad probe output is a WARN with a reason, never a crash ---------------------

CSV_FIELD = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["[N/A]", "[Not Supported]", "580.65.06", "81559", "9.0", "8.6", " MiB", ""]),
)


@pytest.mark.fuzz
@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(CSV_FIELD, min_size=0, max_size=6).map(", ".join), max_size=4).map("\n".join))
def test_any_nvidia_csv_parses_or_raises_a_parse_error(text: str) -> None:
    try:
        gpus = parse_nvidia_smi_csv(text)
    except NvidiaParseError:
        return
    assert gpus and all(g.name and g.driver for g in gpus)


@pytest.mark.fuzz
@settings(max_examples=150, deadline=None)
@given(
    stdout=st.one_of(st.text(max_size=200), st.binary(max_size=100).map(lambda b: b.decode("latin-1"))),
    stderr=st.text(max_size=80),
    returncode=st.integers(min_value=-15, max_value=255),
)
def test_the_doctor_survives_any_nvidia_smi_output(
    stdout: str, stderr: str, returncode: int, linux_cuda: ResolvedTarget
) -> None:
    data = {
        "platform": {"system": "Linux", "machine": "x86_64", "release": "6.8.0"},
        "commands": {
            "nvidia-smi " + " ".join(NVIDIA_QUERY): {"returncode": returncode, "stdout": stdout, "stderr": stderr}
        },
        "glibc": "2.39",
        "disk_free": 10**12,
        "memory_total": 2**35,
    }
    report = diagnose(collect_facts(RecordedProbe(data), "/p"), [linux_cuda])
    gpu = next(c for c in report.checks if c.name == "nvidia-gpu")
    assert gpu.reason
    if gpu.status is not Status.PASS:
        assert gpu.fix
    assert all(c.reason for c in report.checks)


@pytest.mark.fuzz
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_the_text_parsers_never_raise(text: str) -> None:
    parse_sw_vers(text)
    parse_conda_version(text)
    parse_conda_info_platform(text)
    parse_micromamba_info_platform(text)
    parse_proc_driver_version(text)
    parse_os_release(text)
    parse_sysctl_flag(ProbeResult(0, text, text))


@functools.cache
def _shipped_targets() -> list[ResolvedTarget]:
    return load_spec(Path(__file__).resolve().parents[2] / "envspec.yml").resolve_all()


@pytest.fixture(scope="module")
def linux_cuda() -> ResolvedTarget:
    return next(t for t in _shipped_targets() if t.name == "linux-cuda")


ANSWER = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "returncode": st.integers(min_value=-9, max_value=255),
            "stdout": st.text(max_size=60),
            "stderr": st.text(max_size=30),
        }
    ),
)


@pytest.mark.fuzz
@settings(max_examples=150, deadline=None)
@given(
    system=st.sampled_from(["Darwin", "Linux", "Windows", "FreeBSD"]),
    machine=st.sampled_from(["arm64", "x86_64", "AMD64", "aarch64", "riscv64"]),
    answers=st.lists(ANSWER, min_size=8, max_size=8),
    os_release=st.one_of(st.none(), st.text(max_size=80)),
    numbers=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=2**45)), min_size=2, max_size=2),
)
def test_the_whole_doctor_survives_any_recording(
    system: str, machine: str, answers: list[Any], os_release: str | None, numbers: list[int | None]
) -> None:
    """Any answers from any tool on any platform: a report with reasons, never an exception."""
    commands = [
        "sysctl -n sysctl.proc_translated",
        "sysctl -n hw.optional.arm64",
        "sw_vers -productVersion",
        "xcode-select -p",
        "nvidia-smi " + " ".join(NVIDIA_QUERY),
        "conda --version",
        "conda info --json",
        "micromamba --version",
    ]
    data = {
        "platform": {"system": system, "machine": machine},
        "commands": dict(zip(commands, answers, strict=True)),
        "files": {} if os_release is None else {"/etc/os-release": os_release},
        "disk_free": numbers[0],
        "memory_total": numbers[1],
    }
    targets = _shipped_targets()
    facts = collect_facts(RecordedProbe(data), "/p")
    for chosen in [None, *targets]:
        report = diagnose(facts, targets, chosen=chosen)
        assert report.checks
        for c in report.checks:
            assert c.reason and c.status in Status
