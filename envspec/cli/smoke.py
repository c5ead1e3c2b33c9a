"""``envspec smoke [--target T] [--prefix PATH] [smoke options]``: run the smoke test in an environment.

With ``--prefix``, the environment's own Python runs ``-m envspec.smoke`` with only
``envspec/__init__.py`` and ``envspec/smoke/`` copied to a temp folder on its PYTHONPATH (see
:mod:`envspec.smoke.host`). Without ``--prefix`` it runs in this interpreter. The target's
``smoke_device`` becomes ``--expect`` (a missing promised device is exit 10, SMOKE_SETUP).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from envspec.cli.common import Context, load, progress
from envspec.smoke import add_smoke_arguments, smoke_argv, smoke_main

if TYPE_CHECKING:
    from envspec.project import Project
    from envspec.spec import ResolvedTarget, Spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", metavar="PATH", help="the environment to test (default: this Python)")
    add_smoke_arguments(parser)  # --target, --expect, --device, --allow-cpu, --model, --benchmark...


def _load_if_needed(target: str | None, ctx: Context) -> tuple[Project, Spec] | None:
    """The project and spec when a target is named or a spec file is there (else the prefix's state decides)."""
    return load(ctx) if target is not None or ctx.settings.spec.is_file() else None


def find_target(
    named: str | None, state: dict[str, str], ctx: Context, loaded: tuple[Project, Spec] | None = None
) -> ResolvedTarget | None:
    """The target whose promise the smoke test checks.

    ``--target`` wins. Without it: the target the environment was installed for (``ENVSPEC_TARGET``
    in the prefix's ``conda-meta/state``), else the target ``envspec doctor`` recommends for this
    machine. Outside a project (no spec file) nothing is loaded and the smoke test reads the
    promise from the prefix's state itself, so ``envspec smoke --prefix ENV`` works anywhere.
    """
    from envspec.doctor import choose_target, collect_facts

    loaded = loaded or _load_if_needed(named, ctx)
    if loaded is None:
        return None
    project, spec = loaded
    if named is not None:
        return spec.resolve(named)
    installed_for = state.get("ENVSPEC_TARGET")
    if installed_for is not None:
        return spec.resolve(installed_for) if installed_for in spec.targets else None
    target = choose_target(spec, collect_facts(ctx.machine(), str(project.root), hardware_only=True))
    progress(f"smoke: no --target given; using {target.name}, the target recommended for this machine")
    return target


def run(args: argparse.Namespace, ctx: Context) -> int:
    """The smoke test's own options stay a command line: they are the child's ``argv``."""
    from envspec.models import smoke_model_name, smoke_model_path
    from envspec.smoke import activation_vars, model_argv, run_in_prefix, smoke_plan

    prefix = Path(args.prefix).resolve() if args.prefix else None
    state = activation_vars(prefix) if prefix is not None else {}
    loaded = _load_if_needed(args.target, ctx)
    target = find_target(args.target, state, ctx, loaded)
    argv = smoke_argv(args, skip=frozenset({"target"}))
    if target is not None and loaded is not None:  # the pinned model, where it is pulled
        project, spec = loaded
        extra = model_argv(target, smoke_model_path(project, spec), argv)
        if extra:
            progress(f"smoke: the pinned model {smoke_model_name(spec)} ({extra[1]})")
        argv += extra
    the_plan = smoke_plan(target, prefix, argv, state=state)
    if the_plan.python is None:
        progress(f"smoke: in this Python ({sys.executable}) {' '.join(the_plan.argv)}")
        return smoke_main(the_plan.argv)
    assert prefix is not None
    return run_in_prefix(the_plan, prefix, progress=progress)
