"""The smoke test imports only the standard library, torch, diffusers, transformers, numpy and pillow.

It runs inside provisioned environments where envspec's own dependencies (pydantic, yaml, jinja2,
rattler, filelock...) and the rest of envspec are absent. Checked twice: statically over every
import statement, and at run time with an import guard in a child process that only has
``envspec/__init__.py`` and ``envspec/smoke/`` on its path (what ``envspec smoke`` ships).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.smoke import host as smoke_runner

SMOKE_DIR = Path(smoke_runner.PACKAGE_ROOT) / "smoke"
ALLOWED_THIRD_PARTY = {"torch", "diffusers", "transformers", "numpy", "PIL"}


def imported_names(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            assert node.module is not None
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            names.append("<dynamic __import__>")
    return names


def test_every_import_statement_is_allowed() -> None:
    # host.py runs on the host (it starts the smoke test in an environment) and is never shipped
    files = sorted(p for p in SMOKE_DIR.rglob("*.py") if p != SMOKE_DIR / smoke_runner.HOST_MODULE)
    assert len(files) >= 10
    bad = []
    for path in [*files, SMOKE_DIR.parent / "__init__.py"]:
        for name in imported_names(path):
            top = name.split(".")[0]
            if top == "envspec":
                ok = name in {"envspec", "envspec.smoke"} or name.startswith("envspec.smoke.")
            else:
                ok = top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY
            if not ok:
                bad.append(f"{path.name}: {name}")
    assert bad == []


def test_the_static_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import yaml\nfrom envspec.errors import SpecError\n")
    assert imported_names(sample) == ["yaml", "envspec.errors"]


def test_copy_ships_only_the_smoke_package(tmp_path: Path) -> None:
    smoke_runner.copy_smoke_package(tmp_path)
    shipped = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert "envspec/__init__.py" in shipped and "envspec/smoke/__main__.py" in shipped
    assert "envspec/smoke/configs/sd-v1/unet/config.json" in shipped
    assert all(p == "envspec/__init__.py" or p.startswith("envspec/smoke/") for p in shipped), shipped
    assert "envspec/smoke/host.py" not in shipped
    assert not any("__pycache__" in p for p in shipped)


GUARD = r"""
import builtins, json, runpy, sys
ALLOWED = set(sys.stdlib_module_names) | {"torch", "diffusers", "transformers", "numpy", "PIL"}
violations = []
real_import = builtins.__import__

def allowed(name):
    top = name.split(".")[0]
    if top == "envspec":
        return name in ("envspec", "envspec.smoke") or name.startswith("envspec.smoke.")
    return top in ALLOWED

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if level == 0 and importer.split(".")[0] == "envspec" and not allowed(name):
        violations.append(f"{importer} imports {name}")
        raise ImportError(f"forbidden in the smoke test: {name}")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded
code = None
try:
    sys.argv = ["envspec.smoke", *sys.argv[1:]]
    runpy.run_module("envspec.smoke", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
finally:
    mods = sorted(m for m in sys.modules if m.split(".")[0] == "envspec")
    files = sorted({getattr(sys.modules[m], "__file__", None) or "" for m in mods})
    print("GUARD " + json.dumps({"violations": violations, "modules": mods, "files": files, "code": code}))
"""


@pytest.mark.integration
def test_smoke_runs_with_only_its_own_package_and_allowed_imports(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    shipped = smoke_runner.copy_smoke_package(tmp_path / "pkg")
    env = {**os.environ, "PYTHONPATH": str(shipped), "PYTHONNOUSERSITE": "1"}
    env.pop("ENVSPEC_DEVICE", None)
    completed = subprocess.run(
        [sys.executable, "-c", GUARD, "--steps", "2", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("GUARD "))
    result = json.loads(line.removeprefix("GUARD "))
    assert result["violations"] == []
    assert result["code"] == 0, completed.stdout + completed.stderr[-2000:]
    assert all(m == "envspec" or m.startswith("envspec.smoke") for m in result["modules"])
    assert all(f.startswith(str(shipped)) for f in result["files"]), result["files"]  # the copy, not the repo
    assert "Traceback" not in completed.stderr


@pytest.mark.integration
def test_the_guard_catches_a_forbidden_import(tmp_path: Path) -> None:
    shipped = smoke_runner.copy_smoke_package(tmp_path / "pkg")
    init = shipped / "envspec" / "smoke" / "__init__.py"
    init.write_text(init.read_text() + "\nimport envspec.errors\n")
    completed = subprocess.run(
        [sys.executable, "-c", GUARD, "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(shipped)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(next(x for x in completed.stdout.splitlines() if x.startswith("GUARD "))[6:])
    assert result["violations"] == ["envspec.smoke imports envspec.errors"]
