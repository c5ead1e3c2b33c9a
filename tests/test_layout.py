"""The tree is the architecture: imports run one way (command layer -> stages -> shared), no cycles.

Every ``import`` of every module of the ``envspec`` package is read (top-level and inside functions,
so a lazy import cannot hide a wrong-way edge) and checked against the layer order below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import envspec

PACKAGE = Path(envspec.__file__).resolve().parent

#: Shared pieces at the root: any stage may import them; they import only each other.
SHARED = ("errors", "fsutil", "project", "channels", "versions", "settings", "download")
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
