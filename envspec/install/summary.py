"""The one result line of an install, shared by ``envspec install`` and ``envspec up``."""

from __future__ import annotations

from envspec.install.execute import InstallResult
from envspec.units import human_bytes


def install_summary(result: InstallResult, target: str, tool: str | None) -> str:
    """The one result line of an install."""
    if tool is None:
        detail = (
            f"{result.downloaded} downloaded ({human_bytes(result.downloaded_bytes)}), "
            f"{result.cache_hits} from the verified cache"
        )
    else:
        detail = f"with {tool}"
    verb = "replaced" if result.replaced_existing else "created"
    return (
        f"{verb} {result.prefix}: {result.packages} packages of {target}"
        + (f" + {result.pip_packages} from PyPI" if result.pip_packages else "")
        + f", {detail}, in {result.seconds['total']:.2f} s"
    )
