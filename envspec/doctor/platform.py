"""Can this machine run the target's packages at all: platform, Linux distribution, glibc, kernel,
Rosetta, macOS version, and the subdir conda would install for.

Pure functions of ``MachineFacts`` and a ``ResolvedTarget`` (the facts come from
``envspec.doctor.machine``). The thresholds are the target's own virtual packages (``__glibc``,
``__linux``, ``__osx``) and ``ACCELERATOR_RULES`` for the MPS minimum.
"""

from __future__ import annotations

from typing import Final

from envspec.doctor.check import DOCTOR_ADVICE, Advice, Check, Status
from envspec.doctor.machine import MachineFacts
from envspec.spec import ACCELERATOR_RULES, ResolvedTarget
from envspec.versions import version_tuple

#: Subdirs a machine can run besides its own, by emulation (Rosetta 2, Windows on Arm's x64 layer).
EMULATED_SUBDIRS: Final[dict[str, tuple[str, ...]]] = {"osx-arm64": ("osx-64",), "win-arm64": ("win-64",)}


def system_checks(facts: MachineFacts, target: ResolvedTarget) -> list[Check]:
    """The operating-system checks for a target, after the platform check itself: distro, glibc and
    kernel on Linux, Rosetta and macOS on a Mac, then the subdir conda installs for."""
    checks = []
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
    return checks


def _describe_machine(facts: MachineFacts) -> str:
    p = facts.platform
    name = {"Darwin": "macOS", "Linux": "Linux", "Windows": "Windows"}.get(p.system, p.system)
    if facts.apple_silicon:
        return f"{name} on Apple silicon ({facts.hardware_subdir})"
    return f"{name} {p.machine} ({facts.hardware_subdir or 'unknown subdir'})"


def check_platform(
    facts: MachineFacts,
    target: ResolvedTarget,
    recommended: ResolvedTarget | None,
    advice: Advice = DOCTOR_ADVICE,
) -> Check:
    """The machine's subdir against the target's; ``recommended`` (the target ``recommend_target``
    chose among the spec's) is what the fix points to."""
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
    if recommended is not None and recommended.name != target.name:
        other = advice.other_target.format(name=recommended.name)
    else:
        other = f"add a target for {hw}"
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
