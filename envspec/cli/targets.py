"""`envspec targets [--json]`: the targets of the spec, as a table or as data."""

from __future__ import annotations

import argparse
import json

from envspec.cli.common import load, table

TARGETS_JSON_VERSION = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    _, spec = load(args)
    targets = spec.resolve_all()
    if args.json:
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
                for t in targets
            ],
        }
        print(json.dumps(payload, indent=2))
        return 0
    rows = [[t.name, t.subdir, t.accelerator, t.cuda_version or "-", t.runner, t.torch_spec] for t in targets]
    print(table(["TARGET", "SUBDIR", "ACCEL", "CUDA", "RUNNER", "TORCH"], rows))
    return 0
