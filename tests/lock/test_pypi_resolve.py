"""The PyPI part against real PyPI metadata, offline: uv on top of a conda solution (issue #18).

The index is ``tests/pypi_index.py`` serving the recorded real ``Requires-Dist`` of torch 2.7.1 /
2.9.0 (with their ``nvidia-*`` and ``triton`` requirements), torchvision 0.22.1 / 0.24.0,
accelerate, kornia, torchmetrics, pynvml, nvidia-ml-py, compel... (``tests/data/pypi``). The conda
solution is a conda-lock v1 file of real conda-forge linux-64 records for pytorch 2.7.1 (cuda129),
python 3.12.11, numpy and pillow (from ``../shared/data/conda-forge-records.tar.gz``: names,
versions and build strings copied here), plus the Hugging Face stack at illustrative versions
(the snapshot has none of it). Each case of the issue is one test; each fails without its fix.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envspec.errors import ChannelUnreachable, ExitCode, IntegrityError, ToolFailed, UnsatisfiableError
from envspec.lock import pypi, pypi_merge
from envspec.lock.condalock import read_pip_packages
from envspec.lock.pypi_parts import CondaPart, PipRun
from envspec.settings import FetchLimits, LockLimits, Settings

pytestmark = [pytest.mark.integration]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pypi_index  # noqa: E402

SUBDIR = pypi_index.SUBDIR
VPKG = pypi_index.VPKG
PYTORCH_BUILD = pypi_index.PYTORCH_BUILD
CONDA = pypi_index.CONDA
conda_lock_text = pypi_index.conda_lock_text


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pypi_index.Index]:
    with pypi_index.serve(tmp_path_factory.mktemp("real-metadata"), pypi_index.recorded()) as served:
        yield served


def job(index: pypi_index.Index, *requirements: str) -> pypi.PipJob:
    return pypi.PipJob(tuple(requirements), frozenset(), pypi.pip_index({"pypi": index.url}), frozenset({"pytorch"}))


def resolve(index: pypi_index.Index, tmp_path: Path, *requirements: str, lock: str | None = None) -> list[str]:
    packages = pypi_merge.resolve(
        job(index, *requirements),
        CondaPart(target="linux-cuda", subdir=SUBDIR, lock_text=lock or conda_lock_text(), virtual_packages=VPKG),
        PipRun(work=tmp_path / "work", cache=tmp_path / "uv-cache"),
    )
    return [f"{p.name}=={p.version}" for p in packages]


def test_torch_is_condas_and_pypi_is_never_asked_about_it(index: pypi_index.Index, tmp_path: Path) -> None:
    """Right by accident before: PyPI torch's metadata was fetched and its nvidia-* wheels solved.
    Now torch is conda's pytorch 2.7.1 (a stand-in), so torchvision lands on 0.22.1 (torch==2.7.1),
    and the index is never asked about torch, nvidia-* or triton."""
    index.requests.clear()
    assert resolve(index, tmp_path, "accelerate", "torchvision") == ["accelerate==1.9.0", "torchvision==0.22.1"]
    asked = {r.split("/")[2] for r in index.requests if r.startswith("/simple/")}
    assert asked == {"accelerate", "torchvision"}, asked
    assert not any("torch-" in r or "nvidia" in r or "triton" in r for r in index.requests)


def test_a_requirement_against_the_conda_solution_is_exit_4_naming_the_chain(
    index: pypi_index.Index, tmp_path: Path
) -> None:
    with pytest.raises(UnsatisfiableError) as info:
        resolve(index, tmp_path, "accelerate", "torchvision>=0.24")
    line = info.value.one_line()
    assert info.value.exit_code == ExitCode.UNSATISFIABLE and "\n" not in line
    assert "torchvision" in line and "torch==2.9.0" in line, line
    assert f"conda provides torch 2.7.1 (conda package pytorch 2.7.1 ({PYTORCH_BUILD}))" in line, line


def test_compel_against_condas_old_transformers_is_exit_4(index: pypi_index.Index, tmp_path: Path) -> None:
    with pytest.raises(UnsatisfiableError) as info:
        resolve(index, tmp_path, "compel>=2.0")
    line = info.value.one_line()
    assert "compel" in line and "conda provides transformers 4.20.1" in line, line


def test_pynvml_gets_nvidia_ml_py_and_it_is_not_refused(index: pypi_index.Index, tmp_path: Path) -> None:
    """nvidia-ml-py (NVML bindings) is no torch runtime wheel: the old prefix check refused it."""
    lock, explicit, pip_txt = pypi.finish(
        job(index, "pynvml"),
        CondaPart(
            target="linux-cuda",
            subdir=SUBDIR,
            lock_text=conda_lock_text(),
            explicit_text="@EXPLICIT\n",
            virtual_packages=VPKG,
            input_hash="sha256:" + "c" * 64,
        ),
        PipRun(work=tmp_path),
    )
    assert [p.name for p in read_pip_packages(lock, "x", SUBDIR)] == ["nvidia-ml-py", "pynvml"]
    assert "# pip nvidia-ml-py @ " in explicit and "nvidia-ml-py==13.615.71 --hash=sha256:" in pip_txt


def test_torch_runtime_wheels_asked_for_directly_are_refused_by_name(index: pypi_index.Index, tmp_path: Path) -> None:
    extra = pypi_index.Project("nvidia-cudnn-cu12", "9.5.1.17", tag="py3-none-manylinux_2_27_x86_64")
    served = pypi_index.serve(tmp_path / "idx", [*pypi_index.recorded(["pynvml", "nvidia-ml-py"]), extra])
    with served as idx, pytest.raises(UnsatisfiableError) as info:
        pypi.finish(
            job(idx, "nvidia-cudnn-cu12", "pynvml"),
            CondaPart(
                target="linux-cuda",
                subdir=SUBDIR,
                lock_text=conda_lock_text(),
                explicit_text="@EXPLICIT\n",
                virtual_packages=VPKG,
                input_hash="sha256:x",
            ),
            PipRun(work=tmp_path),
        )
    assert "nvidia-cudnn-cu12" in info.value.message and "nvidia-ml-py" not in info.value.message


def test_a_second_copy_of_a_conda_package_is_refused_naming_it(index: pypi_index.Index, tmp_path: Path) -> None:
    """conda's pyparsing has a version PyPI cannot express, so it gets no stand-in; compel 2.3.1's
    pyparsing from PyPI would be a second copy: refused by name, never written."""
    records = [r for r in CONDA if r[0] != "transformers"] + [
        ("transformers", "4.46.3", "pyhd8ed1ab_0", True),
        ("pyparsing", "3.3.3.conda_1", "pyhd8ed1ab_0", True),
    ]
    with pytest.raises(UnsatisfiableError) as info:
        pypi.finish(
            job(index, "compel<2.4"),
            CondaPart(
                target="linux-cuda",
                subdir=SUBDIR,
                lock_text=conda_lock_text(records),
                explicit_text="@EXPLICIT\n",
                virtual_packages=VPKG,
                input_hash="sha256:x",
            ),
            PipRun(work=tmp_path),
        )
    assert "would install pyparsing (conda's pyparsing) from PyPI" in info.value.message


def test_the_result_is_condas_own_lockfile_format(index: pypi_index.Index, tmp_path: Path) -> None:
    """conda-lock's own reader and renderer take the merged file: `conda-lock render` keeps working."""
    from conda_lock.conda_lock import render_lockfile_for_platform
    from conda_lock.lockfile import parse_conda_lock_file

    lock, _, _ = pypi.finish(
        job(index, "kornia", "torchmetrics"),
        CondaPart(
            target="linux-cuda",
            subdir=SUBDIR,
            lock_text=conda_lock_text(),
            explicit_text="@EXPLICIT\n",
            virtual_packages=VPKG,
            input_hash="sha256:x",
        ),
        PipRun(work=tmp_path),
    )
    path = tmp_path / "linux-cuda.conda-lock.yml"
    path.write_text(lock, encoding="utf-8")
    parsed = parse_conda_lock_file(path)
    pip = sorted(p.name for p in parsed.package if p.manager == "pip")
    assert pip == ["kornia", "kornia-rs", "lightning-utilities", "torchmetrics"]
    rendered = render_lockfile_for_platform(
        lockfile=parsed, include_dev_dependencies=False, extras=None, kind="explicit", platform=SUBDIR
    )
    assert any(line.startswith("# pip kornia @ http://127.0.0.1:") for line in rendered)
    assert len([line for line in rendered if line.startswith("https://conda.anaconda.org/")]) == len(CONDA)


def test_the_fast_merge_writes_what_conda_locks_own_writer_writes(tmp_path: Path) -> None:
    """The pip entries are appended as text (no YAML round trip of the whole lockfile); the result
    is byte-identical to conda-lock's own model and writer doing the merge."""
    from conda_lock.lockfile import parse_conda_lock_file, write_conda_lock_file

    from envspec.lock.condalock import PipPackage

    # what conda-lock itself writes for the conda part: its own writer's output
    path = tmp_path / "linux-cuda.conda-lock.yml"
    path.write_text(conda_lock_text(), encoding="utf-8")
    write_conda_lock_file(parse_conda_lock_file(path), path, metadata_choices=None)
    conda_only = path.read_text(encoding="utf-8")
    packages = [
        PipPackage("zeta-pkg", "1.0", "https://f.example/zeta_pkg-1.0-py3-none-any.whl", "a" * 64),
        PipPackage("alpha-pkg", "2.10", "https://f.example/alpha_pkg-2.10-py3-none-any.whl", "b" * 64),
    ]
    fast = pypi_merge.merge_conda_lock_fast(conda_only, packages, SUBDIR)
    slow = pypi_merge.merge_conda_lock(conda_only, packages, SUBDIR, tmp_path / "linux-cuda.conda-lock.yml")
    assert fast == slow
    assert pypi_merge.merge_conda_lock_fast(slow, packages, SUBDIR) is None  # already has pip entries: slow path


def test_an_unreachable_index_is_exit_5_without_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's back-off (3 retries: 9 s) would change nothing here
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = pypi.PipJob(("six",), frozenset(), pypi.pip_index({"pypi": f"http://me:s3cret@127.0.0.1:{port}/simple"}))
    with pytest.raises(ChannelUnreachable) as info:
        pypi_merge.resolve(
            closed,
            CondaPart(target="linux-cuda", subdir=SUBDIR, lock_text=conda_lock_text(), virtual_packages=VPKG),
            PipRun(work=tmp_path / "w"),
            scrub=lambda text: pypi.scrub(closed, text),
        )
    assert info.value.exit_code == ExitCode.CHANNEL_UNREACHABLE and "s3cret" not in info.value.one_line()
    assert f"127.0.0.1:{port}" in info.value.one_line()


@pytest.mark.parametrize(
    ("subdir", "vpkgs", "ok"),
    [
        ("osx-arm64", "__osx: '14.0'", True),  # MACOSX_DEPLOYMENT_TARGET=14.0: a macosx_14_0 wheel fits
        ("osx-arm64", "__osx: '13.0'", False),
        ("linux-64", "__glibc: '2.31'", True),  # --python-platform x86_64-manylinux_2_31
        ("linux-64", "__glibc: '2.28'", False),
    ],
)
def test_the_targets_virtual_packages_decide_which_wheels_fit(
    subdir: str, vpkgs: str, ok: bool, tmp_path: Path
) -> None:
    projects = [
        pypi_index.Project("envspec-mac", "1.0", tag="py3-none-macosx_14_0_arm64"),
        pypi_index.Project("envspec-glibc", "1.0", tag="py3-none-manylinux_2_31_x86_64"),
    ]
    name = "envspec-mac" if subdir.startswith("osx") else "envspec-glibc"
    vpkg = f"subdirs:\n  {subdir}:\n    packages:\n      {vpkgs}\n"
    with pypi_index.serve(tmp_path / "idx", projects) as idx:
        call = lambda: pypi_merge.resolve(  # noqa: E731
            job(idx, name),
            CondaPart(
                target="t", subdir=subdir, lock_text=conda_lock_text().replace(SUBDIR, subdir), virtual_packages=vpkg
            ),
            PipRun(work=tmp_path / "w"),
        )
        if ok:
            (package,) = call()
            assert package.name == name and package.url.endswith(
                f"{projects[0 if subdir.startswith('osx') else 1].tag}.whl"
            )
        else:
            with pytest.raises(UnsatisfiableError, match=name):
                call()


def test_update_moves_the_named_package_and_keeps_the_other_pins(tmp_path: Path) -> None:
    """``envspec lock --update NAME``: the previous PyPI pins are uv's preferences, NAME may move."""
    import hashlib

    from envspec.lock.condalock import PipPackage

    projects = [pypi_index.Project(n, v) for n in ("envspec-a", "envspec-b") for v in ("1.0", "1.1")]
    with pypi_index.serve(tmp_path / "idx", projects) as idx:

        def pin(name: str, version: str) -> PipPackage:
            filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            digest = hashlib.sha256(idx.file(filename).read_bytes()).hexdigest()
            return PipPackage(name, version, f"http://127.0.0.1:{idx.port}/files/{filename}", digest)

        pins = [pin("envspec-a", "1.0"), pin("envspec-b", "1.0")]
        previous = pypi_merge.merge_conda_lock_fast(conda_lock_text(), pins, SUBDIR)
        assert previous is not None

        def lock(update: tuple[str, ...], prev: str | None) -> list[str]:
            packages = pypi_merge.resolve(
                job(idx, "envspec-a", "envspec-b"),
                CondaPart(target="t", subdir=SUBDIR, lock_text=conda_lock_text(), virtual_packages=VPKG),
                PipRun(work=tmp_path / "w", previous=prev, update=update),
            )
            return [f"{p.name}=={p.version}" for p in packages]

        assert lock(("envspec-a",), previous) == ["envspec-a==1.1", "envspec-b==1.0"]
        assert lock((), None) == ["envspec-a==1.1", "envspec-b==1.1"]  # a full solve: the latest of each


def test_requirement_markers_are_evaluated_for_the_target_not_this_machine(
    index: pypi_index.Index, tmp_path: Path
) -> None:
    requirements = ("six; sys_platform == 'win32'", "pyparsing; sys_platform == 'linux'")
    for subdir, expected in (("win-64", ["six==1.17.0"]), ("linux-64", ["pyparsing==3.3.3"])):
        vpkg = f"subdirs:\n  {subdir}:\n    packages: {{}}\n"
        packages = pypi_merge.resolve(
            job(index, *requirements),
            CondaPart(
                target="t", subdir=subdir, lock_text=conda_lock_text().replace(SUBDIR, subdir), virtual_packages=vpkg
            ),
            PipRun(work=tmp_path / subdir),
        )
        assert [f"{p.name}=={p.version}" for p in packages] == expected


@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("ENVSPEC_NETWORK_TESTS"), reason="reaches pypi.org: set ENVSPEC_NETWORK_TESTS=1")
def test_exclude_newer_dates_pypi_and_keeps_condas_stand_ins(tmp_path: Path) -> None:
    """`envspec lock --exclude-newer`: uv drops what pypi.org says was uploaded later (accelerate 1.7.0
    was the newest on 2025-06-01), while conda's torch and numpy stay (the stand-ins carry an upload
    time before any cutoff; without it uv dropped them and fell back to accelerate 0.0.1, which needs
    nothing)."""
    real = pypi.PipJob(("accelerate",), frozenset(), pypi.pip_index({}), frozenset({"pytorch"}), "2025-06-01T00:00:00Z")
    packages = pypi_merge.resolve(
        real,
        CondaPart(target="linux-cuda", subdir=SUBDIR, lock_text=conda_lock_text(), virtual_packages=VPKG),
        PipRun(work=tmp_path / "work", cache=tmp_path / "uv-cache"),
    )
    assert [f"{p.name}=={p.version}" for p in packages] == ["accelerate==1.7.0"]


# ---------------------------------------------------------------------------------------------
# No build before consent (#21): a build backend runs only for a project pip_allow_sdist names,
# and only when no wheel of it fits
# ---------------------------------------------------------------------------------------------


def _sdist(markers: Path, name: str, version: str, *requires: str) -> pypi_index.Project:
    """An sdist whose metadata only its build backend can tell; the backend writes ``markers/NAME-VERSION``."""
    marker = str(markers / f"{name}-{version}")
    return pypi_index.Project(name, version, requires=requires, sdist_only=True, build_marker=marker)


@pytest.fixture
def sdists(tmp_path: Path) -> Iterator[tuple[pypi_index.Index, Path]]:
    markers = tmp_path / "markers"
    markers.mkdir()
    projects = [
        pypi_index.Project("envspec-helper", "0.2"),
        _sdist(markers, "envspec-good", "1.0", "envspec-helper"),  # allowed, no wheel
        _sdist(markers, "envspec-good-too", "1.0"),  # allowed, no wheel
        _sdist(markers, "envspec-evil", "1.0"),  # not allowed, no wheel
        pypi_index.Project("envspec-mixed", "1.0"),  # a wheel, and a newer release only as an sdist
        _sdist(markers, "envspec-mixed", "1.1"),
    ]
    with pypi_index.serve(tmp_path / "idx", projects) as served:
        yield served, markers


def _finish(
    idx: pypi_index.Index, tmp_path: Path, requirements: tuple[str, ...], allow: set[str],
    verified: set[tuple[str, str]] | None = None, limits: LockLimits | None = None,
) -> str:  # fmt: skip
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    job = pypi.PipJob(requirements, frozenset(allow), pypi.pip_index({"pypi": idx.url}), frozenset({"pytorch"}))
    _, _, pip_txt = pypi.finish(
        job,
        CondaPart(
            target="linux-cuda",
            subdir=SUBDIR,
            lock_text=conda_lock_text(),
            explicit_text="@EXPLICIT\n",
            virtual_packages=VPKG,
            input_hash="sha256:x",
        ),
        PipRun(work=work, verified=verified, limits=limits or LockLimits()),
    )
    return pip_txt


def test_the_build_backend_of_a_project_nobody_allowed_never_runs(
    sdists: tuple[pypi_index.Index, Path], tmp_path: Path
) -> None:
    """pip_allow_sdist: [envspec-good] used to drop --no-build for every project, so envspec-evil's
    backend ran (uv asks it for the metadata) before the refusal. Now it never runs: exit 4, naming
    it and the fix."""
    idx, markers = sdists
    with pytest.raises(UnsatisfiableError) as info:
        _finish(idx, tmp_path, ("envspec-good", "envspec-evil"), {"envspec-good"})
    line = info.value.one_line()
    assert info.value.exit_code == ExitCode.UNSATISFIABLE and "\n" not in line
    assert "envspec-evil" in line and "pip_allow_sdist: [envspec-evil]" in line, line
    assert not (markers / "envspec-evil-1.0").exists()


def test_an_allowed_project_is_built_only_when_no_wheel_of_it_fits(
    sdists: tuple[pypi_index.Index, Path], tmp_path: Path
) -> None:
    """envspec-mixed is allowed too, but its 1.0 wheel fits: that is locked and nothing of it is built
    (before, uv built 1.1's metadata and took the sdist). envspec-good and envspec-good-too have no
    wheel: they alone are built (uv names one per run; each run lets through what it named)."""
    idx, markers = sdists
    allow = {"envspec-good", "envspec-good-too", "envspec-mixed"}
    pip_txt = _finish(idx, tmp_path, ("envspec-good", "envspec-good-too", "envspec-mixed"), allow)
    pins = [line.split(" ")[0] for line in pip_txt.splitlines() if line and not line.startswith("#")]
    assert pins == ["envspec-good==1.0", "envspec-good-too==1.0", "envspec-helper==0.2", "envspec-mixed==1.0"]
    assert sorted(p.name for p in markers.iterdir()) == ["envspec-good-1.0", "envspec-good-too-1.0"]


# ---------------------------------------------------------------------------------------------
# Bounded at lock time (#21): uv's memory, whatever the index serves
# ---------------------------------------------------------------------------------------------


def _inflating_wheel(folder: Path, mib: int) -> str:
    """``envspec-bigmeta`` 1.0: a ~0.3 MB wheel whose METADATA inflates to ``mib`` MiB, and no PEP 658
    file beside it, so uv reads (and inflates) the METADATA out of the wheel. Written in chunks."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    name = "envspec_bigmeta-1.0-py3-none-any.whl"
    info = "envspec_bigmeta-1.0.dist-info"
    chunk = (b"x" * 1023 + b"\n") * 1024
    with zipfile.ZipFile(folder / name, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open(f"{info}/METADATA", "w") as meta:
            meta.write(b"Metadata-Version: 2.1\nName: envspec-bigmeta\nVersion: 1.0\n\n")
            for _ in range(mib):
                meta.write(chunk)
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return name


@pytest.mark.skipif(sys.platform != "linux", reason="uv's memory is capped on Linux (prlimit)")
def test_uvs_memory_is_capped_whatever_the_index_serves(tmp_path: Path) -> None:
    """A wheel whose METADATA inflates to 100 MiB made uv take 168-185 MiB (uv 0.13.10), and a larger
    one more, without end. uv's data is capped at ENVSPEC_LOCK_MEMORY: here 256 MiB, which the same
    lock of an ordinary package stays far below, and the big METADATA fails it in one line, exit 6."""
    _inflating_wheel(tmp_path / "idx" / "files", 100)
    limits = LockLimits(memory_bytes=256 << 20, timeout_s=120)  # a uv that hung at the cap would end at 120 s
    with pypi_index.serve(tmp_path / "idx", [pypi_index.Project("envspec-helper", "0.2")]) as idx:

        def lock(requirement: str, work: str) -> list[str]:
            packages = pypi_merge.resolve(
                job(idx, requirement),
                CondaPart(target="linux-cuda", subdir=SUBDIR, lock_text=conda_lock_text(), virtual_packages=VPKG),
                PipRun(work=tmp_path / work, limits=limits),
            )
            return [f"{p.name}=={p.version}" for p in packages]

        assert lock("envspec-helper", "ok") == ["envspec-helper==0.2"]
        with pytest.raises(ToolFailed) as info:
            lock("envspec-bigmeta", "big")
    line = info.value.one_line()
    assert info.value.exit_code == ExitCode.TOOL_FAILED and "\n" not in line
    assert "uv ran out of the 256 MiB it may use (ENVSPEC_LOCK_MEMORY)" in line and idx.url in line, line


def test_a_bad_memory_limit_is_one_line_naming_it() -> None:
    from envspec.errors import SpecError

    for value in ("lots", "1e309", "-1", "0"):
        with pytest.raises(SpecError, match=f"ENVSPEC_LOCK_MEMORY={value!r} is not a positive number"):
            Settings.from_environ({"ENVSPEC_LOCK_MEMORY": value}).lock_limits()
    memory = Settings.from_environ({"ENVSPEC_LOCK_MEMORY": "3e9"}).lock_limits().memory_bytes
    assert Settings().lock_limits().memory_bytes == 1 << 30 and memory == 3e9


# ---------------------------------------------------------------------------------------------
# Verify what is pinned (#21): the bytes the index serves, not the hash it lists
# ---------------------------------------------------------------------------------------------


def test_an_index_listing_a_wrong_sha256_fails_the_lock_naming_the_file_and_the_index(tmp_path: Path) -> None:
    """uv pins the #sha256= the page lists (with PEP 658 metadata it never downloads the wheel): the
    lock wrote a pin no install could meet. Now every pinned file is downloaded and hashed: exit 7."""
    projects = [pypi_index.Project("envspec-demo", "1.0", requires=("envspec-helper",)),
                pypi_index.Project("envspec-helper", "0.2")]  # fmt: skip
    with pypi_index.serve(tmp_path / "idx", projects) as idx:
        wheel = idx.file("envspec_helper-0.2-py3-none-any.whl")
        wheel.write_bytes(wheel.read_bytes() + b"\0")  # not what the page's #sha256= says
        with pytest.raises(IntegrityError) as info:
            _finish(idx, tmp_path, ("envspec-demo",), set())
    line = info.value.one_line()
    assert info.value.exit_code == ExitCode.INTEGRITY and "\n" not in line
    assert f"the PyPI index {idx.url} lists sha256" in line and "envspec_helper-0.2-py3-none-any.whl" in line, line
    assert "nothing was written" in line
    assert {r for r in idx.requests if r.startswith("/files/") and r.endswith(".whl")} == {
        "/files/envspec_demo-1.0-py3-none-any.whl", "/files/envspec_helper-0.2-py3-none-any.whl"}  # fmt: skip
    assert not list((tmp_path / "work").iterdir())  # the downloads are gone


def test_what_the_lock_pins_is_what_the_index_serves(tmp_path: Path) -> None:
    """The same index, untampered: each pinned file was fetched once and matched its pin; a second
    target of the same run fetches only what the first one did not check."""
    projects = [pypi_index.Project("envspec-demo", "1.0", requires=("envspec-helper",)),
                pypi_index.Project("envspec-helper", "0.2"), pypi_index.Project("envspec-other", "1.0")]  # fmt: skip
    verified: set[tuple[str, str]] = set()
    with pypi_index.serve(tmp_path / "idx", projects) as idx:
        pip_txt = _finish(idx, tmp_path, ("envspec-demo",), set(), verified)
        fetched = [r for r in idx.requests if r.startswith("/files/") and r.endswith(".whl")]
        assert sorted(fetched) == [
            "/files/envspec_demo-1.0-py3-none-any.whl",
            "/files/envspec_helper-0.2-py3-none-any.whl",
        ]
        assert "envspec-helper==0.2 --hash=sha256:" in pip_txt and len(verified) == 2
        idx.requests.clear()
        _finish(idx, tmp_path, ("envspec-demo", "envspec-other"), set(), verified)
        assert [r for r in idx.requests if r.startswith("/files/") and r.endswith(".whl")] == [
            "/files/envspec_other-1.0-py3-none-any.whl"]  # fmt: skip


def test_the_pin_check_is_bounded_by_the_package_size_cap(tmp_path: Path) -> None:
    """The lock's downloads go through the one downloader: ENVSPEC_MAX_PACKAGE_BYTES caps them too."""
    limits = LockLimits(fetch=FetchLimits(max_package_bytes=100))
    cap = r"envspec_helper-0.2-py3-none-any.whl from the PyPI index .* larger than the 100 byte cap"
    served = pypi_index.serve(tmp_path / "idx", [pypi_index.Project("envspec-helper", "0.2")])
    with served as idx, pytest.raises(ToolFailed, match=cap + r" \(ENVSPEC_MAX_PACKAGE_BYTES"):
        _finish(idx, tmp_path, ("envspec-helper",), set(), limits=limits)
