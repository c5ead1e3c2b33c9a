"""The tree is the architecture: imports run one way (command layer -> stages -> shared), no cycles.

Every ``import`` of every module of the ``envspec`` package is read (top-level and inside functions,
so a lazy import cannot hide a wrong-way edge) and checked against the layer order below.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import envspec

PACKAGE = Path(envspec.__file__).resolve().parent

#: Shared pieces at the root: any stage may import them; they import only each other.
SHARED = ("errors", "fsutil", "project", "channels", "versions", "settings", "download", "units")
#: The stages in pipeline order; a stage imports shared modules and the stages before it, never after.
STAGES = ("spec", "render", "lock", "models", "doctor", "install", "smoke", "report")
#: The command layer on top (``__main__`` is its console entry).
COMMANDS = ("cli", "__main__")


def rank(module: str) -> int:
    """0 for the package itself and shared modules, then 1 + the stage's index, then the command layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    top = parts[1]
    if top in SHARED:
        return 0
    if top in STAGES:
        return 1 + STAGES.index(top)
    if top in COMMANDS:
        return 1 + len(STAGES)
    raise AssertionError(f"{module}: not in a known layer; add it to SHARED, STAGES or COMMANDS")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def envspec_imports(path: Path) -> set[str]:
    """The envspec modules ``path`` imports (``from envspec.x import y`` counts as ``envspec.x.y``
    when that is a module, else as ``envspec.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "envspec")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "envspec":
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                sub = PACKAGE.parent.joinpath(*candidate.split("."))
                found.add(candidate if sub.with_suffix(".py").is_file() or sub.is_dir() else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): envspec_imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_in_a_layer() -> None:
    for module in graph():
        rank(module)


def test_imports_run_one_way() -> None:
    wrong = sorted(
        f"{module} ({rank(module)}) imports {target} ({rank(target)})"
        for module, targets in graph().items()
        for target in targets
        if rank(target) > rank(module)
    )
    assert wrong == []


def test_stages_never_import_the_command_layer() -> None:
    cli = 1 + len(STAGES)
    bad = [(m, t) for m, ts in graph().items() if rank(m) < cli for t in ts if rank(t) == cli]
    assert bad == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` (module -> modules), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    edges = graph()
    # a package's __init__ is imported by every module inside it: that edge is not a cycle
    for module, targets in edges.items():
        edges[module] = {t for t in targets if not module.startswith(t + ".")}
    assert find_cycle(edges) is None


def test_the_checks_see_a_wrong_way_import_and_a_cycle(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from envspec.cli.common import load\n    from envspec.lock import explicit\n")
    assert envspec_imports(sample) == {"envspec.cli.common", "envspec.lock.explicit"}
    assert rank("envspec.cli.common") > rank("envspec.install.run") > rank("envspec.lock.explicit")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    with pytest.raises(AssertionError, match="not in a known layer"):
        rank("envspec.newthing")


# ---------------------------------------------------------------------------------------------
# Stage surfaces: what a stage offers the others is its package's ``__all__``
# ---------------------------------------------------------------------------------------------


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def reaches_inside(module: str, target: str) -> bool:
    """``module`` imports one of another stage's modules instead of that stage's surface."""
    stage = stage_of(target)
    return stage is not None and stage != stage_of(module) and target != f"envspec.{stage}"


def test_other_stages_and_the_command_layer_import_a_stage_through_its_surface() -> None:
    inside = sorted(f"{m} imports {t}" for m, ts in graph().items() for t in ts if reaches_inside(m, t))
    assert inside == []


def test_the_surface_rule_sees_a_reach_inside() -> None:
    assert reaches_inside("envspec.cli.lock", "envspec.lock.stamp")
    assert reaches_inside("envspec.report.build", "envspec.smoke.report")
    assert not reaches_inside("envspec.cli.lock", "envspec.lock")
    assert not reaches_inside("envspec.lock.run", "envspec.lock.plan")  # inside its own stage
    assert not reaches_inside("envspec.lock.run", "envspec.fsutil")  # shared


def surface_table(stage: str) -> tuple[list[str], dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    """A stage ``__init__``'s ``__all__``, its lazy table and its ``TYPE_CHECKING`` imports (name -> (module, attr))."""
    tree = ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8"))
    names: list[str] = []
    table: dict[str, tuple[str, str]] = {}
    typed: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "__all__":
            names = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module, f"{stage}: only imports under TYPE_CHECKING"
                for alias in imp.names:
                    typed[alias.asname or alias.name] = (imp.module.removeprefix(f"envspec.{stage}."), alias.name)
            *imports, call = node.orelse  # else: the lazy table, loaded at run time
            assert [ast.unparse(i) for i in imports] == ["from envspec import lazy_surface"]
            assert isinstance(call, ast.Assign) and isinstance(call.value, ast.Call)
            assert ast.unparse(call.targets[0]) == "(__getattr__, __dir__)" and call.value.args[0].id == "__name__"  # type: ignore[attr-defined]
            for name, where in ast.literal_eval(call.value.args[1]).items():
                module, _, attr = where.partition(":")
                table[name] = (module, attr or name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert module in ("__future__", "typing"), f"{stage}/__init__ imports {module} when loaded"
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # the docstring
            raise AssertionError(f"{stage}/__init__: only the surface, not {ast.unparse(node)[:60]}")
    return names, table, typed


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_declares_its_surface_and_every_name_resolves(stage: str) -> None:
    names, table, typed = surface_table(stage)
    assert sorted(names) == sorted(table) and len(set(names)) == len(names), "__all__ is the lazy table's names"
    assert typed == table, "what the type checker sees is what is loaded"
    submodules = {p.stem for p in (PACKAGE / stage).glob("*.py")} | {
        p.name for p in (PACKAGE / stage).iterdir() if p.is_dir()
    }
    assert not set(names) & submodules, "a surface name that is also a module's name is shadowed once it loads"
    package = importlib.import_module(f"envspec.{stage}")
    for name, (module, attr) in table.items():
        assert getattr(package, name) is getattr(importlib.import_module(f"envspec.{stage}.{module}"), attr)
    with pytest.raises(AttributeError, match="no attribute"):
        getattr(package, "not_on_the_surface")  # noqa: B009


def test_every_surface_name_is_used_outside_its_stage() -> None:
    """A surface lists what the others use, no more: an unused name is either dead or reached another way."""
    used: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = stage_of(module_name(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.count(".") == 1:
                stage = node.module.split(".")[1]
                if stage in STAGES and stage != mine:
                    used.update((stage, a.name) for a in node.names)
    unused = sorted(
        f"envspec.{s}.{n}"
        for s in STAGES
        for n in surface_table(s)[0]
        if (s, n) not in used and not isinstance(getattr(importlib.import_module(f"envspec.{s}"), n), type)
    )
    assert unused == []  # classes may stay: they are the types the surface's functions take and return


#: Modules of the command layer that are not commands: what the commands share.
CLI_HELPERS = ("envspec.cli", "envspec.cli.main", "envspec.cli.common", "envspec.cli.fastpath", "envspec.cli.up_plan")


def test_command_modules_never_borrow_from_each_other() -> None:
    from envspec.cli.main import COMMANDS

    commands = {module for _, module, _ in COMMANDS}
    edges = graph()
    borrowed = sorted(f"{m} imports {t}" for m in commands for t in edges[m] if t in commands and t != m)
    assert borrowed == []
    assert set(edges) >= commands and not commands & set(CLI_HELPERS)


@pytest.mark.parametrize(("number", "stage"), list(enumerate(STAGES, start=1)))
def test_stage_docstrings_number_the_stages_in_layer_order(number: int, stage: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text(encoding="utf-8"))) or ""
    assert re.match(rf"Stage {number} of {len(STAGES)}, {stage}: ", doc), doc.splitlines()[:1]
