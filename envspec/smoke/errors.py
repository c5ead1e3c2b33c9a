"""The one error of the smoke test: setup failed (exit 10, SMOKE_SETUP), as opposed to a check that failed (exit 1).

Kept inside ``envspec.smoke`` on purpose: the smoke test runs in a provisioned environment where
``envspec.errors`` (and the rest of envspec) is not installed.
"""

from __future__ import annotations


class SmokeSetupError(Exception):
    """The environment cannot run the smoke test at all: ``str(err)`` is the reason, ``tip`` what to do."""

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.tip:
            text += f" (tip: {self.tip})"
        return " ".join(text.split())
