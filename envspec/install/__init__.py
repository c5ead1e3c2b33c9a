"""Stage 6 of 8, install: an environment from a target's explicit lockfile, every package hash-checked.

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "Activation": "activate",
            "InstallOptions": "run",
            "InstallResult": "execute",
            "SHELLS": "activate",
            "Shell": "activate",
            "activation": "activate",
            "check_environment": "activate",
            "destination": "plan",
            "hook_script": "activate",
            "host_platform": "activate",
            "install_from_bundle": "unbundle",
            "install_summary": "summary",
            "install_target": "run",
            "pack": "bundle",
            "run_command": "activate",
        },
    )

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
