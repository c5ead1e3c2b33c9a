"""What envspec takes from the environment, read once at the edge (``envspec.cli.main``).

``Settings.from_environ(os.environ)`` is called once per run; the command line's global options
(``--spec``, ``--debug``) then override their variables, and the one frozen object travels down to
the commands and, as arguments, to the stages. Library code does not read ``os.environ`` for these
(``tests/test_environ_reads.py`` checks it).

Read here: ``ENVSPEC_SPEC``, ``ENVSPEC_DEBUG``, ``ENVSPEC_MIRRORS``, ``ENVSPEC_PKGS_DIR`` (fields of
:class:`Settings`); ``ENVSPEC_LOCK_TIMEOUT``, ``ENVSPEC_LOCK_MEMORY``, ``ENVSPEC_STALL_TIMEOUT``,
``ENVSPEC_MAX_PACKAGE_BYTES``, ``ENVSPEC_DOWNLOAD_RETRIES`` (:class:`LockLimits`,
:class:`FetchLimits`); ``ENVSPEC_HUB_RETRIES`` (:meth:`Settings.hub_retries`);
``ENVSPEC_HOST_SUBDIR`` through the machine probe, which sees ``Settings.environ``
(``Context.machine``). The limits are checked only by the commands that use them
(:meth:`Settings.lock_limits`: ``envspec lock`` before anything starts, ``install``/``up`` when they
may solve; :meth:`Settings.fetch_limits`: ``install``, ``up``, ``pack``;
:meth:`Settings.hub_retries`: ``models pull``, ``up``), so a bad ``ENVSPEC_LOCK_TIMEOUT`` fails a
lock in one line (exit 3) and never ``envspec targets``; they reach the stages in
``LockOptions.limits`` and ``InstallOptions.limits``, the package cache in
``InstallOptions.cache_dir``.

Variables read elsewhere, on purpose (each is a protocol between envspec and a child process it
starts, which reads it in its own environment): ``ENVSPEC_SHIM_MIRRORS``, ``ENVSPEC_SHIM_REPORT``,
``ENVSPEC_SHIM_EXCLUDE_NEWER``, ``ENVSPEC_CHANNEL_TIMEOUT``, ``ENVSPEC_RATTLER_CACHE`` (the conda shim,
a child of conda-lock, and the solver process: ``envspec.lock.conda_shim``, ``rattler_solve``,
``solver_service``; ``envspec lock`` passes them on with a presolve),
``ENVSPEC_DEVICE``/``ENVSPEC_TARGET``/``ENVSPEC_DEBUG`` (read by the smoke test's own process,
``python -m envspec.smoke``, in the environment: ``envspec.smoke.device``, ``envspec.smoke.cli``),
``ENVSPEC_TEST_COMMIT_PAUSE`` (a test hook of the journaled commit, ``envspec.lock.commit``: the kill
tests run ``envspec lock`` as a subprocess and stop it mid-commit).

Standard library only: every command, ``envspec --help`` included, imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from envspec.errors import SpecError

SPEC_ENV: Final = "ENVSPEC_SPEC"
DEBUG_ENV: Final = "ENVSPEC_DEBUG"
HOST_SUBDIR_ENV: Final = "ENVSPEC_HOST_SUBDIR"
MIRRORS_ENV: Final = "ENVSPEC_MIRRORS"
LOCK_TIMEOUT_ENV: Final = "ENVSPEC_LOCK_TIMEOUT"
LOCK_MEMORY_ENV: Final = "ENVSPEC_LOCK_MEMORY"
STALL_TIMEOUT_ENV: Final = "ENVSPEC_STALL_TIMEOUT"
MAX_PACKAGE_BYTES_ENV: Final = "ENVSPEC_MAX_PACKAGE_BYTES"
PKGS_DIR_ENV: Final = "ENVSPEC_PKGS_DIR"
DOWNLOAD_RETRIES_ENV: Final = "ENVSPEC_DOWNLOAD_RETRIES"
HUB_RETRIES_ENV: Final = "ENVSPEC_HUB_RETRIES"
#: How many times ``envspec models pull`` tries one file again after its connection fails, breaks off
#: or stalls (``ENVSPEC_HUB_RETRIES``).
HUB_RETRIES: Final = 5
DEFAULT_SPEC: Final = "envspec.yml"

#: Values that count as "off" for a flag variable such as ``ENVSPEC_DEBUG``.
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})
#: The most a number variable may say (bytes or seconds): beyond it is a typo, not a wish.
NUMBER_MAX: Final = 1e15


@dataclass(frozen=True)
class FetchLimits:
    """How every download is bounded (:mod:`envspec.download`): ``stall_s`` seconds that bring less
    than its minimum are a stall (``ENVSPEC_STALL_TIMEOUT``, 60), ``max_package_bytes`` caps a file
    whose size the lockfile does not record (``ENVSPEC_MAX_PACKAGE_BYTES``, 8 GiB), ``retries`` times a
    refused connection, a 429 or a 5xx is tried again, after a back-off of 0.5, 1, 2, 4 s...
    (``ENVSPEC_DOWNLOAD_RETRIES``, 4)."""

    stall_s: float = 60.0
    max_package_bytes: int = 8 << 30
    retries: int = 4


@dataclass(frozen=True)
class LockLimits:
    """How a lock's children are bounded: ``timeout_s`` for all conda-lock runs together, and for
    uv's PyPI resolution (``ENVSPEC_LOCK_TIMEOUT``, 900), ``memory_bytes`` of data uv may allocate
    (``ENVSPEC_LOCK_MEMORY``, 1 GiB; Linux), ``fetch`` for the check of every pinned PyPI file."""

    timeout_s: float = 900.0
    memory_bytes: int = 1 << 30
    fetch: FetchLimits = FetchLimits()


@dataclass(frozen=True)
class Settings:
    """One run's settings: the environment's ``ENVSPEC_*`` variables and the global options."""

    spec: Path = Path(DEFAULT_SPEC)
    debug: bool = False
    #: ``$ENVSPEC_MIRRORS``: ``NAME=URL,...`` (``--mirror`` items win over it).
    mirrors: str | None = None
    #: ``$ENVSPEC_PKGS_DIR``: the package cache of installs (``--cache-dir`` wins over it).
    pkgs_dir: Path | None = None
    #: The whole environment, for what envspec hands to child processes and reports (``GITHUB_*``),
    #: and for the machine probe (``$ENVSPEC_HOST_SUBDIR``, ``$CONDA_SUBDIR``: see ``Context.machine``).
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            spec=Path(environ.get(SPEC_ENV) or DEFAULT_SPEC),
            debug=environ.get(DEBUG_ENV, "").strip().lower() not in _FALSE,
            mirrors=environ.get(MIRRORS_ENV),
            pkgs_dir=Path(environ[PKGS_DIR_ENV]) if environ.get(PKGS_DIR_ENV) else None,
            environ=dict(environ),
        )

    def fetch_limits(self) -> FetchLimits:
        """``ENVSPEC_STALL_TIMEOUT``, ``ENVSPEC_MAX_PACKAGE_BYTES`` and ``ENVSPEC_DOWNLOAD_RETRIES``,
        checked: SpecError (exit 3, naming the variable) for anything but a positive number (a whole
        number from 0 to 100 for the retries)."""
        default = FetchLimits()
        return FetchLimits(
            stall_s=self._number(STALL_TIMEOUT_ENV, default.stall_s),
            max_package_bytes=int(self._number(MAX_PACKAGE_BYTES_ENV, default.max_package_bytes)),
            retries=self._count(DOWNLOAD_RETRIES_ENV, default.retries),
        )

    def lock_limits(self) -> LockLimits:
        """``ENVSPEC_LOCK_TIMEOUT``, ``ENVSPEC_LOCK_MEMORY`` and the :meth:`fetch_limits`, checked:
        SpecError (exit 3, naming the variable) for anything but a positive number."""
        default = LockLimits()
        text = self.environ.get(LOCK_TIMEOUT_ENV, "").strip() or f"{default.timeout_s:g}"
        try:
            timeout = float(text)
        except ValueError:
            timeout = float("nan")
        if not timeout > 0 or timeout == float("inf"):
            raise _error(
                f"{LOCK_TIMEOUT_ENV}={text!r} is not a positive number of seconds", f"e.g. {LOCK_TIMEOUT_ENV}=1800"
            )
        memory = self._number(LOCK_MEMORY_ENV, default.memory_bytes, give=f"bytes, e.g. {LOCK_MEMORY_ENV}={4 << 30}")
        return LockLimits(timeout_s=timeout, memory_bytes=int(memory), fetch=self.fetch_limits())

    def _number(self, name: str, default: float, *, give: str | None = None) -> float:
        """``$name`` as :func:`positive_number`; SpecError whose tip says to unset it or ``give`` (by
        default: a plain number, e.g. the default)."""
        try:
            return positive_number(self.environ, name, default)
        except ValueError as exc:
            raise _error(
                str(exc), f"unset {name} or give {give or f'a plain number, e.g. {name}={default:g}'}"
            ) from None

    def hub_retries(self) -> int:
        """``$ENVSPEC_HUB_RETRIES`` (default ``HUB_RETRIES``), checked by the commands that pull models:
        SpecError (exit 3, naming the variable) for anything but a whole number from 0 to 100."""
        return self._count(HUB_RETRIES_ENV, HUB_RETRIES)

    def _count(self, name: str, default: int) -> int:
        """``$name``, a whole number of retries from 0 to 100 (``default`` when unset); SpecError naming it."""
        text = self.environ.get(name, "").strip()
        if not text:
            return default
        if not (text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= 100):
            raise _error(
                f"{name}={text[:40]!r} is not a whole number from 0 to 100",
                f"unset it ({default} retries) or give a number, e.g. {name}=2",
            )
        return int(text)


def positive_number(environ: Mapping[str, str], name: str, default: float, *, maximum: float = NUMBER_MAX) -> float:
    """A positive finite number from ``environ[name]`` (``default`` when unset); ValueError names it."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= maximum:  # also NaN and inf (1e309)
        raise ValueError(f"{name}={text[:40]!r} is not a positive number up to {maximum:g}")
    return value


def _error(message: str, tip: str) -> SpecError:
    from envspec.errors import SpecError  # light (standard library only), and only for a bad value

    return SpecError(message, tip=tip)
