"""The environment is read at the edge (issue #20): no module of ``envspec`` reads an ``ENVSPEC_*``
variable itself, but ``envspec/settings.py`` and the child-process protocols listed below.

Every module is parsed (no import) and each read of an environment mapping is found: ``os.environ``,
``os.getenv``, or a mapping named like one (``environ``, ``env``, ``self.environ``), through
``.get``/``.pop``/``.setdefault``, ``[KEY]``, ``KEY in``, a helper given the mapping and the key, or
a helper of the same module that reads ``os.environ`` given the key. A key counts when it is an
``ENVSPEC_*`` literal or a constant holding one (``TIMEOUT_ENV``, ``channels.ENV_VAR`` imported as
``MIRRORS_ENV``: constants are followed through imports), or an unresolved ``*_ENV`` name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import envspec

PACKAGE = Path(envspec.__file__).resolve().parent
PREFIX = "ENVSPEC_"

#: Who may read which variable, and why. ``settings.py`` is the edge (``Settings.from_environ``,
#: called once by ``envspec.cli.main``); the others are protocols with a child process: the parent
#: says something to a process it starts through that process's environment.
ALLOWED: dict[str, frozenset[str]] = {
    "settings.py": frozenset({"*"}),
    # the conda shim (a child of conda-lock) and the solver process answering for it: the mirrors,
    # the report file, the channel timeout, the repodata cache and the cutoff `envspec lock` set
    "lock/conda_shim.py": frozenset({"ENVSPEC_SHIM_MIRRORS", "ENVSPEC_SHIM_REPORT"}),
    "lock/rattler_solve.py": frozenset(
        {"ENVSPEC_CHANNEL_TIMEOUT", "ENVSPEC_RATTLER_CACHE", "ENVSPEC_SHIM_EXCLUDE_NEWER"}
    ),
    "lock/solver_service.py": frozenset({"ENVSPEC_SHIM_REPORT"}),
    # a test hook: the kill tests run `envspec lock` as a subprocess and stop it mid-commit
    "lock/commit.py": frozenset({"ENVSPEC_TEST_COMMIT_PAUSE"}),
    # the smoke test's own process (`python -m envspec.smoke`, shipped into the environment without
    # the rest of envspec): the environment's activation sets ENVSPEC_DEVICE/ENVSPEC_TARGET
    "smoke/device.py": frozenset({"ENVSPEC_DEVICE", "ENVSPEC_TARGET"}),
    "smoke/cli.py": frozenset({"ENVSPEC_DEBUG"}),
}

_GETTERS = frozenset({"get", "pop", "setdefault"})


def _module(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def constants(trees: dict[str, ast.Module]) -> dict[str, dict[str, str]]:
    """Per module, its names bound to string constants: its own module-level ones, then those it
    imports from another module (followed until nothing changes)."""
    table: dict[str, dict[str, str]] = {m: {} for m in trees}
    for module, tree in trees.items():
        for node in tree.body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if isinstance(node, ast.AnnAssign):
                target = node.target
            value = getattr(node, "value", None)
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                table[module][target.id] = value.value
    changed = True
    while changed:
        changed = False
        for module, tree in trees.items():
            bound: list[tuple[str, str | None]] = []  # (name here, its value if known)
            for imp in ast.walk(tree):
                if isinstance(imp, ast.ImportFrom) and imp.module in table:
                    bound += [(a.asname or a.name, table[imp.module].get(a.name)) for a in imp.names]
            for node in tree.body:  # NAME = OTHER_NAME
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
                    value = table[module].get(node.value.id)
                    bound += [(t.id, value) for t in node.targets if isinstance(t, ast.Name)]
            for name, value in bound:
                if value is not None and table[module].get(name) != value:
                    table[module][name] = value
                    changed = True
    return table


def _environ_like(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return "environ" in node.attr  # os.environ, self.environ, settings.environ
    if isinstance(node, ast.Name):
        return "environ" in node.id or node.id == "env"
    if isinstance(node, ast.IfExp):
        return _environ_like(node.body) or _environ_like(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_environ_like(v) for v in node.values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return any(_environ_like(a) for a in node.args)
    return False


def _is_os_environ(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Attribute) and n.attr in {"environ", "getenv"} and getattr(n.value, "id", None) == "os"
        for n in ast.walk(node)
    )


def reads(tree: ast.Module, names: dict[str, str]) -> Iterator[tuple[int, str]]:
    """(line, variable) of each read of an ``ENVSPEC_*`` variable in ``tree``; ``names``: the
    module's string constants (:func:`constants`)."""

    def key(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value if node.value.startswith(PREFIX) else None
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name is None:
            return None
        value = names.get(name)
        if value is not None:
            return value if value.startswith(PREFIX) else None
        return f"?{name}" if name.endswith("_ENV") else None  # a constant this check cannot follow

    readers = {  # the module's functions that read os.environ themselves (given the key, they read it)
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_os_environ(node)
    }
    for node in ast.walk(tree):
        found: list[str | None] = []
        if isinstance(node, ast.Call):
            func, args = node.func, [*node.args, *(k.value for k in node.keywords)]
            if isinstance(func, ast.Attribute) and func.attr in _GETTERS and _environ_like(func.value) and node.args:
                found.append(key(node.args[0]))
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or getattr(func, "id", None) == "getenv":
                found += [key(node.args[0])] if node.args else []
            elif any(_environ_like(a) for a in args) or getattr(func, "id", None) in readers:
                found += [key(a) for a in args]  # a helper given the key (and the mapping, or os.environ itself)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _environ_like(node.value):
            found.append(key(node.slice))
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            found += [key(node.left)] if any(_environ_like(c) for c in node.comparators) else []
        yield from ((getattr(node, "lineno", 0), variable) for variable in found if variable is not None)


def offences(root: Path, allowed: dict[str, frozenset[str]]) -> list[str]:
    """Every read under ``root`` (a package folder) that ``allowed`` does not list."""
    paths = {_module(p, root): p for p in sorted(root.rglob("*.py"))}
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in paths.items()}
    table = constants(trees)
    bad = []
    for module, tree in trees.items():
        rel = paths[module].relative_to(root).as_posix()
        ok = allowed.get(rel, frozenset())
        for line, variable in sorted(set(reads(tree, table[module]))):
            if "*" not in ok and variable not in ok:
                bad.append(f"{rel}:{line}: reads {variable}")
    return bad


def test_no_module_reads_an_envspec_variable_but_the_settings_and_the_child_protocols() -> None:
    """Add a variable to ``envspec.settings.Settings`` and pass the value down instead; a new protocol
    with a child process goes into ALLOWED, with its reason."""
    assert offences(PACKAGE, ALLOWED) == []


def test_every_allowed_module_exists_and_still_reads_what_it_is_allowed() -> None:
    """An allow-list entry that nothing uses any more is dropped, not kept for later."""
    paths = {p.relative_to(PACKAGE).as_posix(): p for p in PACKAGE.rglob("*.py")}
    trees = {_module(p, PACKAGE): ast.parse(p.read_text(encoding="utf-8")) for p in paths.values()}
    table = constants(trees)
    for rel, variables in ALLOWED.items():
        module = _module(paths[rel], PACKAGE)
        seen = {v for _, v in reads(trees[module], table[module])}
        assert variables == {"*"} or variables <= seen, f"{rel}: allowed {sorted(variables - seen)} but reads none"


def test_the_check_sees_each_way_of_reading(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "names.py").write_text('LIMIT_ENV = "ENVSPEC_LIMIT"\nOTHER = "PATH"\nALIAS = LIMIT_ENV\n')
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "use.py").write_text(
        "import os\n"
        "from pkg.names import ALIAS as L, OTHER\n"
        "A_ENV = 'ENVSPEC_A'\n"
        "def f(environ, env):\n"
        "    os.environ.get('ENVSPEC_ONE')\n"  # 5
        "    os.getenv(L)\n"  # 6: an alias of a constant, imported and renamed
        "    environ[A_ENV]\n"  # 7
        "    'ENVSPEC_IN' in env\n"  # 8
        "    number(os.environ if environ is None else environ, MYSTERY_ENV, 1)\n"  # 9: a helper, given both
        "    helper(A_ENV)\n"  # 10: a helper that reads os.environ itself
        "    os.environ.get(OTHER)\n"  # not ENVSPEC_*
        "    env['ENVSPEC_W'] = '1'\n"  # a write, for a child
        "    state = {}; state.get('ENVSPEC_TARGET')\n"  # not an environment
        "def helper(name):\n"
        "    return os.environ.get(name)\n"
    )
    assert offences(package, {}) == [
        "sub/use.py:5: reads ENVSPEC_ONE",
        "sub/use.py:6: reads ENVSPEC_LIMIT",
        "sub/use.py:7: reads ENVSPEC_A",
        "sub/use.py:8: reads ENVSPEC_IN",
        "sub/use.py:9: reads ?MYSTERY_ENV",
        "sub/use.py:10: reads ENVSPEC_A",
    ]
    assert offences(package, {"sub/use.py": frozenset({"*"})}) == []
