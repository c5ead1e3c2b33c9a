"""What envspec takes from the environment, read once at the edge (``envspec.cli.main``).

``Settings.from_environ(os.environ)`` is called once per run; the command line's global options
(``--spec``, ``--debug``) then override their variables, and the one frozen object travels down to
the commands and, as arguments, to the stages. Library code does not read ``os.environ`` for these.

Variables read elsewhere, on purpose (each is a protocol between envspec and a child process, or
belongs to code being rewritten): ``ENVSPEC_SHIM_MIRRORS``, ``ENVSPEC_SHIM_REPORT``,
``ENVSPEC_CHANNEL_TIMEOUT``, ``ENVSPEC_RATTLER_CACHE`` (the conda shim, a child of conda-lock, and the
solver process; ``envspec lock`` passes them on with a presolve),
``ENVSPEC_PYPI_USERNAME``/``_PASSWORD`` (expanded by conda-lock in its child), ``ENVSPEC_STALL_TIMEOUT``,
``ENVSPEC_MAX_PACKAGE_BYTES``, ``ENVSPEC_PKGS_DIR`` (the downloader, ``envspec.install.execute``; the
first two also ``envspec.lock.pypi_verify``), ``ENVSPEC_LOCK_MEMORY`` (uv's cap, ``envspec.lock.pypi_bounds``),
``ENVSPEC_DEVICE``/``ENVSPEC_TARGET`` (set inside an environment for the smoke test),
``ENVSPEC_TEST_COMMIT_PAUSE`` (a test hook of the journaled commit).

Standard library only: every command, ``envspec --help`` included, imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SPEC_ENV: Final = "ENVSPEC_SPEC"
DEBUG_ENV: Final = "ENVSPEC_DEBUG"
HOST_SUBDIR_ENV: Final = "ENVSPEC_HOST_SUBDIR"
MIRRORS_ENV: Final = "ENVSPEC_MIRRORS"
LOCK_TIMEOUT_ENV: Final = "ENVSPEC_LOCK_TIMEOUT"
HUB_RETRIES_ENV: Final = "ENVSPEC_HUB_RETRIES"
#: How many times ``envspec models pull`` tries one file again after its connection fails, breaks off
#: or stalls (``ENVSPEC_HUB_RETRIES``).
HUB_RETRIES: Final = 5
DEFAULT_SPEC: Final = "envspec.yml"

#: Values that count as "off" for a flag variable such as ``ENVSPEC_DEBUG``.
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class Settings:
    """One run's settings: the environment's ``ENVSPEC_*`` variables and the global options."""

    spec: Path = Path(DEFAULT_SPEC)
    debug: bool = False
    #: ``$ENVSPEC_MIRRORS``: ``NAME=URL,...`` (``--mirror`` items win over it).
    mirrors: str | None = None
    #: The whole environment, for what envspec hands to child processes and reports (``GITHUB_*``),
    #: and for the machine probe (``$ENVSPEC_HOST_SUBDIR``, ``$CONDA_SUBDIR``: see ``Context.machine``).
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            spec=Path(environ.get(SPEC_ENV) or DEFAULT_SPEC),
            debug=environ.get(DEBUG_ENV, "").strip().lower() not in _FALSE,
            mirrors=environ.get(MIRRORS_ENV),
            environ=dict(environ),
        )

    def hub_retries(self) -> int:
        """``$ENVSPEC_HUB_RETRIES`` (default ``HUB_RETRIES``), checked by the commands that pull models:
        SpecError (exit 3, naming the variable) for anything but a whole number from 0 to 100."""
        text = self.environ.get(HUB_RETRIES_ENV, "").strip()
        if not text:
            return HUB_RETRIES
        if not (text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 100):
            from envspec.errors import SpecError  # light (standard library only), and only for a bad value

            raise SpecError(
                f"{HUB_RETRIES_ENV}={text[:40]!r} is not a whole number from 0 to 100",
                tip=f"unset it ({HUB_RETRIES} retries) or give a number, e.g. {HUB_RETRIES_ENV}=2",
            )
        return int(text)
