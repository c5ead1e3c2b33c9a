"""PyPI packages (#12), the pure parts: spec, rendering, index/credentials, the conda-lock inputs,
the checks of its result, ``<t>.pip.txt``, staleness, diff, the install plan and the report."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from envspec.errors import ExitCode, IntegrityError, SpecError, ToolFailed, UnsatisfiableError
from envspec.install import pip as install_pip
from envspec.lock import pypi, pypi_mapping, pypi_merge, pypi_resolve
from envspec.lock.condalock import PipPackage, read_pip_packages
from envspec.lock.plan import LockInput, Stored, staleness
from envspec.spec.load import parse_spec

SPEC = Path(__file__).resolve().parents[2] / "envspec.yml"
SHA_A, SHA_B = "a" * 64, "b" * 64


def spec_with(extra_top: str = "", target_pip: str = "") -> str:
    """The shipped spec without its own top-level ``pip:`` section, plus the test's."""
    text = re.sub(r"^pip:\n(?:  - .*\n)+", "", SPEC.read_text(encoding="utf-8"), count=1, flags=re.MULTILINE)
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
    from envspec.spec.load import load_spec

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
    assert index.child_env() == {"UV_INDEX_ENVSPEC_PYPI_USERNAME": "me", "UV_INDEX_ENVSPEC_PYPI_PASSWORD": "p@ss"}
    assert index.secrets() == ["p@ss"]
    assert pypi.pip_index({"pypi": "https://TOKEN123@mirror.example/simple"}).secrets() == ["TOKEN123"]
    with pytest.raises(SpecError):
        pypi.pip_index({"pypi": "s3://bucket/simple"})


def test_scrub_and_redact() -> None:
    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "https://u:hunter22@h/simple"}))
    assert pypi.scrub(job, "GET https://u:hunter22@h/x failed") == "GET https://u:***@h/x failed"
    assert pypi.redact("https://u:p@h:8080/simple") == "https://h:8080/simple"
    assert (
        pypi_resolve._redact_urls("see http://u:p@h/a and https://t0ken@k/b")
        == "see http://u:***@h/a and https://***@k/b"
    )
    with pytest.raises(ToolFailed, match="credentials"):
        pypi.check_no_secrets(job, "url: https://u:hunter22@h/x.whl")


# --- conda-lock inputs ---------------------------------------------------------------------------


class _Target:
    name, subdir = "t", "linux-64"
    channels = ("conda-forge",)
    dependencies = ("python=3.12", "pytorch=*=cuda*", "pillow>=10")
    pip = ("torch>=2", "Pillow", "envspec-demo==1.0")
    pip_allow_sdist = ("Envspec_Src",)


def test_conda_lock_gets_the_environment_file_without_its_pip_section(tmp_path: Path) -> None:
    """conda-lock solves the conda part only: its own PyPI solver never sees a pip requirement."""
    env_text = "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.12\n  - pip\n  - pip:\n      - torch>=2\n"
    data = yaml.safe_load(pypi.lock_environment_text(env_text))
    assert data["dependencies"] == ["python=3.12", "pip"] and "pip-repositories" not in data
    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({"pypi": "http://u:pw@127.0.0.1:1/simple"}))
    argv: list[str] = ["lock"]
    env: dict[str, str] = {}
    path = pypi.prepare(job, env_file=tmp_path / "environment-t.yml", env_bytes=env_text.encode(), argv=argv,
                        env=env, scratch=tmp_path)  # fmt: skip
    assert path.name.startswith(".environment-t.yml.envspec-tmp-") and "pw" not in path.read_text()
    assert argv == ["lock"] and env == {}  # neither the index nor its credentials reach conda-lock


def test_the_shipped_mapping_is_the_maintained_one_with_provenance() -> None:
    text = pypi_mapping.MAPPING_FILE.read_text(encoding="utf-8")
    mapping = pypi_mapping.parse(text)
    assert len(mapping) > 10_000  # the maintained table, not a hand seed of 41
    assert mapping["pytorch"] == ("torch",) and mapping["matplotlib-base"] == ("matplotlib",)
    assert mapping["nvidia-ml-py"] == ("nvidia-ml-py",) and pypi.conda_names_of_pypi()["torch"] == "pytorch"
    provenance = json.loads(pypi_mapping.PROVENANCE_FILE.read_text(encoding="utf-8"))
    assert provenance["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert provenance["conda_names"] == str(len(mapping)) and len(provenance["source_sha256"]) == 64
    assert provenance["source"] and provenance["generated"]


def test_refresh_reads_parselmouth_and_grayskull_and_writes_a_small_sorted_file() -> None:
    parselmouth = {"pytorch": ["torch"], "libpng": None, "msgpack-python": ["msgpack"], "numpy": ["numpy"]}
    grayskull = {
        "torch": {"pypi_name": "torch", "conda_name": "pytorch"},
        "Msgpack": {"pypi_name": "msgpack", "conda_name": "msgpack-python"},
        "numpy": {"pypi_name": "numpy", "conda_name": "numpy"},
    }
    expected = {"pytorch": ("torch",), "msgpack-python": ("msgpack",), "numpy": ("numpy",)}
    for source in (parselmouth, grayskull):
        text = pypi_mapping.render(pypi_mapping.from_source(source))
        assert pypi_mapping.parse(text) == expected
        assert json.loads(text)["same"] == ["numpy"]
    with pytest.raises(ValueError):
        pypi_mapping.from_source({})
    with pytest.raises(ValueError, match="format"):
        pypi_mapping.parse('{"format": 99}')


@pytest.mark.parametrize(
    ("subdir", "vpkgs", "platform", "env"),
    [
        ("linux-64", {"__glibc": "2.28"}, "x86_64-manylinux_2_28", {}),
        ("linux-64", {"__glibc": "2.30"}, "x86_64-manylinux_2_28", {}),  # uv knows 2_28, then 2_31
        ("linux-64", {"__glibc": "2.35"}, "x86_64-manylinux_2_35", {}),
        ("linux-64", {}, "x86_64-manylinux_2_17", {}),
        ("linux-aarch64", {"__glibc": "2.17"}, "aarch64-manylinux_2_17", {}),
        ("osx-arm64", {"__osx": "14.0"}, "aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
        ("osx-64", {"__osx": "13.0"}, "x86_64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "13.0"}),
        ("win-64", {"__cuda": "12.8"}, "x86_64-pc-windows-msvc", {}),
    ],
)
def test_uv_platform_comes_from_the_targets_virtual_packages(
    subdir: str, vpkgs: dict[str, str], platform: str, env: dict[str, str]
) -> None:
    got = pypi_resolve.platform_for(subdir, vpkgs, "3.12.11")
    assert (got.python_platform, dict(got.env), got.python_version) == (platform, env, "3.12.11")
    assert got.markers["python_version"] == "3.12"


def test_no_wheel_platform_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="manylinux_2_17"):
        pypi_resolve.platform_for("linux-64", {"__glibc": "2.12"}, "3.12.0")
    with pytest.raises(SpecError, match="linux-ppc64le"):
        pypi_resolve.platform_for("linux-ppc64le", {}, "3.12.0")
    vp = "subdirs:\n  osx-arm64:\n    packages:\n      __osx: '14.0'\n      __archspec: 1 m1\n"
    assert pypi_resolve.virtual_packages(vp, "osx-arm64") == {"__osx": "14.0", "__archspec": "1"}


def test_what_the_conda_solution_provides_becomes_stand_ins() -> None:
    records = [
        pypi_resolve.CondaRecord("python", "3.12.11", "h_cpython", False),
        pypi_resolve.CondaRecord("pytorch", "2.7.1", "cuda129_mkl_py312_h_304", True),
        pypi_resolve.CondaRecord("matplotlib-base", "3.10.5", "py312h_0", True),
        pypi_resolve.CondaRecord("envspec-unmapped", "1.0", "py_0", True),  # not mapped, needs python: own name
        pypi_resolve.CondaRecord("libpng", "1.6.50", "h_0", False),  # not mapped, no python: nothing
        pypi_resolve.CondaRecord("pyparsing", "3.3.3.conda_1", "py_0", True),  # no PEP 440 version
    ]
    standins, unversioned = pypi_resolve.provided(records, pypi_mapping.conda_to_pypi())
    assert [(p.pypi, p.version, p.conda.name) for p in standins] == [
        ("envspec-unmapped", "1.0", "envspec-unmapped"),
        ("matplotlib", "3.10.5", "matplotlib-base"),
        ("torch", "2.7.1", "pytorch"),
    ]
    assert [r.name for r in unversioned] == ["pyparsing"]
    assert standins[2].describe() == "conda package pytorch 2.7.1 (cuda129_mkl_py312_h_304)"


def test_a_stand_in_wheel_is_metadata_only(tmp_path: Path) -> None:
    import zipfile

    filename, data = pypi_resolve.standin_wheel("torch", "2.7.1", "stand-in for conda package pytorch")
    assert filename == "torch-2.7.1-py3-none-any.whl"
    path = tmp_path / filename
    path.write_bytes(data)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == [f"torch-2.7.1.dist-info/{n}" for n in ("METADATA", "RECORD", "WHEEL")]
        metadata = zf.read("torch-2.7.1.dist-info/METADATA").decode()
    assert "Name: torch\nVersion: 2.7.1\n" in metadata and "Requires-Dist" not in metadata
    import urllib.error
    import urllib.request

    standin = pypi_resolve.Provided("torch", "2.7.1", pypi_resolve.CondaRecord("pytorch", "2.7.1", "b"))
    with pypi_resolve.serve_standins([standin]) as url:  # from memory, on 127.0.0.1
        with urllib.request.urlopen(f"{url}/torch/", timeout=10) as response:
            assert response.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"  # PEP 691
            page = json.loads(response.read())
        (entry,) = page["files"]
        href, digest = entry["url"], entry["hashes"]["sha256"]
        with urllib.request.urlopen(url.removesuffix("/simple") + href, timeout=10) as response:
            assert hashlib.sha256(response.read()).hexdigest() == digest
        with urllib.request.urlopen(url.removesuffix("/simple") + href + ".metadata", timeout=10) as response:
            metadata_bytes = response.read()
            assert "Name: torch\nVersion: 2.7.1\n" in metadata_bytes.decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/numpy/", timeout=10)
    assert entry["filename"] == "torch-2.7.1-py3-none-any.whl" and page["versions"] == ["2.7.1"]
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata_bytes).hexdigest()}  # PEP 658/714
    # PEP 700: an upload time before any --exclude-newer cutoff (without one, uv drops every stand-in)
    assert entry["upload-time"] == "1970-01-01T00:00:00Z"


def _request(**kw: object) -> pypi_resolve.Request:
    base: dict[str, object] = {
        "requirements": ("accelerate",), "index_url": "https://m.example/simple",
        "index_env": {"UV_INDEX_ENVSPEC_PYPI_PASSWORD": "s3cret"}, "allow_sdist": frozenset(),
        "platform": pypi_resolve.platform_for("osx-arm64", {"__osx": "14.0"}, "3.12.11"), "standins": (),
    }  # fmt: skip
    base.update(kw)
    return pypi_resolve.Request(**base)  # type: ignore[arg-type]


def test_the_uv_command_puts_the_stand_ins_first_and_no_credential_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = pypi_resolve.uv_command(_request(), tmp_path, "file:///s/simple")
    assert cmd[1:3] == ["pip", "compile"] and "--no-build" in cmd and "--generate-hashes" in cmd
    assert cmd[cmd.index("--index") + 1] == "envspec-conda=file:///s/simple"
    assert cmd[cmd.index("--default-index") + 1] == "envspec-pypi=https://m.example/simple"
    assert cmd[cmd.index("--index-strategy") + 1] == "first-index"
    assert cmd[cmd.index("--python-platform") + 1] == "aarch64-apple-darwin"
    assert "s3cret" not in " ".join(cmd)
    # pip_allow_sdist alone builds nothing: --no-build until uv says an allowed project has no wheel,
    # then --only-binary :all: with exactly that project let through
    assert "--no-build" in pypi_resolve.uv_command(_request(allow_sdist=frozenset({"x", "y"})), tmp_path, "file:///s")
    built = pypi_resolve.uv_command(
        _request(allow_sdist=frozenset({"x", "y"})), tmp_path, "file:///s", frozenset({"x"})
    )
    assert "--no-build" not in built and " ".join(built).endswith("--only-binary :all: --no-binary x")
    upgrade = pypi_resolve.uv_command(_request(upgrade=("envspec-demo",)), tmp_path, "file:///s")
    assert upgrade[upgrade.index("--upgrade-package") + 1] == "envspec-demo"
    assert "--exclude-newer" not in cmd
    dated = pypi_resolve.uv_command(_request(exclude_newer="2025-06-01T00:00:00Z"), tmp_path, "file:///s")
    assert dated[dated.index("--exclude-newer") + 1] == "2025-06-01T00:00:00Z"  # `envspec lock --exclude-newer`
    monkeypatch.setenv("UV_INDEX_URL", "https://elsewhere.example/simple")
    monkeypatch.setenv("PIP_INDEX_URL", "https://elsewhere.example/simple")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # how hard uv tries the network passes on, nothing else
    env = pypi_resolve.uv_environment(_request(), tmp_path)
    assert "UV_INDEX_URL" not in env and "PIP_INDEX_URL" not in env and env["UV_NO_CONFIG"] == "1"
    assert env["UV_HTTP_RETRIES"] == "0"
    assert env["MACOSX_DEPLOYMENT_TARGET"] == "14.0" and env["UV_INDEX_ENVSPEC_PYPI_PASSWORD"] == "s3cret"
    monkeypatch.setenv("NO_PROXY", "corp.example")
    assert pypi_resolve.uv_environment(_request(), tmp_path)["NO_PROXY"] == "corp.example,127.0.0.1,localhost"


PYLOCK = """lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.12"

[[packages]]
name = "Accelerate"
version = "1.9.0"
wheels = [{{ url = "https://f.example/accelerate-1.9.0-py3-none-any.whl", hashes = {{ sha256 = "AB{}" }} }}]

[[packages]]
name = "torch"
version = "2.7.1"
wheels = [{{ url = "http://127.0.0.1:1/files/torch-2.7.1-py3-none-any.whl", hashes = {{ sha256 = "{}" }} }}]

[[packages]]
name = "pywin32"
version = "311"
marker = "sys_platform == 'win32'"
wheels = [{{ url = "https://f.example/pywin32-311-cp312-cp312-win_amd64.whl", hashes = {{ sha256 = "{}" }} }}]
""".format("a" * 62, "b" * 64, "c" * 64)


def test_uvs_pylock_is_read_stand_ins_dropped_and_nothing_else_dropped_silently() -> None:
    resolved = pypi_resolve.parse_pylock(PYLOCK)
    assert next((r.name, r.version, r.sha256) for r in resolved) == ("accelerate", "1.9.0", "ab" + "a" * 62)
    torch = pypi_resolve.Provided("torch", "2.7.1", pypi_resolve.CondaRecord("pytorch", "2.7.1", "b"))
    request = _request(standins=(torch,), platform=pypi_resolve.platform_for("win-64", {}, "3.12.11"))
    standins = "http://127.0.0.1:1/files/"
    assert [p.name for p in pypi_merge.chosen(resolved, request, "t", standins)] == ["accelerate", "pywin32"]
    linux = _request(standins=(torch,), platform=pypi_resolve.platform_for("linux-64", {}, "3.12.11"))
    with pytest.raises(ToolFailed, match="pywin32 311 with marker"):
        pypi_merge.chosen(resolved, linux, "t", standins)
    again = pypi_resolve.parse_pylock(pypi_resolve.pylock_text(resolved))
    assert [(r.name, r.version, r.url, r.sha256) for r in again] == [
        (r.name, r.version, r.url, r.sha256) for r in resolved
    ]
    with pytest.raises(ToolFailed, match="no file of x 1"):
        pypi_resolve.parse_pylock('[[packages]]\nname = "x"\nversion = "1"\n')


def test_of_the_wheels_uv_lists_the_one_the_target_installs_is_locked() -> None:
    """uv's pylock lists every compatible wheel (wcwidth 0.9.5 on PyPI: cp310-abi3 and py3-none-any);
    the lock takes the one pip on the target would, by the target's tags."""
    files = ("wcwidth-0.9.5-py3-none-any.whl",
             "wcwidth-0.9.5-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
             "wcwidth-0.9.5-cp310-abi3-win_amd64.whl", "wcwidth-0.9.5-cp310-abi3-macosx_11_0_arm64.whl")  # fmt: skip
    wheels = ", ".join(
        f'{{ url = "https://f.example/{f}", hashes = {{ sha256 = "{i}" }} }}' for i, f in enumerate(files)
    )
    text = f'[[packages]]\nname = "wcwidth"\nversion = "0.9.5"\nwheels = [{wheels}]\n'
    expected = {
        ("linux-64", "2.28"): files[1],
        ("win-64", ""): files[2],
        ("osx-arm64", "14.0"): files[3],
        ("osx-64", "13.0"): files[0],  # no x86-64 Mac wheel: the pure one
    }
    for (subdir, version), wheel in expected.items():
        vp = {"__glibc": version} if subdir.startswith("linux") else {"__osx": version} if version else {}
        platform = pypi_resolve.platform_for(subdir, vp, "3.12.11")
        (got,) = pypi_resolve.parse_pylock(text, platform)
        assert got.url.endswith(wheel), (subdir, got.url)
    old_glibc = pypi_resolve.platform_for("linux-64", {"__glibc": "2.17"}, "3.12.11").wheel_platforms()
    assert "manylinux_2_17_x86_64" in old_glibc and "manylinux_2_28_x86_64" not in old_glibc


def test_pip_lines_of_the_explicit_file_are_conda_locks_form() -> None:
    packages = [PipPackage("envspec-demo", "1.1", "http://i/f/envspec_demo-1.1-py3-none-any.whl", SHA_A)]
    text = pypi_merge.merge_explicit("# header\n@EXPLICIT\nhttps://c/x-1-0.conda#" + "0" * 32 + "\n", packages)
    assert text.endswith(f"\n# pip envspec-demo @ http://i/f/envspec_demo-1.1-py3-none-any.whl#sha256={SHA_A}\n")
    assert pypi_merge.merge_explicit(text, packages) == text  # idempotent: old pip lines replaced


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


#: uv 0.13's own explanation of `accelerate` + `torchvision>=0.24` on top of conda's pytorch 2.7.1
#: (recorded from a real run against pypi.org with a stand-in for torch, 2026-12-07; abridged).
UV_CONFLICT = """error: No solution found when resolving dependencies
  cause: Because torchvision==0.24.0 depends on torch==2.9.0 and torchvision==0.24.1 depends on torch==2.9.1, we can conclude that torchvision>=0.24.0,<=0.24.1 depends on one of:
             torch==2.9.0
             torch==2.9.1

         And because only torch==2.7.1 is available, we can conclude that torchvision>=0.24.0,<=0.24.1 cannot be used.
         And because torchvision==0.29.0 depends on torch==2.14.0 and torchvision>=0.29.1 depends on torch>=2.14.0, we can conclude that torchvision>=0.24.0 depends on torch>=2.14.0.
         And because only torch==2.7.1 is available and you require torchvision>=0.24, we can conclude that your requirements are unsatisfiable.

hint: `torch` was found on file:///tmp/x/idx, but not at the requested version
"""  # noqa: E501
UV_SDIST = """error: No solution found when resolving dependencies:
  cause: Because envspec-src==1.0 has no usable wheels and you require envspec-src, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `envspec-src` because building from source is disabled for all packages (i.e., with `--no-build`)
"""  # noqa: E501


def test_the_projects_uv_says_need_a_build_are_read_from_its_hint_or_its_explanation() -> None:
    """What decides a second uv run letting exactly those projects be built (if pip_allow_sdist names them)."""
    assert pypi_resolve.needs_build(UV_SDIST) == {"envspec-src"}
    no_hint = UV_SDIST.split("\nhint:", 1)[0].replace("envspec-src", "Envspec_Src")
    assert pypi_resolve.needs_build(no_hint) == {"envspec-src"}
    assert pypi_resolve.needs_build(UV_CONFLICT) == set()


def test_uvs_conflict_becomes_one_line_naming_the_chain_and_the_conda_package() -> None:
    torch = pypi_resolve.Provided("torch", "2.7.1", pypi_resolve.CondaRecord("pytorch", "2.7.1", "cuda129_mkl_h_304"))
    line = pypi_resolve.explain(UV_CONFLICT, [torch])
    assert "\n" not in line
    assert line.startswith("torchvision==0.24.0 depends on torch==2.9.0; torchvision==0.24.1 depends on torch==2.9.1")
    assert "conda provides torch 2.7.1 (conda package pytorch 2.7.1 (cuda129_mkl_h_304))" in line
    assert line.endswith("you require torchvision>=0.24")
    err = pypi_resolve.classify(UV_CONFLICT, target="t", subdir="linux-64", index_url="i", standins=[torch],
                                scrub=str)  # fmt: skip
    assert isinstance(err, UnsatisfiableError) and "cannot be met on top of its conda packages" in err.message


def test_uv_failures_map_to_envspecs_exit_codes() -> None:
    sdist = pypi_resolve.classify(UV_SDIST, target="t", subdir="linux-64", index_url="i", standins=[], scrub=str)
    assert isinstance(sdist, UnsatisfiableError) and "only a source distribution" in sdist.message
    assert "pip_allow_sdist: [envspec-src]" in (sdist.tip or "")
    down = "error: Failed to fetch: `http://u:pw@127.0.0.1:9/simple/x/`\n  Caused by: error sending request\n"
    err = pypi_resolve.classify(down, target="t", subdir="linux-64", index_url="http://127.0.0.1:9/simple",
                                standins=[], scrub=lambda s: s.replace("pw", "***"))  # fmt: skip
    assert err.exit_code == ExitCode.CHANNEL_UNREACHABLE and "pw" not in err.one_line()
    other = pypi_resolve.classify(
        "error: something odd\n", target="t", subdir="s", index_url="i", standins=[], scrub=str
    )
    assert isinstance(other, ToolFailed) and "something odd" in other.message


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


def test_doctor_needs_a_compiler_only_for_allowed_sdists() -> None:
    from envspec.doctor.tools import needs_compiler

    spec = parse_spec(spec_with("", "['envspec-demo']"), SPEC)
    assert needs_compiler(spec.resolve("linux-cuda")) is None
    spec = parse_spec(spec_with("pip_allow_sdist: [envspec-demo]\n", "['envspec-demo']"), SPEC)
    why = needs_compiler(spec.resolve("linux-cuda"))
    assert why is not None and "envspec-demo" in why and "compiler" in why


def test_the_resolver_version_is_an_input_of_the_hash_and_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envspec.lock import stamp

    job = pypi.PipJob(("x",), frozenset(), pypi.pip_index({}))
    assert dict(pypi.hash_components(job))["resolver"].startswith("uv 0.")
    (tmp_path / "lockfiles").mkdir()
    (tmp_path / "envspec.yml").write_text("x: 1\n")
    before = stamp.digest(tmp_path, tmp_path / "envspec.yml", [], {})
    monkeypatch.setattr(stamp, "resolver_version", lambda: "uv 99.0.0")
    assert stamp.digest(tmp_path, tmp_path / "envspec.yml", [], {}) != before


def test_pin_verification_sends_the_index_credentials_to_the_index_host_only() -> None:
    """The lock downloads every pinned file (envspec.lock.pypi_verify): a private index's credentials
    go to that index's host, never to where its pages point elsewhere (PyPI's files host, a CDN)."""
    import base64

    from envspec.lock import pypi_verify

    index = pypi.pip_index({"pypi": "https://me:s3cret@mirror.example/pypi/simple"})
    headers = pypi_verify._headers_for(index)
    token = base64.b64encode(b"me:s3cret").decode()
    assert headers("https://mirror.example/pypi/files/a-1.0-py3-none-any.whl") == {"Authorization": f"Basic {token}"}
    assert headers("https://files.example/a-1.0-py3-none-any.whl") == {}
    assert headers("https://mirror.example:8443/files/a-1.0-py3-none-any.whl") == {}
    assert pypi_verify._headers_for(pypi.pip_index({}))("https://pypi.org/simple/a/") == {}
