"""PyPI packages end to end, offline: a local PEP 503 index (tests/pypi_index.py) beside the lock
tests' conda channel (plus ``pip``, and a ``python`` whose prefix has its own site-packages).

One target (the shipped spec's linux-cuda) gets PyPI-only packages; ``envspec up`` locks it
(conda-lock for the conda part, uv for the PyPI part on top of it; conda-lock's own CLI renders the
result), installs the wheels hash-checked into the staging prefix and passes the smoke test; the
plain ``pip install --no-deps --require-hashes -r <t>.pip.txt`` path works from the lockfiles; a
tampered wheel, a pip/conda conflict and an sdist are refused; mirror credentials are used but
never written or printed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from envspec.cli.main import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import pypi_index  # noqa: E402
from pypi_index import Project  # noqa: E402

TARGET = "linux-cuda"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"

if sys.platform == "win32":
    pytest.skip("the channel's python launcher is a POSIX shell script", allow_module_level=True)
_SMOKE = all(importlib.util.find_spec(m) is not None for m in ("torch", "diffusers", "transformers"))

PROJECTS = [
    Project("envspec-demo", "1.0", requires=("envspec-helper>=0.1",)),
    Project("envspec-demo", "1.1", requires=("envspec-helper>=0.1",), scripts={"envspec-demo": "envspec_demo:main"}),
    Project("envspec-helper", "0.2"),
    Project("envspec-native", "1.0", tag="py3-none-manylinux_2_17_x86_64"),
    Project("envspec-native", "1.0", tag="py3-none-win_amd64"),
    Project("envspec-old-numpy", "1.0", requires=("numpy<2",)),
    Project("envspec-src", "1.0", requires=("envspec-helper>=0.1",), sdist_only=True),
]


def child(
    project: Path, *args: str, cache: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("ENVSPEC_MIRRORS", "ENVSPEC_HOST_SUBDIR")}
    environ.update({"PYTHONPATH": str(REPO), "ENVSPEC_PKGS_DIR": str(cache), **(extra_env or {})})
    return subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        check=False,
    )


def make_project(root: Path, pip: list[str], allow_sdist: list[str] | None = None) -> Path:
    """The synthetic channel's spec + templates with ``pip`` added to the linux-cuda target, rendered."""
    root.mkdir(parents=True)
    spec = yaml.safe_load((REPO / "tests" / "data" / "synthetic" / "envspec.yml").read_text(encoding="utf-8"))
    spec["targets"][TARGET]["pip"] = pip
    if allow_sdist:
        spec["pip_allow_sdist"] = allow_sdist
    (root / "envspec.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--spec", str(root / "envspec.yml"), "render"]) == 0
    return root


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pypi-channel") / "conda-forge-local"
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "pypi_index.py"), str(root), sys.executable],
        check=True,
        capture_output=True,
    )
    return root


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pypi_index.Index]:
    with pypi_index.serve(tmp_path_factory.mktemp("pypi-index"), PROJECTS) as served:
        yield served


@pytest.fixture(scope="module")
def upped(channel: Path, index: pypi_index.Index, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``envspec up`` of a target with PyPI-only packages, no lockfile yet: (project, prefix, work)."""
    work = tmp_path_factory.mktemp("pypi-up")
    project = make_project(work / "proj", ["envspec-demo>=1.0", "envspec-native", "torch>=2"])
    args = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
    if _SMOKE:
        proc = child(project, "up", TARGET, *args, "--no-models", "--allow-cpu", "--prefix", str(work / "env"),
                     "--out", str(work / "out"), cache=work / "pkgs")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert proc.stdout.startswith(f"up {TARGET}: PASS on cpu"), proc.stdout
    else:  # no torch stack here: lock + install only
        proc = child(project, "install", TARGET, *args, "--prefix", str(work / "env"), cache=work / "pkgs")
        assert proc.returncode == 0, proc.stderr[-4000:]
    return project, work / "env", work


def _pins(project: Path) -> list[str]:
    text = (project / "lockfiles" / f"{TARGET}.pip.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_lockfiles_carry_the_pip_packages(upped: tuple[Path, Path, Path], index: pypi_index.Index) -> None:
    project, _, _ = upped
    lock_yml = yaml.safe_load((project / "lockfiles" / f"{TARGET}.conda-lock.yml").read_text(encoding="utf-8"))
    pip = {p["name"]: p for p in lock_yml["package"] if p["manager"] == "pip"}
    # the PyPI-only packages and their dependency; torch is pytorch's (conda), never installed twice
    assert set(pip) == {"envspec-demo", "envspec-helper", "envspec-native"}
    assert pip["envspec-demo"]["version"] == "1.1"
    assert pip["envspec-native"]["url"].endswith("manylinux_2_17_x86_64.whl")  # the target's platform decides
    assert all(len(p["hash"]["sha256"]) == 64 for p in pip.values())
    assert lock_yml["metadata"]["sources"] == [f"environment-{TARGET}.yml"] or all(
        "envspec-tmp" not in s for s in lock_yml["metadata"]["sources"]
    )
    explicit = (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    assert (
        f"# pip envspec-demo @ {index.url.removesuffix('/simple')}/files/envspec_demo-1.1-py3-none-any.whl#sha256="
        in explicit
    )
    pins = _pins(project)
    assert len(pins) == 3 and all("==" in p and "--hash=sha256:" in p for p in pins)
    assert not list(project.glob(".*envspec-tmp*")), "the lock-time environment file was left behind"


def test_conda_lock_itself_renders_the_pip_packages(upped: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The pip entries envspec merges (uv's resolution) are conda-lock's own: its CLI renders them."""
    project, _, _ = upped
    lockfile = project / "lockfiles" / f"{TARGET}.conda-lock.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "conda_lock", "render", "--kind", "explicit", "--platform", "linux-64", str(lockfile)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rendered = (tmp_path / "conda-linux-64.lock").read_text(encoding="utf-8")
    ours = (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    pip = sorted(line for line in rendered.splitlines() if line.startswith("# pip "))
    assert len(pip) == 3 and pip == sorted(line for line in ours.splitlines() if line.startswith("# pip "))


#: Stands in for conda, which cannot be installed here: `create --file F` keeps the explicit file
#: conda-lock rendered (no conda package is installed); `run ... pip ...` runs the real pip of this
#: interpreter, with --target PREFIX/site (conda-lock runs `conda run --prefix P pip install ...`).
FAKE_CONDA = """#!/bin/sh
cmd="$1"; shift
prefix=""; file=""; rest=""
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix="$2"; shift;; --file) file="$2"; shift;; pip) shift; break;; esac; shift
done
case "$cmd" in
  create) mkdir -p "$prefix/conda-meta" && cp "$file" "$prefix/explicit.txt";;
  run) exec "{python}" -m pip "$@" --target "$prefix/site" --disable-pip-version-check --no-input;;
  *) exit 3;;
esac
"""


def test_conda_lock_install_installs_the_pip_packages(upped: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`conda-lock install` on envspec's <t>.conda-lock.yml: conda-lock renders the `manager: pip`
    entries as `# pip NAME @ URL#sha256=...` and hands them to pip (`--no-deps -r`), which installs
    them, checking each URL's sha256. conda itself is a stand-in (FAKE_CONDA): the conda part of
    `conda-lock install` is not exercised here, only what it is given."""
    project, _, _ = upped
    conda = tmp_path / "bin" / "conda"
    conda.parent.mkdir()
    conda.write_text(FAKE_CONDA.format(python=sys.executable), encoding="utf-8")
    conda.chmod(0o755)
    prefix = tmp_path / "env"
    lockfile = project / "lockfiles" / f"{TARGET}.conda-lock.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "conda_lock", "install", "--conda", str(conda), "--prefix", str(prefix),
         "--no-validate-platform", str(lockfile)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    received = (prefix / "explicit.txt").read_text(encoding="utf-8")
    ours = (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    assert sorted(ln for ln in received.splitlines() if ln.startswith("# pip ")) == sorted(
        ln for ln in ours.splitlines() if ln.startswith("# pip "))  # fmt: skip
    installed = sorted(p.name for p in (prefix / "site").glob("*.dist-info"))
    assert installed == ["envspec_demo-1.1.dist-info", "envspec_helper-0.2.dist-info", "envspec_native-1.0.dist-info"]


def test_the_environment_imports_and_runs_the_pip_packages(upped: tuple[Path, Path, Path]) -> None:
    _, prefix, _ = upped
    out = subprocess.run(
        [str(prefix / "bin" / "python"), "-c",
         "import envspec_demo, envspec_helper, envspec_native; print(envspec_demo.__file__)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip().startswith(str(prefix)), out.stdout
    script = prefix / "bin" / "envspec-demo"
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert first == f"#!{prefix}/bin/python"  # written for the final prefix (pypa installer), not rewritten
    ran = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "envspec-demo 1.1"
    (site,) = (prefix / "lib").glob("python3.*/site-packages")  # the conda python record's X.Y
    assert len(list(site.glob("envspec_*.dist-info"))) == 3
    for info in site.glob("envspec_*.dist-info"):
        assert (info / "INSTALLER").read_text(encoding="utf-8") == "envspec\n", info
        # REQUESTED: what the spec's pip: names (envspec-demo, envspec-native), not the dependency
        assert (info / "REQUESTED").exists() == (not info.name.startswith("envspec_helper")), info
    assert not list(prefix.parent.glob(f".{prefix.name}*staging*"))


def test_lock_check_and_plain_pip_from_the_lockfiles(
    upped: tuple[Path, Path, Path], channel: Path, index: pypi_index.Index
) -> None:
    project, _, work = upped
    args = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
    check = child(project, "lock", "--target", TARGET, "--check", *args, cache=work / "pkgs")
    assert check.returncode == 0, check.stderr
    # the plain-tools path: `conda run -n sd python -m pip install --no-deps --require-hashes -r <t>.pip.txt`;
    # the test env's python is this interpreter (tests/pypi_index.py launcher), so it installs into a fresh prefix
    plain = work / "plain"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--no-deps", "--require-hashes",
         "--index-url", index.url, "--prefix", str(plain), "-r", str(project / "lockfiles" / f"{TARGET}.pip.txt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = plain / "lib" / f"python{PY}" / "site-packages"
    assert {p.name for p in site.glob("*.dist-info")} == {
        "envspec_demo-1.1.dist-info",
        "envspec_helper-0.2.dist-info",
        "envspec_native-1.0.dist-info",
    }


def test_a_tampered_wheel_is_refused_and_nothing_is_installed(
    upped: tuple[Path, Path, Path], channel: Path, index: pypi_index.Index
) -> None:
    project, _, work = upped
    wheel = index.file("envspec_helper-0.2-py3-none-any.whl")
    original = wheel.read_bytes()
    wheel.write_bytes(pypi_index.wheel_bytes(Project("envspec-helper", "0.2", module_body="EVIL = True\n")))
    try:
        mirrors = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
        proc = child(project, "install", TARGET, "--prefix", str(work / "tampered"), *mirrors, cache=work / "pkgs")
    finally:
        wheel.write_bytes(original)
    assert proc.returncode == 7, proc.stderr
    assert "envspec_helper-0.2-py3-none-any.whl" in proc.stderr and "do not match the lockfile hash" in proc.stderr
    assert not (work / "tampered").exists()


def test_a_pip_requirement_conflicting_with_the_conda_solution_is_one_line(
    channel: Path, index: pypi_index.Index, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "proj", ["envspec-old-numpy"])
    proc = child(project, "lock", "--target", TARGET, "--mirror", f"conda-forge={channel.as_uri()}",
                 "--mirror", f"pypi={index.url}", cache=tmp_path / "pkgs")  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    error = next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert "pip requirements cannot be met on top of its conda packages" in error
    assert "numpy" in error and "envspec-old-numpy" in error
    assert not (project / "lockfiles" / f"{TARGET}.pip.txt").exists()


def test_sdists_are_refused_unless_allowed(channel: Path, index: pypi_index.Index, tmp_path: Path) -> None:
    mirrors = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
    refused = make_project(tmp_path / "refused", ["envspec-src"])
    proc = child(refused, "lock", "--target", TARGET, *mirrors, cache=tmp_path / "pkgs")
    assert proc.returncode == 4, proc.stderr
    assert "only a source distribution" in proc.stderr and "pip_allow_sdist: [envspec-src]" in proc.stderr
    allowed = make_project(tmp_path / "allowed", ["envspec-src"], allow_sdist=["envspec-src"])
    proc = child(allowed, "lock", "--target", TARGET, *mirrors, cache=tmp_path / "pkgs")
    assert proc.returncode == 0, proc.stderr
    assert "envspec-src==1.0 --hash=sha256:" in (allowed / "lockfiles" / f"{TARGET}.pip.txt").read_text()
    # installed: built into a wheel by the environment's pip, then installed by pypa installer
    proc = child(allowed, "install", TARGET, "--prefix", str(tmp_path / "env"), *mirrors, cache=tmp_path / "pkgs")
    assert proc.returncode == 0, proc.stderr
    (info,) = (tmp_path / "env" / "lib").glob("python3.*/site-packages/envspec_src-1.0.dist-info")
    assert (info / "INSTALLER").read_text(encoding="utf-8") == "envspec\n" and (info / "REQUESTED").exists()


def test_an_index_serving_other_bytes_than_it_lists_fails_the_lock(channel: Path, tmp_path: Path) -> None:
    """The page's #sha256= is pinned only if the file it serves has it: otherwise exit 6, one line
    naming the file and the index, and no lockfile of the target is written."""
    with pypi_index.serve(tmp_path / "index", PROJECTS[:3]) as bad:
        wheel = bad.file("envspec_helper-0.2-py3-none-any.whl")
        wheel.write_bytes(wheel.read_bytes() + b"\0")
        project = make_project(tmp_path / "proj", ["envspec-demo"])
        proc = child(project, "lock", "--target", TARGET, "--mirror", f"conda-forge={channel.as_uri()}",
                     "--mirror", f"pypi={bad.url}", cache=tmp_path / "pkgs")  # fmt: skip
    assert proc.returncode == 7, proc.stderr
    error = next(line for line in proc.stderr.splitlines() if line.startswith("error:"))
    assert f"the PyPI index {bad.url} lists sha256" in error and "envspec_helper-0.2-py3-none-any.whl" in error
    assert not list((project / "lockfiles").glob(f"{TARGET}.*lock*")) if (project / "lockfiles").exists() else True
    assert not (project / "lockfiles" / f"{TARGET}.pip.txt").exists()


def test_mirror_credentials_are_used_but_never_written_or_printed(channel: Path, tmp_path: Path) -> None:
    secret = "s3cret-Pa55word"
    with pypi_index.serve(tmp_path / "index", PROJECTS[:3], auth=("envspec", secret)) as private:
        url = private.url.replace("http://", f"http://envspec:{secret}@")
        project = make_project(tmp_path / "proj", ["envspec-demo"])
        mirrors = ["--mirror", f"conda-forge={channel.as_uri()}"]
        proc = child(project, "lock", "--target", TARGET, *mirrors, cache=tmp_path / "pkgs",
                     extra_env={"ENVSPEC_MIRRORS": f"pypi={url}"})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert any(r.startswith("/files/") for r in private.requests)
        inst = child(project, "install", TARGET, "--prefix", str(tmp_path / "env"), *mirrors, "--mirror",
                     f"pypi={url}", cache=tmp_path / "pkgs")  # fmt: skip
        assert inst.returncode == 0, inst.stderr
    written = [p.read_text(encoding="utf-8", errors="replace") for p in (project / "lockfiles").iterdir()]
    for text in [*written, proc.stdout, proc.stderr, inst.stdout, inst.stderr]:
        assert secret not in text
    assert "envspec:" not in (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    assert not list(project.glob(".*envspec-tmp*"))


def test_update_moves_one_pip_package_and_check_sees_a_missing_pip_txt(
    upped: tuple[Path, Path, Path], channel: Path, index: pypi_index.Index, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    shutil.copytree(upped[0], project, ignore=shutil.ignore_patterns(".envspec-cache"))
    mirrors = ["--mirror", f"conda-forge={channel.as_uri()}", "--mirror", f"pypi={index.url}"]
    conda_before = (project / "lockfiles" / f"{TARGET}.lock").read_text().split("@EXPLICIT", 1)[1]
    conda_before = [line for line in conda_before.splitlines() if not line.startswith("# pip ")]
    pypi_index.build_files(index.root, [Project("envspec-demo", "1.2", requires=("envspec-helper>=0.1",))])
    pypi_index.write_pages(index.root, f"http://127.0.0.1:{index.port}")
    try:
        proc = child(project, "lock", "--target", TARGET, "--update", "envspec-demo", *mirrors, cache=tmp_path / "c")
        assert proc.returncode == 0, proc.stderr
        pins = _pins(project)
        assert any(p.startswith("envspec-demo==1.2 ") for p in pins)
        assert any(p.startswith("envspec-helper==0.2 ") for p in pins)
        conda_after = (project / "lockfiles" / f"{TARGET}.lock").read_text().split("@EXPLICIT", 1)[1]
        assert [line for line in conda_after.splitlines() if not line.startswith("# pip ")] == conda_before
        assert "# pip envspec-demo @ " in conda_after and "envspec_demo-1.2-py3-none-any.whl" in conda_after
        # a pip.txt that went missing makes the target stale
        (project / "lockfiles" / f"{TARGET}.pip.txt").unlink()
        check = child(project, "lock", "--target", TARGET, "--check", *mirrors, cache=tmp_path / "c")
        assert check.returncode == 1 and ".pip.txt missing" in check.stderr, check.stderr
    finally:
        index.file("envspec_demo-1.2-py3-none-any.whl").unlink()
        pypi_index.write_pages(index.root, f"http://127.0.0.1:{index.port}")


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("ENVSPEC_NETWORK_TESTS"), reason="reaches pypi.org: set ENVSPEC_NETWORK_TESTS=1")
def test_real_pypi(channel: Path, tmp_path: Path) -> None:
    """Opt-in: the same lock against https://pypi.org/simple (the default index, no pypi mirror).
    torchvision is PyPI's release made for the channel's conda pytorch (2.13.0: torchvision 0.28.x);
    PyPI's torch, its nvidia-* and triton wheels are not in the result."""
    project = make_project(tmp_path / "proj", ["six==1.17.0", "torch>=2", "torchvision"])
    proc = child(project, "lock", "--target", TARGET, "--mirror", f"conda-forge={channel.as_uri()}", cache=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pins = [p.split(" ")[0] for p in _pins(project)]
    assert "six==1.17.0" in pins and any(p.startswith("torchvision==0.28.") for p in pins), pins
    assert not [p for p in pins if p.startswith(("torch==", "nvidia-", "triton", "cuda-"))], pins
    explicit = (project / "lockfiles" / f"{TARGET}.lock").read_text(encoding="utf-8")
    assert "# pip six @ https://files.pythonhosted.org/packages/" in explicit
