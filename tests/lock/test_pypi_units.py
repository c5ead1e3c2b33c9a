"""PyPI packages (#12), the pure parts: spec, rendering, index/credentials, the conda-lock inputs,
the checks of its result, ``<t>.pip.txt``, staleness, diff, the install plan and the report."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from envspec.errors import ExitCode, IntegrityError, SpecError, ToolFailed, UnsatisfiableError
from envspec.install import pip as install_pip
from envspec.lock import pypi
from envspec.lock.condalock import PipPackage, read_pip_packages
from envspec.lock.plan import LockInput, Stored, staleness
from envspec.spec.model import parse_spec

SPEC = Path(__file__).resolve().parents[2] / "envspec.yml"
SHA_A, SHA_B = "a" * 64, "b" * 64


def spec_with(extra_top: str = "", target_pip: str = "") -> str:
    text = SPEC.read_text(encoding="utf-8")
    if target_pip:
        text = text.replace("    runner: ubuntu-latest\n", f"    runner: ubuntu-latest\n    pip: {target_pip}\n")
    return text.replace("targets:\n", f"{extra_top}targets:\n", 1)


# --- spec --------------------------------------------------------------------------------------


def test_common_and_target_pip_and_sdist_allowance_resolve() -> None:
    spec = parse_spec(
        spec_with(
            "pip: ['rich>=13; python_version >= \"3.10\"']\npip_allow_sdist: [My_Pkg]\n", "['envspec-demo==1.0']"
        ),
        SPEC,
    )
    linux = spec.resolve("linux-cuda")
    assert linux.pip == ('rich>=13; python_version >= "3.10"', "envspec-demo==1.0")
    assert linux.pip_allow_sdist == ("my-pkg",)
    assert spec.resolve("osx-64").pip == ('rich>=13; python_version >= "3.10"',)


@pytest.mark.parametrize(
    ("top", "target", "pattern"),
    [
        ("", "['envspec-demo===']", r"targets\.linux-cuda\.pip\.0: invalid pip requirement"),
        ("", "['demo @ https://x.example/demo.whl']", r"targets\.linux-cuda\.pip\.0: .*direct reference"),
        ("pip: [rich]\n", "['Rich>=1']", r"pip package 'rich' is given twice"),
        ("pip_allow_sdist: ['not a name!']\n", "", r"pip_allow_sdist\.0: 'not a name!' is not a PyPI project name"),
        ("pip: ['ok; bogus_marker == 1']\n", "", r"pip\.0: invalid pip requirement"),
    ],
)
def test_bad_pip_input_is_one_located_line(top: str, target: str, pattern: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_with(top, target), SPEC)
    line = info.value.one_line()
    assert "\n" not in line and info.value.exit_code == ExitCode.SPEC_INVALID
    assert re.search(pattern, line), line
    assert re.match(r"^.*envspec\.yml:\d+: ", line), line  # file:line


def test_rendered_environment_file_has_a_pip_section(project_copy: Path) -> None:
    from envspec.project import Project
    from envspec.render.files import apply, plan_render

    spec_path = project_copy / "envspec.yml"
    spec_path.write_text(spec_with("", "['envspec-demo==1.0', 'winonly; sys_platform == \"win32\"']"))
    from envspec.spec.model import load_spec

    project = Project(project_copy)
    apply(project, plan_render(load_spec(spec_path), project))
    env = yaml.safe_load((project_copy / "environment-linux-cuda.yml").read_text(encoding="utf-8"))
    assert "pip" in env["dependencies"]
    assert {"pip": ["envspec-demo==1.0", 'winonly; sys_platform == "win32"']} in env["dependencies"]
    other = yaml.safe_load((project_copy / "environment-osx-64.yml").read_text(encoding="utf-8"))
    assert not any(isinstance(d, dict) for d in other["dependencies"])


# --- index and credentials ---------------------------------------------------------------------


def test_default_index_is_pypi_and_a_mirror_keeps_credentials_out_of_files() -> None:
    assert pypi.pip_index({}).url == "https://pypi.org/simple"
    index = pypi.pip_index({"pypi": "https://me:p%40ss@mirror.example/simple/"})
    assert index.url == "https://mirror.example/simple"
    assert (index.username, index.password) == ("me", "p@ss")
    assert index.conda_lock_url() == "https://$ENVSPEC_PYPI_USERNAME:$ENVSPEC_PYPI_PASSWORD@mirror.example/simple"
    assert index.child_env() == {"ENVSPEC_PYPI_USERNAME": "me", "ENVSPEC_PYPI_PASSWORD": "p@ss"}
    assert index.secrets() == ["p@ss"]
    assert pypi.pip_index({"pypi": "https://TOKEN123@mirror.example/simple"}).secrets() == ["TOKEN123"]
    with pytest.raises(SpecError):
        pypi.pip_index({"pypi": "s3://bucket/simple"})


def test_scrub_and_redact() -> None:
    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "https://u:hunter22@h/simple"}))
    assert pypi.scrub(job, "GET https://u:hunter22@h/x failed") == "GET https://u:***@h/x failed"
    assert pypi.redact("https://u:p@h:8080/simple") == "https://h:8080/simple"
    assert pypi.redact_urls("see http://u:p@h/a and https://t0ken@k/b") == "see http://u:***@h/a and https://***@k/b"
    with pytest.raises(ToolFailed, match="credentials"):
        pypi.check_no_secrets(job, "url: https://u:hunter22@h/x.whl")


# --- conda-lock inputs ---------------------------------------------------------------------------


class _Target:
    name, subdir = "t", "linux-64"
    channels = ("conda-forge",)
    dependencies = ("python=3.12", "pytorch=*=cuda*", "pillow>=10")
    pip = ("torch>=2", "Pillow", "envspec-demo==1.0")
    pip_allow_sdist = ("Envspec_Src",)


def test_requirements_a_spec_conda_package_provides_stay_away_from_the_pypi_solver() -> None:
    job = pypi.make_pip_job(_Target(), {})
    assert job is not None and job.allow_sdist == frozenset({"envspec-src"})
    to_pip, provided = job.split()
    assert to_pip == ("envspec-demo==1.0",)
    assert provided == (("torch>=2", "pytorch"), ("Pillow", "pillow"))
    env_text = "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.12\n  - pip\n  - pip:\n      - torch>=2\n"
    data = yaml.safe_load(pypi.lock_environment_text(env_text, job.index, to_pip))
    assert data["dependencies"] == ["python=3.12", "pip", {"pip": ["envspec-demo==1.0"]}]
    assert data["pip-repositories"] == ["https://pypi.org/simple"] and data["allow-pypi-requests"] is False
    # only provided requirements: no pip section at all
    data = yaml.safe_load(pypi.lock_environment_text(env_text, job.index, ()))
    assert data["dependencies"] == ["python=3.12", "pip"]


def test_conda_lock_flags_and_child_environment(tmp_path: Path) -> None:
    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "http://u:pw@127.0.0.1:1/simple"}))
    argv: list[str] = ["lock"]
    env: dict[str, str] = {}
    env_file = tmp_path / "environment-t.yml"
    path = pypi.prepare(job, env_file=env_file, env_bytes=b"dependencies: [python, {pip: [x]}]\n", argv=argv, env=env,
                        scratch=tmp_path)  # fmt: skip
    assert path.name.startswith(".environment-t.yml.envspec-tmp-") and "pw" not in path.read_text()
    assert argv == ["lock", "--pypi_to_conda_lookup_file", str(pypi.MAPPING_FILE), "--strip-auth"]
    assert env["ENVSPEC_PYPI_PASSWORD"] == "pw" and env["POETRY_CACHE_DIR"].startswith(str(tmp_path))
    assert env["PYTHON_KEYRING_BACKEND"] == "keyring.backends.null.Keyring"


def test_the_shipped_mapping_is_conda_locks_format_and_maps_torch() -> None:
    data = json.loads(pypi.MAPPING_FILE.read_text(encoding="utf-8"))
    assert all(set(v) == {"pypi_name", "conda_name", "conda_forge"} for v in data.values())
    assert pypi.conda_names_of_pypi()["torch"] == "pytorch"
    provenance = json.loads(pypi.MAPPING_FILE.with_name("pypi_mapping.provenance.json").read_text(encoding="utf-8"))
    assert provenance["entries"] == len(data) and "grayskull_pypi_mapping.json" in provenance["source"]


def test_refresh_keeps_wanted_entries_from_the_source() -> None:
    from envspec.lock.pypi_mapping import select

    source = {
        "torch": {"pypi_name": "torch", "conda_name": "pytorch", "conda_forge": "pytorch"},
        "Msgpack": {"pypi_name": "msgpack", "conda_name": "msgpack-python", "conda_forge": "msgpack-python"},
        "unwanted": {"pypi_name": "unwanted", "conda_name": "unwanted"},
    }
    current = {"local-only": {"pypi_name": "local-only", "conda_name": "lo", "conda_forge": "lo"}}
    mapping, origin = select(source, current, ["pytorch", "msgpack", "local-only", "absent"])
    assert set(mapping) == {"torch", "msgpack", "local-only"}
    assert origin == {"local-only": "kept", "msgpack": "source", "torch": "source"}


def test_input_hash_of_conda_only_targets_is_unchanged_and_pip_targets_hash_the_index() -> None:
    base = LockInput("t", "linux-64", b"env", b"vp", ("c",))
    assert base.components() == {k: v for k, v in base.components().items() if k != "pip"}
    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "https://u:pw@m/simple"}))
    with_pip = LockInput("t", "linux-64", b"env", b"vp", ("c",), pip=pypi.hash_components(job))
    assert with_pip.components()["pip"]["index"] == "https://m/simple"  # type: ignore[index]
    assert "pw" not in json.dumps(with_pip.components())
    rotated = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "https://u:new@m/simple"}))
    assert LockInput("t", "linux-64", b"env", b"vp", ("c",), pip=pypi.hash_components(rotated)).digest() == (
        with_pip.digest()
    )  # rotating a password does not make lockfiles stale
    h = with_pip.digest()
    assert staleness(h, Stored(h, h), pip=True) == ".pip.txt missing or from another lock (an interrupted write?)"
    assert staleness(h, Stored(h, h, pip_hash=h), pip=True) is None
    assert staleness(h, Stored(h, h)) is None


# --- conda-lock's result -------------------------------------------------------------------------


def _pkg(name: str, version: str, manager: str, url: str, **hashes: str) -> dict[str, object]:
    return {"name": name, "version": version, "manager": manager, "platform": "linux-64", "url": url, "hash": hashes}


LOCK = yaml.safe_dump(
    {
        "version": 1,
        "metadata": {},
        "package": [
            _pkg("python", "3.12.12", "conda", "https://c/linux-64/python-3.12.12-h_0.conda", md5="0" * 32),
            _pkg("pytorch", "2.13.0", "conda", "https://c/linux-64/pytorch-2.13.0-cuda129_1.conda", md5="1" * 32),
            _pkg("Envspec_Demo", "1.1", "pip", "http://i/files/envspec_demo-1.1-py3-none-any.whl", sha256=SHA_A),
            _pkg("envspec-src", "1.0", "pip", "http://i/files/envspec_src-1.0.tar.gz", sha256=SHA_B),
        ],
    }
)


def test_pip_packages_are_read_with_their_sha256_and_sdists_refused_unless_allowed() -> None:
    pkgs = read_pip_packages(LOCK, "x", "linux-64")
    assert [(p.name, p.version, p.sha256, p.is_sdist, p.tag) for p in pkgs] == [
        ("envspec-demo", "1.1", SHA_A, False, "py3-none-any"),
        ("envspec-src", "1.0", SHA_B, True, "sdist"),
    ]
    refuse = pypi.PipJob(("envspec-demo",), frozenset(), pypi.pip_index({}))
    with pytest.raises(UnsatisfiableError, match=r"no wheel fits this target for envspec-src 1\.0") as info:
        pypi.check_locked("t", pkgs, refuse)
    assert "pip_allow_sdist: [envspec-src]" in (info.value.tip or "")
    pypi.check_locked("t", pkgs, pypi.PipJob(("envspec-demo",), frozenset({"envspec-src"}), pypi.pip_index({})))
    unhashed = [PipPackage("x", "1", "http://i/x-1-py3-none-any.whl", None)]
    with pytest.raises(ToolFailed, match="no sha256"):
        pypi.check_locked("t", unhashed, refuse)


def test_a_provided_requirement_must_be_met_by_the_conda_version() -> None:
    ok = pypi.PipJob(
        ("torch>=2", "torch<1; sys_platform == 'win32'"), frozenset(), pypi.pip_index({}), frozenset({"pytorch"})
    )
    pypi.check_provided("t", "linux-64", ok, LOCK)  # the win32-only requirement does not apply
    bad = pypi.PipJob(("torch>=3",), frozenset(), pypi.pip_index({}), frozenset({"pytorch"}))
    with pytest.raises(UnsatisfiableError) as info:
        pypi.check_provided("t", "linux-64", bad, LOCK)
    assert "'torch>=3' is provided by conda package pytorch 2.13.0, which does not satisfy it" in info.value.message
    assert info.value.exit_code == ExitCode.UNSATISFIABLE


def test_poetry_conflicts_become_one_line() -> None:
    output = (
        "Traceback (most recent call last):\n  File x\n"
        "conda_lock._vendor.poetry.puzzle.exceptions.SolverProblemError: Because envspec-old-numpy (1.0) depends on "
        "numpy (<2)\n and _dummy_package_ depends on envspec-old-numpy (*), numpy is required.\n"
        "So, because no versions of numpy match <2, version solving failed.\n"
    )
    message = pypi.conflict_message(output)
    assert message is not None and "\n" not in message
    assert message.startswith("Because envspec-old-numpy (1.0) depends on numpy (<2)") and "the spec" in message
    assert pypi.conflict_message("some other failure") is None


def test_pip_txt_round_trip_and_its_hash_header(tmp_path: Path) -> None:
    pkgs = read_pip_packages(LOCK, "x", "linux-64")
    text = pypi.render_pip_txt(target="t", subdir="linux-64", input_hash="sha256:" + "c" * 64, index=pypi.pip_index({}),
                               packages=pkgs)  # fmt: skip
    assert f"envspec-demo==1.1 --hash=sha256:{SHA_A}\n" in text and "--require-hashes" in text
    path = pypi.pip_file(tmp_path / "t.lock")
    assert path.name == "t.pip.txt"
    pypi.commit(path, text)
    assert pypi.stored_hash(path) == "sha256:" + "c" * 64
    assert [(p.name, p.sha256) for p in pypi.read_pins(text, "t.pip.txt")] == [
        ("envspec-demo", SHA_A),
        ("envspec-src", SHA_B),
    ]
    pypi.commit(path, None)
    assert not path.exists()
    with pytest.raises(SpecError, match=r"t\.pip\.txt:1: not 'NAME==VERSION"):
        pypi.read_pins("foo>=1\n", "t.pip.txt")


def test_diff_lists_pypi_packages() -> None:
    from envspec.lock.diff import diff_packages

    before = pypi.diff_entries(LOCK, "a")
    after = pypi.diff_entries(LOCK.replace("1.1", "1.2"), "b")
    (change,) = [c for c in diff_packages(before, after) if c.kind == "changed"]
    assert change.name == "envspec-demo (pypi)" and change.after == ("1.2", "py3-none-any")


# --- install ---------------------------------------------------------------------------------------


def _lock_text(sha: str = SHA_A) -> str:
    return f"# platform: linux-64\n@EXPLICIT\nhttps://c/linux-64/x-1-0.conda#{'0' * 32}\n# pip envspec-demo @ http://i/f/envspec_demo-1.1-py3-none-any.whl#sha256={sha}\n"


def test_install_plan_reads_both_files_and_refuses_disagreement(tmp_path: Path) -> None:
    lock = tmp_path / "t.lock"
    assert install_pip.plan_pip("@EXPLICIT\n", lock, "lockfiles/t.lock", {}) is None
    with pytest.raises(SpecError, match=r"t\.pip\.txt does not exist"):
        install_pip.plan_pip(_lock_text(), lock, "lockfiles/t.lock", {})
    (tmp_path / "t.pip.txt").write_text(f"# x\nEnvspec_Demo==1.1 --hash=sha256:{SHA_A}\n")
    plan = install_pip.plan_pip(_lock_text(), lock, "lockfiles/t.lock", {"pypi": "http://u:pw@i/simple"})
    assert plan is not None and plan.wheels[0].filename == "envspec_demo-1.1-py3-none-any.whl"
    assert plan.auth == ("i", "u", "pw")
    with pytest.raises(IntegrityError, match="different sha256"):
        install_pip.plan_pip(_lock_text(SHA_B), lock, "lockfiles/t.lock", {})
    (tmp_path / "t.pip.txt").write_text(f"other==1 --hash=sha256:{SHA_A}\n")
    with pytest.raises(IntegrityError, match="disagree"):
        install_pip.plan_pip(_lock_text(), lock, "lockfiles/t.lock", {})


def test_a_tampered_file_is_refused_before_pip_runs(tmp_path: Path) -> None:
    served = tmp_path / "envspec_demo-1.1-py3-none-any.whl"
    served.write_bytes(b"not what was locked")
    wheel = install_pip.PipWheel("envspec-demo", "1.1", served.as_uri(), SHA_A)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="do not match the lockfile hash") as info:
        install_pip.fetch(install_pip.PipPlan((wheel,), "t.pip.txt"), dest, lambda _: None)
    assert info.value.exit_code == ExitCode.INTEGRITY and not any(dest.iterdir())


def test_pip_runs_without_index_resolution_or_outside_writes(tmp_path: Path) -> None:
    cmd = install_pip.pip_command(Path("/s/bin/python"), Path("/s"), tmp_path, tmp_path / "r.txt", sdists=False)
    for flag in ("--no-deps", "--require-hashes", "--no-index", "--isolated", "--ignore-installed"):
        assert flag in cmd
    assert cmd[cmd.index("--prefix") + 1] == "/s" and "--no-build-isolation" not in cmd
    assert "--no-build-isolation" in install_pip.pip_command(
        Path("p"), Path("s"), tmp_path, tmp_path / "r", sdists=True
    )


@pytest.mark.skipif(os.name == "nt", reason="POSIX scripts")
def test_staging_shebangs_are_rewritten_for_the_final_prefix(tmp_path: Path) -> None:
    staging, final = tmp_path / ".env.staging-1", tmp_path / "env"
    (staging / "bin").mkdir(parents=True)
    script = staging / "bin" / "demo"
    script.write_text(f"#!{staging}/bin/python\nimport x\n")
    script.chmod(0o755)
    other = staging / "bin" / "python"
    other.write_bytes(b"\x7fELF binary naming " + str(staging).encode())
    assert install_pip.fix_shebangs(staging, final, since=0) == 1
    assert script.read_text() == f"#!{final}/bin/python\nimport x\n" and os.access(script, os.X_OK)
    assert str(staging).encode() in other.read_bytes()  # not a script: untouched


def test_doctor_needs_a_compiler_only_for_allowed_sdists() -> None:
    from envspec.doctor.tools import needs_compiler

    spec = parse_spec(spec_with("", "['envspec-demo']"), SPEC)
    assert needs_compiler(spec.resolve("linux-cuda")) is None
    spec = parse_spec(spec_with("pip_allow_sdist: [envspec-demo]\n", "['envspec-demo']"), SPEC)
    why = needs_compiler(spec.resolve("linux-cuda"))
    assert why is not None and "envspec-demo" in why and "compiler" in why


def test_nothing_is_installed_twice_from_pypi_beside_conda() -> None:
    """A pip package conda already provides (by the shipped mapping), or PyPI torch's CUDA runtime
    beside conda's pytorch, would be a second copy: refused with the names (exit 4)."""
    wheel = "http://i/{}-1-py3-none-any.whl"
    ok = [PipPackage("envspec-demo", "1", wheel.format("envspec_demo"), "a" * 64)]
    pypi.check_not_twice("t", ok, frozenset({"python", "pytorch", "pillow"}))
    twice = [*ok, PipPackage("torch", "2.13.0", wheel.format("torch"), "b" * 64)]
    with pytest.raises(UnsatisfiableError) as err:
        pypi.check_not_twice("t", twice, frozenset({"python", "pytorch"}))
    assert "would install torch from PyPI beside the conda packages" in err.value.message
    assert err.value.exit_code == ExitCode.UNSATISFIABLE
    cuda = [*ok, PipPackage("nvidia-cudnn-cu12", "9", wheel.format("nvidia_cudnn_cu12"), "c" * 64)]
    with pytest.raises(UnsatisfiableError, match="nvidia-cudnn-cu12"):
        pypi.check_not_twice("t", cuda, frozenset({"python", "pytorch"}))
    pypi.check_not_twice("t", cuda, frozenset({"python"}))  # no conda torch: PyPI's runtime is the only one
    pillow = [PipPackage("pillow", "11", wheel.format("pillow"), "d" * 64)]
    with pytest.raises(UnsatisfiableError, match="pillow"):
        pypi.check_not_twice("t", pillow, frozenset({"pillow"}))
