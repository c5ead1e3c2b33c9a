"""`envspec targets [--json]`: the targets of the spec, as a table or as data."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Final

from envspec.cli import fastpath
from envspec.cli.common import Context, load, table

TARGETS_JSON_VERSION = 1
#: What the answer depends on besides envspec.yml: the spec model and what it uses.
CODE: Final = ("spec", "channels.py", "versions.py", "cli/targets.py")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


@dataclass(frozen=True)
class TargetsRequest:
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TargetsRequest:
        return cls(json=bool(args.json))


def run(args: argparse.Namespace, ctx: Context) -> int:
    return targets(TargetsRequest.from_args(args), ctx)


def targets(request: TargetsRequest, ctx: Context) -> int:
    payload = _payload(ctx)
    if request.json:
        print(json.dumps(payload, indent=2))
        return 0
    rows = [
        [t["name"], t["subdir"], t["accelerator"], t["cuda"] or "-", t["runner"], t["torch"]]
        for t in payload["targets"]
    ]
    print(table(["TARGET", "SUBDIR", "ACCEL", "CUDA", "RUNNER", "TORCH"], rows))
    return 0


#: Every key of a target's entry and whether it may be null.
_FIELDS: Final = {
    "name": False,
    "subdir": False,
    "accelerator": False,
    "cuda": True,
    "runner": False,
    "smoke_device": False,
    "torch": False,
    "virtual_packages": False,
}


def _well_formed(known: Any) -> bool:
    if not isinstance(known, dict) or known.get("version") != TARGETS_JSON_VERSION:
        return False
    entries = known.get("targets")
    return isinstance(entries, list) and all(
        isinstance(t, dict)
        and set(t) == set(_FIELDS)
        and all(
            isinstance(t[k], str) or (nullable and t[k] is None)
            for k, nullable in _FIELDS.items()
            if k != "virtual_packages"
        )
        and isinstance(t["virtual_packages"], dict)
        for t in entries
    )


def _payload(ctx: Context) -> dict[str, Any]:
    """The targets as data: from the stamp when envspec.yml and envspec are unchanged, else from the spec."""
    project = ctx.project
    current = fastpath.digest([ctx.settings.spec], CODE)
    known = fastpath.recall(project.cache_dir, "targets", current)
    if _well_formed(known):  # a stamp edited or damaged by hand misses, never crashes
        return dict(known)
    _, spec = load(ctx)
    payload = {
        "version": TARGETS_JSON_VERSION,
        "targets": [
            {
                "name": t.name,
                "subdir": t.subdir,
                "accelerator": t.accelerator,
                "cuda": t.cuda_version,
                "runner": t.runner,
                "smoke_device": t.smoke_device,
                "torch": t.torch_spec,
                "virtual_packages": t.virtual_packages,
            }
            for t in spec.resolve_all()
        ],
    }
    fastpath.remember(project.cache_dir, "targets", current, payload)
    return payload
