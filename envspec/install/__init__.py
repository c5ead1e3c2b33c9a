"""Stage 6 of 8, install: an environment from a target's explicit lockfile, every package hash-checked.

The stage's surface: the names other stages and the command layer may import from it
(``__all__``), each loaded from its module on first use. Inside the stage, modules import each
other directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from envspec.install.activate import SHELLS as SHELLS
    from envspec.install.activate import Activation as Activation
    from envspec.install.activate import Shell as Shell
    from envspec.install.activate import activation as activation
    from envspec.install.activate import check_environment as check_environment
    from envspec.install.activate import hook_script as hook_script
    from envspec.install.activate import host_platform as host_platform
    from envspec.install.activate import run_command as run_command
    from envspec.install.bundle import pack as pack
    from envspec.install.execute import InstallResult as InstallResult
    from envspec.install.plan import destination as destination
    from envspec.install.run import InstallOptions as InstallOptions
    from envspec.install.run import install_target as install_target
    from envspec.install.summary import install_summary as install_summary
    from envspec.install.unbundle import install_from_bundle as install_from_bundle

__all__ = [
    "SHELLS",
    "Activation",
    "InstallOptions",
    "InstallResult",
    "Shell",
    "activation",
    "check_environment",
    "destination",
    "hook_script",
    "host_platform",
    "install_from_bundle",
    "install_summary",
    "install_target",
    "pack",
    "run_command",
]

_SURFACE: Final[dict[str, tuple[str, str]]] = {
    "Activation": ("activate", "Activation"),
    "InstallOptions": ("run", "InstallOptions"),
    "InstallResult": ("execute", "InstallResult"),
    "SHELLS": ("activate", "SHELLS"),
    "Shell": ("activate", "Shell"),
    "activation": ("activate", "activation"),
    "check_environment": ("activate", "check_environment"),
    "destination": ("plan", "destination"),
    "hook_script": ("activate", "hook_script"),
    "host_platform": ("activate", "host_platform"),
    "install_from_bundle": ("unbundle", "install_from_bundle"),
    "install_summary": ("summary", "install_summary"),
    "install_target": ("run", "install_target"),
    "pack": ("bundle", "pack"),
    "run_command": ("activate", "run_command"),
}


def __getattr__(name: str) -> Any:
    """A surface name, imported from its module on first use (``import envspec.install`` stays cheap)."""
    try:
        module, attr = _SURFACE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


def __dir__() -> list[str]:
    return sorted(__all__)
