"""envspec.install.wheels with real processes: bytecode by the environment's own python, an allowed
sdist built by the environment's pip then installed by installer, and a failing PyPI step that
leaves no environment behind (the staging/swap logic of envspec.install.execute).

The "environment" is a staging folder whose ``bin/python`` links to this interpreter (it has pip
and setuptools), with a conda-meta python record of its version.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envspec.errors import IntegrityError, ToolFailed
from envspec.install import execute, wheels
from envspec.install.plan import Destination, ExplicitLock, InstallPlan

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "install"))
from pypi_index import Project, sdist_bytes  # noqa: E402
from test_wheels import DEMO, PY, assert_record_true, conda_env, quiet, write_wheel  # noqa: E402


def test_the_environments_python_compiles_and_record_names_the_bytecode(tmp_path: Path) -> None:
    staging, final = conda_env(tmp_path / "staging"), tmp_path / "env"
    wheel_dir = tmp_path / "w"
    wheel_dir.mkdir()
    broken = {"envspec_demo/py2.py": b"print 'python 2'\n"}  # does not compile: skipped, as pip does
    where = wheels.Target(staging, final, wheels.LAYOUTS["linux-64"], PY)
    compiler = wheels.env_compiler(staging / "bin" / "python", staging, final)
    wheels.install_wheels([write_wheel(wheel_dir, DEMO, broken)], where, frozenset(), compiler, quiet)
    site = staging / "lib" / f"python{PY}" / "site-packages"
    paths = assert_record_true(site, "envspec_demo-1.1.dist-info")
    pyc = f"envspec_demo/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    assert pyc in paths and not any("py2." in p and p.endswith(".pyc") for p in paths)
    code = (site / pyc).read_bytes()
    assert str(final).encode() in code and str(staging).encode() not in code
    ran = subprocess.run(
        [sys.executable, "-c", "import envspec_demo; print(envspec_demo.__version__)"],
        env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert ran.stdout.strip() == "1.1"


def test_an_allowed_sdist_is_built_by_the_environments_pip_then_installed(tmp_path: Path) -> None:
    staging, final = conda_env(tmp_path / "staging"), tmp_path / "env"
    work = tmp_path / "w"
    work.mkdir()
    src = Project("envspec-src", "1.0", sdist_only=True)
    sdist = work / src.filename
    sdist.write_bytes(sdist_bytes(src))
    names = wheels.install_files(
        [sdist], staging, final, subdir="linux-64", requested=["envspec-src"], progress=quiet, work=work
    )
    assert names == ["envspec-src"]
    site = staging / "lib" / f"python{PY}" / "site-packages"
    (info,) = site.glob("envspec_src-1.0.dist-info")
    assert (info / "INSTALLER").read_text() == "envspec\n" and (info / "REQUESTED").exists()
    assert "envspec_src/__init__.py" in assert_record_true(site, info.name)


def test_a_broken_sdist_is_one_line(tmp_path: Path) -> None:
    staging = conda_env(tmp_path / "staging")
    bad = tmp_path / "envspec_bad-1.0.tar.gz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(ToolFailed, match=r"building envspec_bad-1\.0\.tar\.gz failed"):
        wheels.install_files([bad], staging, tmp_path / "env", subdir="linux-64", requested=[], progress=quiet,
                             work=tmp_path)  # fmt: skip


def test_a_failing_pypi_step_leaves_no_environment_behind(tmp_path: Path) -> None:
    """install_rattler with an empty conda part and a hostile wheel: the prefix never appears."""
    wheel_dir = tmp_path / "w"
    wheel_dir.mkdir()
    hostile = write_wheel(wheel_dir, DEMO, {"envspec_demo-1.1.data/data/../../../escape.txt": b"x\n"})
    prefix = tmp_path / "envs" / "sd"
    empty = ExplicitLock("linux-64", ())
    plan = InstallPlan("t", "t.lock", empty, (), Destination(prefix), {}, "rattler", None)

    def after_link(staging: Path, final: Path) -> None:
        conda_env(staging)
        wheels.install_files([hostile], staging, final, subdir="linux-64", requested=[], progress=quiet, work=wheel_dir)

    with pytest.raises(IntegrityError, match="outside of the target directory"):
        execute.install_rattler(plan, cache=tmp_path / "pkgs", progress=quiet, after_link=after_link)
    assert not prefix.exists() and not (tmp_path / "envs").exists()
    assert not list(tmp_path.rglob("escape.txt"))
