"""The PyPI part of an install (envspec.install.wheels), unit level: real wheels (built by
tests/pypi_index.py) installed by the real pypa ``installer`` into a staging folder, read back.

No process here: bytecode is compiled in-process (the environment's python is this one);
test_wheels_integration.py runs the environment's own python (bytecode, sdist builds).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import struct
import sys
import typing
import zipfile
from pathlib import Path

import pytest

from envspec.errors import ExitCode, IntegrityError, ToolFailed
from envspec.install import wheels
from envspec.install.wheels import LAYOUTS, Target, host_compiler, install_files, install_wheels
from envspec.spec.schema import Subdir

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from pypi_index import Project, wheel_bytes  # noqa: E402

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
DEMO = Project("envspec-demo", "1.1", scripts={"envspec-demo": "envspec_demo:main"})
HELPER = Project("envspec-helper", "0.2")


def quiet(_: str) -> None:
    pass


def conda_env(root: Path, python: str = PY, build: str = "h0_0_cpython") -> Path:
    """A staging folder as the conda part leaves it: a python record in conda-meta."""
    (root / "conda-meta").mkdir(parents=True, exist_ok=True)
    record = {"name": "python", "version": f"{python}.1", "build": build}
    (root / "conda-meta" / f"python-{python}.1-{build}.json").write_text(json.dumps(record))
    (root / "bin").mkdir(exist_ok=True)
    (root / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the POSIX layout's
    (root / "bin" / "python").chmod(0o755)
    (root / "python.exe").write_bytes(b"MZ")  # the Windows layout's (never run here)
    return root


CONDA_FILES = {Path("bin/python"), Path("python.exe")}


def write_wheel(folder: Path, project: Project, extra: dict[str, bytes] | None = None) -> Path:
    """``project``'s wheel, plus ``extra`` files (each listed in a RECORD rewritten to match)."""
    path = folder / project.filename
    data = wheel_bytes(project)
    if extra:
        with zipfile.ZipFile(io.BytesIO(data)) as src:
            files = {i.filename: src.read(i) for i in src.infolist()}
        record = next(n for n in files if n.endswith(".dist-info/RECORD"))
        files.update(extra)
        rows = [f"{n},sha256={_b64(hashlib.sha256(d).digest())},{len(d)}\n" for n, d in files.items() if n != record]
        files[record] = ("".join(rows) + f"{record},,\n").encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as out:
            for name, content in files.items():
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o100755 if "/scripts/" in name else 0o100644) << 16
                out.writestr(info, content)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def read_record(site: Path, dist_info: str) -> list[tuple[str, str, str]]:
    with (site / dist_info / "RECORD").open(newline="") as handle:
        return [(row[0], row[1], row[2]) for row in csv.reader(handle)]


def assert_record_true(site: Path, dist_info: str) -> list[str]:
    """Every RECORD row names a file whose sha256 and size are what RECORD says; returns the paths."""
    paths = []
    for path, digest, size in read_record(site, dist_info):
        target = (site / path).resolve()
        assert target.is_file(), path
        paths.append(path)
        if path == f"{dist_info}/RECORD":
            assert (digest, size) == ("", "")
            continue
        data = target.read_bytes()
        assert digest == f"sha256={_b64(hashlib.sha256(data).digest())}", path
        assert int(size) == len(data), path
    return paths


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(staging, final, folder of wheels)."""
    staging = conda_env(tmp_path / ".env.envspec-new-1")
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    return staging, tmp_path / "env", wheel_dir


def test_every_subdir_envspec_locks_has_a_layout() -> None:
    assert set(LAYOUTS) == set(typing.get_args(Subdir))
    assert LAYOUTS["win-64"].launcher == "win-amd64" and LAYOUTS["linux-64"].launcher == "posix"


def test_posix_install_is_right_for_the_final_prefix(staged: tuple[Path, Path, Path]) -> None:
    staging, final, wheel_dir = staged
    tool = b"#!python\nprint('tool')\n"
    header = b"/* header */\n"
    files = [
        write_wheel(
            wheel_dir,
            DEMO,
            {
                "envspec_demo-1.1.data/scripts/demo-tool": tool,
                "envspec_demo-1.1.data/headers/demo.h": header,
                "envspec_demo-1.1.data/data/share/demo/readme.txt": b"hi\n",
            },
        ),
        write_wheel(wheel_dir, HELPER),
    ]
    names = install_files(
        files, staging, final, subdir="linux-64", requested=["Envspec_Demo>=1.0"], progress=quiet, work=wheel_dir
    )
    assert names == ["envspec-demo", "envspec-helper"]
    site = staging / "lib" / f"python{PY}" / "site-packages"
    assert (site / "envspec_demo" / "__init__.py").is_file() and (site / "envspec_helper").is_dir()
    # console script and #!python script: the final prefix's python, executable, no staging path
    for script in ("envspec-demo", "demo-tool"):
        data = (staging / "bin" / script).read_bytes()
        assert data.splitlines()[0] == f"#!{final}/bin/python".encode(), script
        assert (staging / "bin" / script).stat().st_mode & 0o111
    assert (staging / "bin" / "demo-tool").read_bytes().endswith(b"print('tool')\n")
    assert (staging / "include" / f"python{PY}" / "envspec_demo" / "demo.h").read_bytes() == header
    assert (staging / "share" / "demo" / "readme.txt").read_bytes() == b"hi\n"
    # INSTALLER envspec everywhere; REQUESTED only for the spec's pip: list
    demo_info, helper_info = site / "envspec_demo-1.1.dist-info", site / "envspec_helper-0.2.dist-info"
    assert (demo_info / "INSTALLER").read_text() == "envspec\n" == (helper_info / "INSTALLER").read_text()
    assert (demo_info / "REQUESTED").read_bytes() == b"" and not (helper_info / "REQUESTED").exists()
    # RECORD true: every written file, bytecode included, with its real hash; relative paths only
    paths = assert_record_true(site, demo_info.name)
    assert {"../../../bin/envspec-demo", "../../../bin/demo-tool", "../../../share/demo/readme.txt"} <= set(paths)
    pyc = f"envspec_demo/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    assert pyc in paths and "envspec_demo-1.1.dist-info/INSTALLER" in paths
    written = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file() and "conda-meta" not in p.parts}
    written -= CONDA_FILES
    recorded = {(site / p).resolve().relative_to(staging.resolve()) for p in paths}
    recorded |= {
        (site / p).resolve().relative_to(staging.resolve()) for p in assert_record_true(site, helper_info.name)
    }
    assert written == recorded  # nothing written that RECORD does not name
    # the bytecode names the final prefix (tracebacks), never the staging folder
    code = (site / pyc).read_bytes()
    assert str(final).encode() in code and str(staging).encode() not in code
    for path in written:
        assert str(staging).encode() not in (staging / path).read_bytes(), path
    assert (site / "envspec_demo" / "__init__.py").stat().st_mtime <= (site / pyc).stat().st_mtime


def test_win_64_launcher_names_the_final_prefix_python_exe(staged: tuple[Path, Path, Path]) -> None:
    """Read the launcher back: a PE image, then the shebang, then a zip holding ``__main__.py``."""
    staging, final, wheel_dir = staged
    files = [write_wheel(wheel_dir, DEMO)]
    install_files(files, staging, final, subdir="win-64", requested=[], progress=quiet, work=wheel_dir)
    exe = staging / "Scripts" / "envspec-demo.exe"
    data = exe.read_bytes()
    end = pe_image_end(data)
    assert data[end:].startswith(f"#!{final / 'python.exe'}\n".encode())
    with zipfile.ZipFile(io.BytesIO(data)) as appended:
        assert "from envspec_demo import main" in appended.read("__main__.py").decode()
    site = staging / "Lib" / "site-packages"
    paths = assert_record_true(site, "envspec_demo-1.1.dist-info")
    assert "../../Scripts/envspec-demo.exe" in paths
    assert not (staging / "lib").exists() and sorted((staging / "bin").iterdir()) == [staging / "bin" / "python"]


def pe_image_end(data: bytes) -> int:
    """Where a PE file's last section ends (what follows is appended data)."""
    assert data[:2] == b"MZ"
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    assert data[pe : pe + 4] == b"PE\0\0"
    sections, optional_size = struct.unpack_from("<H", data, pe + 6)[0], struct.unpack_from("<H", data, pe + 20)[0]
    table = pe + 24 + optional_size
    ends = []
    for i in range(sections):
        raw_size, raw_ptr = struct.unpack_from("<II", data, table + 40 * i + 16)
        ends.append(int(raw_ptr) + int(raw_size))
    return int(max(ends))


@pytest.mark.parametrize(
    "extra",
    [
        {"../escape.py": b"x = 1\n"},
        {"envspec_demo-1.1.data/data/../../escape.txt": b"x\n"},
        {"envspec_demo-1.1.data/scripts/../../../escape": b"#!python\n"},
        {"/tmp/escape-abs.txt": b"x\n"},
    ],
    ids=["root-dotdot", "data-dotdot", "scripts-dotdot", "absolute"],
)
def test_a_path_outside_the_staging_folder_is_refused(staged: tuple[Path, Path, Path], extra: dict[str, bytes]) -> None:
    staging, final, wheel_dir = staged
    wheel = write_wheel(wheel_dir, DEMO, extra)
    before = set(staging.parent.rglob("*"))
    with pytest.raises(IntegrityError, match="cannot be installed") as err:
        install_files([wheel], staging, final, subdir="linux-64", requested=[], progress=quiet, work=wheel_dir)
    assert err.value.exit_code == ExitCode.INTEGRITY
    after = set(staging.parent.rglob("*"))
    assert all(staging in p.parents for p in after - before)  # whatever was written is inside staging
    assert not Path("/tmp/escape-abs.txt").exists()


def test_an_entry_point_named_outside_is_refused(staged: tuple[Path, Path, Path]) -> None:
    staging, final, wheel_dir = staged
    evil = Project("envspec-demo", "1.1", scripts={"../../escape": "envspec_demo:main"})
    with pytest.raises(IntegrityError, match="cannot be installed"):
        install_files(
            [write_wheel(wheel_dir, evil)], staging, final, subdir="linux-64", requested=[], progress=quiet,
            work=wheel_dir,
        )  # fmt: skip
    assert not (staging.parent / "escape").exists()


def test_a_file_of_the_conda_part_is_never_overwritten(staged: tuple[Path, Path, Path]) -> None:
    """A conda file in staging is a hard link into the package cache: writing it would edit the cache."""
    staging, final, wheel_dir = staged
    conda_file = staging / "lib" / f"python{PY}" / "site-packages" / "envspec_helper" / "__init__.py"
    conda_file.parent.mkdir(parents=True)
    conda_file.write_text("# conda's\n")
    with pytest.raises(IntegrityError, match="would overwrite a file already in the environment"):
        install_files(
            [write_wheel(wheel_dir, HELPER)], staging, final, subdir="linux-64", requested=[], progress=quiet,
            work=wheel_dir,
        )  # fmt: skip
    assert conda_file.read_text() == "# conda's\n"


def test_no_python_in_the_environment_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ToolFailed, match="the environment has no python"):
        install_files([], tmp_path, tmp_path, subdir="linux-64", requested=[], progress=quiet, work=tmp_path)


def test_env_python_reads_the_conda_record(tmp_path: Path) -> None:
    assert wheels.env_python(tmp_path) is None
    py = wheels.env_python(conda_env(tmp_path, "3.12", "h1_0_cpython"))
    assert py == wheels.EnvPython("3.12", "h1_0_cpython") and py.cache_tag == "cpython-312"
    assert wheels.EnvPython("3.10", "0_73_pypy").cache_tag is None


def test_bytecode_is_compiled_in_process_only_for_the_same_cpython(tmp_path: Path) -> None:
    py = wheels.EnvPython("3.12", "h_cpython")
    python = tmp_path / "bin" / "python"
    same = wheels.choose_compiler(py, python, tmp_path, tmp_path, "cpython-312")
    other = wheels.choose_compiler(py, python, tmp_path, tmp_path, "cpython-313")
    pypy = wheels.choose_compiler(wheels.EnvPython("3.12", "pypy"), python, tmp_path, tmp_path, "cpython-312")
    assert same.__qualname__.startswith("host_compiler")
    assert other.__qualname__.startswith("env_compiler") and pypy.__qualname__.startswith("env_compiler")


def test_without_a_compiler_record_is_still_true(staged: tuple[Path, Path, Path]) -> None:
    staging, final, wheel_dir = staged
    where = Target(staging, final, LAYOUTS["osx-arm64"], "3.13")
    install_wheels([write_wheel(wheel_dir, HELPER)], where, frozenset(), None, quiet)
    site = staging / "lib" / "python3.13" / "site-packages"
    paths = assert_record_true(site, "envspec_helper-0.2.dist-info")
    assert not any(p.endswith(".pyc") for p in paths)


def test_host_compiler_skips_what_does_not_compile(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("x = 1\n")
    bad.write_text("def (:\n")
    made = host_compiler(tmp_path, tmp_path / "final")([good, bad])
    assert list(made) == [good] and made[good].is_file()


@pytest.mark.parametrize(
    ("interpreter", "simple"),
    [("/opt/env/bin/python", True), ("/opt/my env/bin/python", False), ("/" + "x" * 130 + "/bin/python", False)],
)
def test_shebang_is_a_trampoline_when_the_kernel_would_misread_it(interpreter: str, simple: bool) -> None:
    line = wheels.shebang(interpreter)
    if simple:
        assert line == f"#!{interpreter}\n".encode()
    else:
        assert line.startswith(b"#!/bin/sh\n") and f"'{interpreter}'".encode() in line


def test_a_wheel_built_from_an_sdist_must_be_what_was_locked() -> None:
    wheels.check_built("envspec_src-1.0.tar.gz", "envspec_src-1.0-py3-none-any.whl")
    with pytest.raises(IntegrityError, match=r"not the locked envspec-src 1\.0"):
        wheels.check_built("envspec_src-1.0.tar.gz", "envspec_src-0.0.0-py3-none-any.whl")
    with pytest.raises(IntegrityError):
        wheels.check_built("envspec_src-1.0.tar.gz", "UNKNOWN-1.0-py3-none-any.whl")


def test_a_windows_launcher_quotes_a_final_prefix_with_a_space(tmp_path: Path) -> None:
    staging, final = conda_env(tmp_path / "staging"), tmp_path / "my envs" / "sd"
    wheel_dir = tmp_path / "w"
    wheel_dir.mkdir()
    install_files([write_wheel(wheel_dir, DEMO)], staging, final, subdir="win-64", requested=[], progress=quiet,
                  work=wheel_dir)  # fmt: skip
    data = (staging / "Scripts" / "envspec-demo.exe").read_bytes()
    assert data[pe_image_end(data) :].startswith(f'#!"{final / "python.exe"}"\n'.encode())
