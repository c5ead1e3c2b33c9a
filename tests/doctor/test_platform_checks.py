"""The platform checks, word for word: systems, architectures, Rosetta, macOS and glibc.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import dataclasses

from checks_support import (
    _facts,
    _mac,
    _plat,
    rows,
)

from envspec.doctor.check import UP_ADVICE
from envspec.doctor.machine import (
    CondaTool,
    MachineFacts,
    NvidiaFacts,
)
from envspec.doctor.platform import check_platform, system_checks
from envspec.doctor.probe import DistroFacts
from envspec.spec.load import Spec

# ---- platform -----------------------------------------------------------------------------------


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
