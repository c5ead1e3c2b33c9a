"""The doctor on recorded machines: each of the four platforms' situations, from this Linux box."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from envspec.doctor.check import Status
from envspec.doctor.diagnosis import Diagnosis, diagnose
from envspec.doctor.machine import collect_facts, host_subdir
from envspec.doctor.probe import RecordedProbe
from envspec.doctor.recommend import default_target, recommend_target
from envspec.doctor.resources import estimate_env_bytes
from envspec.errors import PlatformMismatch
from envspec.spec.load import Spec, parse_spec

DATA = Path(__file__).resolve().parent.parent / "data" / "doctor"
GiB = 1024**3


def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def run_doctor(data: dict[str, Any], spec: Spec, target: str | None = None) -> Diagnosis:
    facts = collect_facts(RecordedProbe(data), "/home/ada/sd")
    targets = spec.resolve_all()
    chosen = spec.resolve(target) if target else None
    return diagnose(facts, targets, chosen=chosen, project_root="/home/ada/sd")


def statuses(report: Diagnosis) -> dict[str, Status]:
    return {c.name: c.status for c in report.checks}


def check(report: Diagnosis, name: str) -> Any:
    return next(c for c in report.checks if c.name == name)


@pytest.fixture(scope="module")
def repo() -> Path:
    return Path(__file__).resolve().parents[2]


def spec_with(repo: Path, extra: dict[str, dict[str, Any]], drop: tuple[str, ...] = ()) -> Spec:
    """The shipped spec plus/minus targets (a CUDA 13 variant, a linux-cpu target...)."""
    data = yaml.safe_load((repo / "envspec.yml").read_text())
    for name in drop:
        del data["targets"][name]
    data["targets"].update(extra)
    return parse_spec(yaml.safe_dump(data, sort_keys=False), repo / "envspec.yml")


def cuda13_target(repo: Path) -> dict[str, Any]:
    data = yaml.safe_load((repo / "envspec.yml").read_text())
    target: dict[str, Any] = copy.deepcopy(data["targets"]["linux-cuda"])
    target["virtual_packages"]["__cuda"] = "13.0"
    target["torch"] = ["pytorch=*=cuda*", "cuda-version=13.0"]
    target["description"] = "Linux with an NVIDIA GPU, CUDA 13 (sm_75+, driver >= 580)"
    return target


def cpu_target(subdir: str = "linux-64") -> dict[str, Any]:
    return {
        "subdir": subdir,
        "accelerator": "cpu",
        "virtual_packages": {"__unix": "0", "__glibc": "2.28"},
        "torch": ["pytorch=*=cpu*"],
        "runner": "ubuntu-latest",
        "smoke_device": "cpu",
    }


# ---- Apple ---------------------------------------------------------------------------------


def test_m1_with_arm64_python_passes_everything(spec: Spec) -> None:
    report = run_doctor(recording("m1-arm64"), spec)
    assert report.recommended is not None and report.recommended.name == "osx-arm64"
    assert statuses(report) == {
        "platform": Status.PASS,
        "rosetta": Status.PASS,
        "macos": Status.PASS,
        "conda-subdir": Status.PASS,
        "xcode-clt": Status.PASS,
        "disk": Status.PASS,
        "memory": Status.PASS,
        "installer": Status.PASS,
        "checkpoint": Status.PASS,
    }
    assert not report.failed
    assert "not needed" in check(report, "xcode-clt").reason
    assert "MPS" in check(report, "macos").reason
    assert (
        "micromamba create -n stable-diffusion-osx-arm64 -f lockfiles/osx-arm64.lock"
        in check(report, "installer").reason
    )


def test_m1_under_rosetta_recommends_arm64_and_fails_with_the_subdir_fix(spec: Spec) -> None:
    report = run_doctor(recording("m1-rosetta"), spec)
    # The hardware decides, not the translated Python: an M1 gets osx-arm64.
    assert report.recommended is not None and report.recommended.name == "osx-arm64"
    s = statuses(report)
    assert s["rosetta"] is Status.FAIL
    assert s["platform"] is Status.PASS
    rosetta = check(report, "rosetta")
    assert "proc_translated = 1" in rosetta.reason and "no MPS" in rosetta.reason
    assert "CONDA_SUBDIR=osx-arm64" in rosetta.fix
    # The Intel conda itself: locked install works, a solve would pick osx-64.
    assert s["conda-subdir"] is Status.WARN
    assert "osx-64" in check(report, "conda-subdir").reason
    # conda 23.7 predates explicit files in `conda env create`; `conda create --file` works.
    installer = check(report, "installer")
    assert installer.status is Status.PASS
    assert "conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock" in installer.reason
    assert "cannot read explicit files" in installer.reason
    assert report.failed


def test_rosetta_checking_the_intel_target_is_only_a_warning(spec: Spec) -> None:
    report = run_doctor(recording("m1-rosetta"), spec, target="osx-64")
    s = statuses(report)
    assert s["platform"] is Status.WARN  # osx-64 runs on an M1 only under emulation
    assert s["rosetta"] is Status.WARN
    assert "--target osx-arm64" in check(report, "platform").fix


def test_intel_mac_gets_osx_64(spec: Spec) -> None:
    report = run_doctor(recording("intel-mac"), spec)
    assert report.recommended is not None and report.recommended.name == "osx-64"
    s = statuses(report)
    assert s["rosetta"] is Status.PASS and "Intel Mac" in check(report, "rosetta").reason
    assert s["macos"] is Status.PASS and "13.7.1 >= 13.0" in check(report, "macos").reason
    assert s["installer"] is Status.PASS and "reads explicit files too" in check(report, "installer").reason
    assert not report.failed


def test_intel_mac_cannot_run_the_mps_target(spec: Spec) -> None:
    report = run_doctor(recording("intel-mac"), spec, target="osx-arm64")
    assert statuses(report)["platform"] is Status.FAIL
    assert "--target osx-64" in check(report, "platform").fix


def test_m1_on_macos_13_fails_the_mps_minimum(spec: Spec) -> None:
    data = recording("m1-arm64")
    data["commands"]["sw_vers -productVersion"]["stdout"] = "13.6.7\n"
    report = run_doctor(data, spec)
    macos = check(report, "macos")
    assert macos.status is Status.FAIL
    assert "older than 14.0" in macos.reason and "Software Update" in macos.fix


def test_xcode_clt_is_checked_only_when_the_spec_needs_a_compiler(repo: Path) -> None:
    data = yaml.safe_load((repo / "envspec.yml").read_text())
    data["targets"]["osx-arm64"]["packages"] = ["cxx-compiler"]
    spec = parse_spec(yaml.safe_dump(data), repo / "envspec.yml")
    rosetta_mac = recording("m1-rosetta")  # xcode-select -p fails on this one
    report = run_doctor(rosetta_mac, spec)
    xcode = check(report, "xcode-clt")
    assert xcode.status is Status.FAIL and xcode.fix == "xcode-select --install"
    assert "cxx-compiler" in xcode.reason


# ---- NVIDIA --------------------------------------------------------------------------------


def test_linux_h100_driver_580(spec: Spec) -> None:
    report = run_doctor(recording("linux-h100-580"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda"
    s = statuses(report)
    assert all(status is Status.PASS for status in s.values()), s
    assert "driver 580.65.06 >= 575.51.03 for CUDA 12.9" in check(report, "nvidia-driver").reason
    assert "supports CUDA <= 13.0" in check(report, "nvidia-driver").reason
    assert check(report, "compute-capability").reason.startswith("sm_90 (Hopper)")
    assert "79.6 GiB" in check(report, "gpu-memory").reason
    assert "Ubuntu 24.04.1 LTS" in check(report, "distro").reason
    assert "glibc 2.39 >= 2.28" in check(report, "glibc").reason


def test_linux_old_driver_fails_and_falls_back_to_the_query_without_compute_cap(spec: Spec) -> None:
    data = recording("linux-old-driver")
    probe = RecordedProbe(data)
    report = diagnose(collect_facts(probe, "/p"), spec.resolve_all())
    assert report.recommended is not None and report.recommended.name == "linux-cuda"
    assert any("memory.total --format" in call for call in probe.calls)  # asked again without compute_cap
    s = statuses(report)
    assert s["nvidia-gpu"] is Status.PASS
    assert s["nvidia-driver"] is Status.FAIL
    driver = check(report, "nvidia-driver")
    assert "470.256.02 is too old for CUDA 12.9" in driver.reason and ">= 575.51.03" in driver.fix
    assert s["compute-capability"] is Status.WARN  # driver 470 cannot report it
    assert s["glibc"] is Status.PASS and "2.28 >= 2.28" in check(report, "glibc").reason
    assert s["distro"] is Status.PASS and "Rocky Linux 8.10" in check(report, "distro").reason
    assert s["kernel"] is Status.WARN  # RHEL 8's 4.18 is older than the __linux 5.10 the lock assumed
    assert (
        "mamba create -n stable-diffusion-linux-cuda --file lockfiles/linux-cuda.lock"
        in check(report, "installer").reason
    )
    assert report.failed


def test_driver_between_minor_compat_and_full_support_warns(spec: Spec) -> None:
    data = recording("linux-h100-580")
    key = next(iter(data["commands"]))
    data["commands"][key]["stdout"] = "NVIDIA A100-SXM4-40GB, 550.127.05, 40960, 8.0\n"
    report = run_doctor(data, spec)
    driver = check(report, "nvidia-driver")
    assert driver.status is Status.WARN
    assert "minor-version compatibility" in driver.reason and "supports CUDA <= 12.4" in driver.reason


def test_pascal_on_a_cuda13_only_spec_fails_compute_capability(repo: Path) -> None:
    spec = spec_with(repo, {"linux-cuda13": cuda13_target(repo)}, drop=("linux-cuda",))
    report = run_doctor(recording("linux-pascal"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda13"
    cc = check(report, "compute-capability")
    assert cc.status is Status.FAIL
    assert "sm_61 (Pascal) is below sm_75" in cc.reason
    assert "CUDA 12.x" in cc.fix
    assert statuses(report)["nvidia-driver"] is Status.PASS  # 580.95 is new enough for 13.0


def test_pascal_with_both_cuda_majors_is_recommended_cuda12(repo: Path) -> None:
    spec = spec_with(repo, {"linux-cuda13": cuda13_target(repo)})
    report = run_doctor(recording("linux-pascal"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda"
    assert not report.failed
    # ...and checking the CUDA 13 target names the one that works.
    report13 = run_doctor(recording("linux-pascal"), spec, target="linux-cuda13")
    assert check(report13, "compute-capability").fix == "use --target linux-cuda"


def test_h100_with_both_cuda_majors_gets_the_newest(repo: Path) -> None:
    spec = spec_with(repo, {"linux-cuda13": cuda13_target(repo)})
    report = run_doctor(recording("linux-h100-580"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda13"


def test_windows_with_cuda(spec: Spec) -> None:
    report = run_doctor(recording("windows-cuda"), spec)
    assert report.recommended is not None and report.recommended.name == "win-cuda"
    s = statuses(report)
    assert s.pop("long-paths") is Status.WARN  # recorded LongPathsEnabled 0, Windows' default
    assert all(status is Status.PASS for status in s.values()), s
    # Windows numbers differ from Linux: 12.9 needs 576.02 there (575.51.03 on Linux).
    assert "576.88 >= 576.02 for CUDA 12.9" in check(report, "nvidia-driver").reason
    assert "sm_89 (Ada)" in check(report, "compute-capability").reason
    assert "glibc" not in s and "rosetta" not in s


LONG_PATHS = "SYSTEM\\CurrentControlSet\\Control\\FileSystem\\LongPathsEnabled"


@pytest.mark.parametrize(
    ("registry", "status", "words"),
    [
        ({LONG_PATHS: 1}, Status.PASS, "LongPathsEnabled is set"),
        ({LONG_PATHS: 0}, Status.WARN, "LongPathsEnabled is off"),
        ({}, Status.WARN, "cannot read LongPathsEnabled"),
    ],
)
def test_windows_long_paths_come_from_the_registry(
    spec: Spec, registry: dict[str, int], status: Status, words: str
) -> None:
    data = recording("windows-cuda")
    data["registry"] = registry
    report = run_doctor(data, spec)
    long_paths = check(report, "long-paths")
    assert long_paths.status is status and words in long_paths.reason
    assert (long_paths.fix is None) is (status is Status.PASS)
    assert long_paths.fix is None or "LongPathsEnabled /t REG_DWORD /d 1" in long_paths.fix


def test_long_paths_are_asked_of_windows_only(spec: Spec) -> None:
    data = recording("linux-h100-580")
    data["registry"] = {LONG_PATHS: 0}  # what a Linux probe would never answer; the doctor does not ask
    assert "long-paths" not in statuses(run_doctor(data, spec))


def test_windows_driver_too_old(spec: Spec) -> None:
    data = recording("windows-cuda")
    key = next(k for k in data["commands"] if k.startswith("nvidia-smi"))
    data["commands"][key]["stdout"] = "NVIDIA GeForce RTX 3060, 512.95, 12288, 8.6\n"
    report = run_doctor(data, spec)
    assert check(report, "nvidia-driver").status is Status.FAIL


def test_no_gpu_checking_the_cuda_target_gets_a_fail_and_the_way_on(spec: Spec) -> None:
    report = run_doctor(recording("linux-no-gpu"), spec, "linux-cuda")
    assert report.recommended is not None and report.recommended.name == "linux-cpu"  # the shipped CPU target
    gpu = check(report, "nvidia-gpu")
    assert gpu.status is Status.FAIL
    assert "no NVIDIA GPU" in gpu.reason
    assert "--allow-cpu" in gpu.fix and "use --target linux-cpu" in gpu.fix
    s = statuses(report)
    assert "nvidia-driver" not in s and "gpu-memory" not in s  # one FAIL, not a wall of them
    assert s["installer"] is Status.PASS and "py-rattler" in check(report, "installer").reason


def test_no_gpu_gets_a_cpu_target_when_the_spec_has_one(repo: Path) -> None:
    spec = spec_with(repo, {"linux-cpu": cpu_target()})
    report = run_doctor(recording("linux-no-gpu"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cpu"
    assert not report.failed
    # ...while a GPU machine with the same spec still gets CUDA.
    gpu_report = run_doctor(recording("linux-h100-580"), spec)
    assert gpu_report.recommended is not None and gpu_report.recommended.name == "linux-cuda"


def test_the_accelerator_the_machine_has_outranks_fewer_failures(repo: Path) -> None:
    cpu = cpu_target()
    cpu["virtual_packages"]["__glibc"] = "2.40"  # newer than the recorded 2.39: a FAIL on this machine
    spec = spec_with(repo, {"linux-cpu": cpu})
    # No GPU: both targets fail once; the CPU target is the one this machine can really run.
    report = run_doctor(recording("linux-no-gpu"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cpu"
    # nvidia-smi answering garbage still means a driver (and likely a GPU) is there: CUDA stays first.
    report = run_doctor(recording("linux-garbage-smi"), spec_with(repo, {"linux-cpu": cpu_target()}))
    assert report.recommended is not None and report.recommended.name == "linux-cuda"


def test_low_disk_fails(spec: Spec) -> None:
    report = run_doctor(recording("linux-low-disk"), spec)
    disk = check(report, "disk")
    assert disk.status is Status.FAIL
    assert "5.0 GiB free" in disk.reason and "SD-1 checkpoint" in disk.reason
    assert "CONDA_PKGS_DIRS" in disk.fix


def test_disk_estimate_uses_lockfile_sizes(spec: Spec) -> None:
    target = spec.resolve("linux-cuda")
    lock = {
        "version": 1,
        "package": [
            {"name": "pytorch", "version": "2.8.0", "platform": "linux-64", "size": 1_500_000_000},
            {"name": "python", "version": "3.12.11", "platform": "linux-64", "size": 30_000_000},
            {"name": "other-platform", "version": "1.0", "platform": "osx-arm64", "size": 9_000_000_000},
        ],
    }
    estimate = estimate_env_bytes(yaml.safe_dump(lock), target)
    assert estimate.bytes == int(1_530_000_000 * 4.0)
    assert "2 packages" in estimate.source
    # conda-lock's own format carries no sizes: a documented default.
    no_sizes = estimate_env_bytes(
        yaml.safe_dump({"version": 1, "package": [{"name": "python", "version": "3.12.11", "platform": "linux-64"}]}),
        target,
    )
    assert no_sizes.bytes == 12 * GiB and "no sizes" in no_sizes.source
    assert estimate_env_bytes("garbage", target).bytes == 12 * GiB
    # 13 GiB free: enough for the sized lockfile (+ checkpoint, + 25% headroom), not for the default.
    data = recording("linux-low-disk")
    data["disk_free"] = 13 * GiB
    facts = collect_facts(RecordedProbe(data), "/p")
    assert check(diagnose(facts, [target], estimate=estimate), "disk").status is Status.PASS
    assert check(diagnose(facts, [target], estimate=no_sizes), "disk").status is Status.FAIL


def test_missing_nvidia_smi_with_a_loaded_driver_warns(spec: Spec) -> None:
    report = run_doctor(recording("linux-no-smi"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda"
    gpu = check(report, "nvidia-gpu")
    assert gpu.status is Status.WARN and "nvidia-smi not found" in gpu.reason
    assert "580.65.06" in gpu.reason
    assert check(report, "nvidia-driver").status is Status.PASS  # from /proc/driver/nvidia/version
    assert not report.failed


def test_garbage_nvidia_smi_output_warns(spec: Spec) -> None:
    report = run_doctor(recording("linux-garbage-smi"), spec)
    assert report.recommended is not None and report.recommended.name == "linux-cuda"
    gpu = check(report, "nvidia-gpu")
    assert gpu.status is Status.WARN
    assert "cannot read nvidia-smi output" in gpu.reason and "no GPU name" in gpu.reason
    assert not report.failed


SMI_NO_DRIVER = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n\n"
)


@pytest.mark.parametrize(
    ("result", "status", "words"),
    [
        ({"returncode": 6, "stdout": "No devices were found\n", "stderr": ""}, Status.FAIL, "sees no GPU"),
        ({"returncode": 9, "stdout": SMI_NO_DRIVER, "stderr": ""}, Status.FAIL, "cannot talk to the driver"),
        ({"returncode": 139, "stdout": "", "stderr": "Segmentation fault\n"}, Status.WARN, "exited 139"),
    ],
)
def test_nvidia_smi_failures(spec: Spec, result: dict[str, Any], status: Status, words: str) -> None:
    data = recording("linux-garbage-smi")
    key = next(iter(data["commands"]))
    data["commands"][key] = result
    gpu = check(run_doctor(data, spec, "linux-cuda"), "nvidia-gpu")
    assert gpu.status is status and words in gpu.reason


def test_small_gpu_memory(spec: Spec) -> None:
    data = recording("linux-h100-580")
    key = next(k for k in data["commands"] if k.startswith("nvidia-smi"))
    data["commands"][key]["stdout"] = "NVIDIA GeForce GTX 1650, 580.65.06, 4096, 7.5\n"
    assert check(run_doctor(data, spec), "gpu-memory").status is Status.WARN
    data["commands"][key]["stdout"] = "NVIDIA GeForce GT 1030, 580.65.06, 2048, 6.1\n"
    assert check(run_doctor(data, spec), "gpu-memory").status is Status.FAIL


def test_blackwell_needs_cuda_12_8(repo: Path) -> None:
    target = cuda13_target(repo)
    target["virtual_packages"]["__cuda"] = "12.6"
    target["torch"] = ["pytorch=*=cuda*", "cuda-version=12.6"]
    spec = spec_with(repo, {"linux-cuda126": target}, drop=("linux-cuda",))
    data = recording("linux-h100-580")
    key = next(k for k in data["commands"] if k.startswith("nvidia-smi"))
    data["commands"][key]["stdout"] = "NVIDIA GeForce RTX 5090, 580.65.06, 32607, 12.0\n"
    cc = check(run_doctor(data, spec), "compute-capability")
    assert cc.status is Status.FAIL and "needs CUDA >= 12.8" in cc.reason


# ---- Other situations ----------------------------------------------------------------------


def test_glibc_too_old(spec: Spec) -> None:
    data = recording("linux-h100-580")
    data["glibc"] = "2.17"
    glibc = check(run_doctor(data, spec), "glibc")
    assert glibc.status is Status.FAIL and "2.17 is older than 2.28" in glibc.reason


def test_musl_or_unknown_glibc_warns(spec: Spec) -> None:
    data = recording("linux-h100-580")
    data["glibc"] = None
    del data["files"]["/etc/os-release"]
    s = statuses(run_doctor(data, spec))
    assert s["glibc"] is Status.WARN and s["distro"] is Status.WARN


def test_conda_subdir_env_for_another_platform_fails(spec: Spec) -> None:
    data = recording("m1-arm64")
    data["env"] = {"CONDA_SUBDIR": "osx-64"}
    cs = check(run_doctor(data, spec), "conda-subdir")
    assert cs.status is Status.FAIL and "CONDA_SUBDIR=osx-arm64" in cs.fix


def test_checkpoint_found_or_suspicious(spec: Spec) -> None:
    data = recording("linux-h100-580")
    data["files"]["models/ldm/stable-diffusion-v1/model.ckpt"] = 4_265_380_512
    report = run_doctor(data, spec)
    assert check(report, "checkpoint").status is Status.PASS and "4.27 GB" in check(report, "checkpoint").reason
    assert "SD-1 checkpoint" not in check(report, "disk").reason  # already downloaded
    data["files"]["models/ldm/stable-diffusion-v1/model.ckpt"] = (
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4265380512\n"
    )
    assert check(run_doctor(data, spec), "checkpoint").status is Status.WARN


def test_low_ram(spec: Spec) -> None:
    data = recording("linux-no-gpu")
    data["memory_total"] = 6 * GiB
    assert check(run_doctor(data, spec), "memory").status is Status.WARN
    data["memory_total"] = 3 * GiB
    assert check(run_doctor(data, spec), "memory").status is Status.FAIL
    data["memory_total"] = None
    assert check(run_doctor(data, spec), "memory").status is Status.WARN


def test_unreadable_conda_version_warns(spec: Spec) -> None:
    data = recording("intel-mac")
    data["commands"]["conda --version"] = {"returncode": 0, "stdout": "¯\\_(ツ)_/¯\n", "stderr": ""}
    assert check(run_doctor(data, spec), "installer").status is Status.WARN


def test_no_target_for_this_platform(spec: Spec) -> None:
    data = recording("linux-no-gpu")
    data["platform"]["machine"] = "aarch64"
    facts = collect_facts(RecordedProbe(data), "/p")
    assert recommend_target(facts, spec.resolve_all()) is None
    report = diagnose(facts, spec.resolve_all())
    assert report.target is None and report.failed
    assert "linux-aarch64" in check(report, "platform").reason
    with pytest.raises(PlatformMismatch) as err:
        default_target(spec, RecordedProbe(data))
    assert err.value.tip is not None and "--target" in err.value.tip


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("m1-arm64", "osx-arm64"),
        ("m1-rosetta", "osx-arm64"),
        ("intel-mac", "osx-64"),
        ("linux-h100-580", "linux-cuda"),
        ("linux-no-gpu", "linux-cpu"),
        ("windows-cuda", "win-cuda"),
    ],
)
def test_default_target_for_install_and_smoke(spec: Spec, fixture: str, expected: str) -> None:
    probe = RecordedProbe(recording(fixture))
    assert default_target(spec, probe).name == expected
    # Choosing a target asks no conda tool (fast), only the hardware.
    assert not any(call.split()[0] in ("conda", "mamba", "micromamba") for call in probe.calls)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("m1-arm64", "osx-arm64"),
        ("m1-rosetta", "osx-arm64"),  # an Intel Python under Rosetta: the hardware's subdir
        ("intel-mac", "osx-64"),
        ("linux-h100-580", "linux-64"),
        ("windows-cuda", "win-64"),
    ],
)
def test_host_subdir_is_the_hardware_subdir(fixture: str, expected: str) -> None:
    data = recording(fixture)
    assert host_subdir(RecordedProbe(data)) == expected
    assert host_subdir(RecordedProbe(data)) == collect_facts(RecordedProbe(data), "/p").hardware_subdir


def test_host_subdir_override_and_unknown_machine() -> None:
    data = recording("m1-rosetta")
    data["env"] = {"ENVSPEC_HOST_SUBDIR": "osx-64"}  # install an Intel environment on purpose
    probe = RecordedProbe(data)
    assert host_subdir(probe) == "osx-64"
    assert probe.calls == []  # the override asks the machine nothing
    unknown = {"platform": {"system": "Plan9", "machine": "mips"}}
    with pytest.raises(PlatformMismatch, match="Plan9 mips"):
        host_subdir(RecordedProbe(unknown))


def test_single_target_for_subdir(spec: Spec) -> None:
    from envspec.doctor.recommend import single_target_for_subdir
    from envspec.errors import PlatformMismatch, SpecError

    targets = [spec.resolve("linux-cuda"), spec.resolve("osx-arm64")]
    assert single_target_for_subdir(targets, "linux-64").name == "linux-cuda"
    with pytest.raises(PlatformMismatch, match="win-64"):
        single_target_for_subdir(targets, "win-64")
    twin = dataclasses.replace(spec.resolve("linux-cuda"), name="linux-cpu")
    with pytest.raises(SpecError) as err:
        single_target_for_subdir([*targets, twin], "linux-64")
    assert err.value.message == "several targets are for linux-64 (linux-cuda, linux-cpu); name the one to install"
    assert err.value.tip == "e.g. `envspec install linux-cuda --prefix ./env`"
    with pytest.raises(PlatformMismatch) as err2:
        single_target_for_subdir(targets, "win-64")
    assert err2.value.message == (
        "no target of the spec is for this machine (win-64); targets: linux-cuda (linux-64), osx-arm64 (osx-arm64)"
    )
    assert err2.value.tip == "name a target, e.g. `envspec install TARGET --prefix ./env`"


def test_a_forced_host_subdir_takes_its_single_target(spec: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    from envspec.doctor.recommend import default_target

    monkeypatch.setenv("ENVSPEC_HOST_SUBDIR", "win-64")
    assert default_target(spec).name == "win-cuda"


def test_fixes_are_worded_for_the_command_the_doctor_runs_in(spec: Spec) -> None:
    """Inside `envspec up` there is no --target option and --allow-cpu is up's own flag."""
    from envspec.doctor.check import UP_ADVICE

    facts = collect_facts(RecordedProbe(recording("linux-no-gpu")), "/p")
    plain = {c.name: c for c in diagnose(facts, spec.resolve_all(), chosen=spec.resolve("linux-cuda")).checks}
    assert "`envspec smoke --allow-cpu`" in (plain["nvidia-gpu"].fix or "")
    up = {
        c.name: c
        for c in diagnose(facts, spec.resolve_all(), chosen=spec.resolve("linux-cuda"), advice=UP_ADVICE).checks
    }
    fix = up["nvidia-gpu"].fix or ""
    assert "--allow-cpu" in fix and "envspec smoke" not in fix and "--target" not in fix
    mac = collect_facts(RecordedProbe(recording("m1-arm64")), "/p")
    wrong = {
        c.name: c for c in diagnose(mac, spec.resolve_all(), chosen=spec.resolve("osx-64"), advice=UP_ADVICE).checks
    }
    assert "envspec up osx-arm64" in (wrong["platform"].fix or "") or "envspec up osx-arm64" in wrong["platform"].reason


def test_the_disk_check_counts_the_locked_models_still_to_pull(spec: Spec) -> None:
    """With a models lockfile the disk check counts what a pull still writes, not a guessed checkpoint."""
    from envspec.doctor.resources import EnvEstimate, ModelsNeed, check_disk

    facts = collect_facts(RecordedProbe(recording("linux-h100-580")), "/p")
    assert facts.disk_free is not None
    env = EnvEstimate(facts.disk_free // 2, "test")
    fits = check_disk(facts, env, "/p", ModelsNeed(facts.disk_free // 4, "lockfiles/models.lock.yml"))
    assert fits.status is not Status.FAIL and "models ~" in fits.reason and "SD-1 checkpoint" not in fits.reason
    too_big = check_disk(facts, env, "/p", ModelsNeed(facts.disk_free, "lockfiles/models.lock.yml"))
    assert too_big.status is Status.FAIL and "lockfiles/models.lock.yml" in too_big.reason
    pulled = check_disk(facts, env, "/p", ModelsNeed(0, "lockfiles/models.lock.yml"))
    assert "models" not in pulled.reason  # everything is in place: nothing more to count
