"""The tools an install needs: conda / mamba / micromamba (and the command that installs the
explicit lockfile with each), and Xcode's command-line tools when the spec builds code on macOS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from envspec.doctor.check import DOCTOR_ADVICE, Advice, Check, Status
from envspec.doctor.machine import MachineFacts
from envspec.spec import ResolvedTarget
from envspec.versions import version_tuple

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


def _package_name(match_spec: str) -> str:
    """ "conda-forge::gcc>=13" -> "gcc" (enough of a match spec for a name lookup)."""
    name = match_spec.rsplit("::", maxsplit=1)[-1].strip()
    return re.split(r"[\s=<>!~\[]", name, maxsplit=1)[0].lower()


def needs_compiler(target: ResolvedTarget) -> str | None:
    """Why the environment needs a compiler, or None (the default spec must not)."""
    names = sorted({_package_name(d) for d in target.dependencies} & COMPILER_PACKAGES)
    if names:
        return f"the spec installs {', '.join(names)}"
    if target.pip and target.pip_allow_sdist:  # other pip packages are locked as wheels only
        return (
            f"pip_allow_sdist lets {', '.join(target.pip_allow_sdist)} build from source at install time, "
            "which needs a compiler for C extensions"
        )
    return None


def install_commands(
    facts: MachineFacts, target: ResolvedTarget | None, envspec_install: str | None = None
) -> list[str]:
    """The commands that install this target's explicit lockfile with the tools found here."""
    env = target.env_name if target else "ENV"
    file = f"lockfiles/{target.name}.lock" if target else "lockfiles/TARGET.lock"
    found = {t.name for t in facts.conda_tools}
    commands = [r.command.format(env=env, file=file) for r in INSTALL_RECIPES if r.tool in found]
    commands.append((envspec_install or ENVSPEC_INSTALL).format(target=target.name if target else "TARGET"))
    return commands


def check_installer(facts: MachineFacts, target: ResolvedTarget | None, advice: Advice = DOCTOR_ADVICE) -> Check:
    commands = install_commands(facts, target, advice.install)
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


def check_xcode(facts: MachineFacts, target: ResolvedTarget | None) -> Check:
    why = needs_compiler(target) if target else None
    if why is None:
        return Check(
            "xcode-clt",
            Status.PASS,
            "not needed: the spec has no compiler packages and builds no pip package from source",
        )
    if facts.xcode_clt:
        return Check("xcode-clt", Status.PASS, f"Xcode command-line tools present ({why})")
    if facts.xcode_clt is None:
        return Check("xcode-clt", Status.WARN, f"cannot tell whether Xcode's CLT are installed ({why})", None)
    return Check("xcode-clt", Status.FAIL, f"Xcode command-line tools missing and {why}", "xcode-select --install")


#: Windows' classic path limit; a conda environment of torch has files ~150 characters below its prefix.
MAX_PATH: Final = 260
LONG_PATHS_FIX: Final = (
    r"as administrator: reg add HKLM\SYSTEM\CurrentControlSet\Control\FileSystem /v LongPathsEnabled "
    "/t REG_DWORD /d 1 /f (or keep the project and --prefix in a short folder such as C:\\sd)"
)


def check_long_paths(facts: MachineFacts) -> Check:
    """Windows only: paths over 260 characters need ``LongPathsEnabled`` (registry) set to 1."""
    if facts.long_paths:
        return Check("long-paths", Status.PASS, f"LongPathsEnabled is set: paths may exceed {MAX_PATH} characters")
    if facts.long_paths is None:
        return Check(
            "long-paths",
            Status.WARN,
            f"cannot read LongPathsEnabled: paths over {MAX_PATH} characters may fail",
            LONG_PATHS_FIX,
        )
    return Check(
        "long-paths",
        Status.WARN,
        f"LongPathsEnabled is off: a file path over {MAX_PATH} characters in an environment fails to install",
        LONG_PATHS_FIX,
    )
