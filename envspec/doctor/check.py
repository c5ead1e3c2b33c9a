"""What every doctor check returns: a ``Check`` with a ``Status``, and the units its reasons use.

Each family of checks (``platform``, ``gpu``, ``resources``, ``tools``, ``checkpoint``) is a module of
pure functions from ``MachineFacts`` and a ``ResolvedTarget`` to ``Check`` records; ``diagnosis``
puts them together. Nothing in them touches the machine (that is ``probe``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

GiB: Final = 1024**3
MiB: Final = 1024**2


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    reason: str
    fix: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"name": self.name, "status": str(self.status), "reason": self.reason, "fix": self.fix}


def gib(n: int | float) -> str:
    """Bytes as people read them in a reason: "12.0 GiB"."""
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class Advice:
    """How a fix names another target or the CPU waiver, in the words of the command the doctor runs in.

    ``envspec doctor`` takes ``--target NAME``; ``envspec up`` takes the target as its argument and
    ``--allow-cpu`` itself. ``{name}`` is the other target's name.
    """

    other_target: str
    allow_cpu: str
    #: the envspec command that installs the lockfile, ``{target}`` filled in (None: ``envspec install``
    #: with ``--prefix ./env``); ``envspec up`` names itself and its own prefix instead
    install: str | None = None


DOCTOR_ADVICE: Final = Advice(
    other_target="use --target {name}", allow_cpu="accept CPU with `envspec smoke --allow-cpu`"
)
UP_ADVICE: Final = Advice(other_target="run `envspec up {name} ...` instead", allow_cpu="accept CPU with --allow-cpu")
