"""install/plan.py pinned down: exact results of the small helpers and of the whole plan, and every
refusal with its message and exit code (written against `nox -s mutants` survivors)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from envspec.errors import ExitCode, PlatformMismatch, SpecError
from envspec.install.plan import (
    Destination,
    ExplicitLock,
    LockEntry,
    LockInput,
    add_conda_lock_hashes,
    check_platform,
    destination,
    envs_dir,
    mirror_prefixes,
    mirrored_explicit_text,
    mirrored_url,
    parse_lock,
    plan_install,
    state_json,
    tool_command,
)


@dataclass(frozen=True)
class Target:
    """What the install plan reads of a target (a ResolvedTarget has more)."""

    name: str
    subdir: str
    variables: dict[str, str]


CF = "https://conda.anaconda.org/conda-forge"
MD5 = "00112233445566778899aabbccddeeff"
SHA = "0a" * 32
PY = f"{CF}/linux-64/python-3.11.9-h1_0_cpython.conda"
TQDM = f"{CF}/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2"
LOCK = f"# platform: linux-64\n@EXPLICIT\n{PY}#{MD5}\n{TQDM}#sha256:{SHA}\n"
CONDA_LOCK = f"""\
version: 1
package:
- {{name: python, version: 3.11.9, manager: conda, platform: linux-64, url: "{PY}",
   hash: {{md5: {MD5}, sha256: {SHA}}}}}
- {{name: tqdm, version: 4.67.1, manager: conda, platform: linux-64, url: "{TQDM}", hash: {{md5: {MD5}}}}}
"""

# ------------------------------------------------------------------------------- where


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"CONDA_ENVS_PATH": r"D:\envs;C:\other"}, r"D:\envs"),  # Windows: ';'-separated
        ({"CONDA_ENVS_PATH": r";C:\envs;D:\x"}, r"C:\envs"),  # empty entries skipped
        ({"CONDA_ENVS_PATH": "/a:/b"}, "/a"),
        ({"CONDA_ENVS_PATH": ":/b"}, "/b"),
        ({"CONDA_ENVS_PATH": "/only"}, "/only"),
        ({"CONDA_ENVS_PATH": "", "MAMBA_ROOT_PREFIX": "/mamba"}, "/mamba/envs"),
        ({"CONDA_ENVS_PATH": "/c", "MAMBA_ROOT_PREFIX": "/mamba"}, "/c"),
        ({"MAMBA_ROOT_PREFIX": ""}, "HOME/.conda/envs"),
        ({}, "HOME/.conda/envs"),
    ],
)
def test_envs_dir(environ: dict[str, str], expected: str) -> None:
    assert envs_dir(environ, Path("HOME")) == Path(expected)


def test_destination_by_name_and_prefix(tmp_path: Path) -> None:
    assert destination(None, "sd", {"CONDA_ENVS_PATH": "/e"}, tmp_path) == Destination(Path("/e/sd"), "sd")
    assert destination("/abs/env", None, {}, tmp_path) == Destination(Path("/abs/env"), None)


@pytest.mark.parametrize(
    ("prefix", "name", "message"),
    [
        (None, None, "give exactly one of --prefix PATH or --name NAME"),
        ("/p", "n", "give exactly one of --prefix PATH or --name NAME"),
        (None, "", "--name '' is not an environment name (use --prefix for a path)"),
        (None, "a/b", "--name 'a/b' is not an environment name (use --prefix for a path)"),
        (None, "a\\b", "--name 'a\\\\b' is not an environment name (use --prefix for a path)"),
        (None, ".", "--name '.' is not an environment name (use --prefix for a path)"),
        (None, "..", "--name '..' is not an environment name (use --prefix for a path)"),
    ],
)
def test_destination_refusals(prefix: str | None, name: str | None, message: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        destination(prefix, name, {}, tmp_path)
    assert err.value.message == message and err.value.exit_code == ExitCode.SPEC_INVALID


def test_tool_commands_exactly() -> None:
    p, f = Path("/env"), Path("/x.lock")
    assert tool_command("micromamba", "mm", p, f) == ["mm", "create", "--yes", "--prefix", "/env", "-f", "/x.lock"]
    assert tool_command("mamba", "m", p, f) == ["m", "create", "--yes", "--prefix", "/env", "--file", "/x.lock"]
    with pytest.raises(ValueError, match=r"^rattler runs in-process, not as a command$"):
        tool_command("rattler", "r", p, f)


# ------------------------------------------------------------------------------- the lockfile


def test_lock_entry_properties() -> None:
    e = LockEntry(url=f"{CF}/linux-64/cuda-version-12.9-h4f385c5_3.conda", md5=MD5, sha256=SHA)
    assert (e.filename, e.stem, e.name, e.channel) == (
        "cuda-version-12.9-h4f385c5_3.conda",
        "cuda-version-12.9-h4f385c5_3",
        "cuda-version",
        CF,
    )
    assert list(e.hashes.items()) == [("sha256", SHA), ("md5", MD5)]  # strongest first
    assert LockEntry(url=TQDM).stem == "tqdm-4.67.1-pyhd8ed1ab_0"
    assert LockEntry(url=f"{CF}/x/a%2Bb-1-0.conda").filename == "a+b-1-0.conda"
    assert LockEntry(url=f"{CF}/x/weird.zip").stem == "weird.zip"  # neither .conda nor .tar.bz2: kept whole
    assert LockEntry(url="u", md5=MD5).hashes == {"md5": MD5}


def test_parse_lock_exactly() -> None:
    assert parse_lock(LOCK, "t.lock") == ExplicitLock(
        "linux-64", (LockEntry(url=PY, md5=MD5), LockEntry(url=TQDM, sha256=SHA))
    )
    bare64 = f"# platform: linux-64\n@EXPLICIT\n{PY}#{SHA}\n"
    assert parse_lock(bare64, "t.lock").entries == (LockEntry(url=PY, sha256=SHA),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("@EXPLICIT\n" + f"{PY}#{MD5}\n", "t.lock: no '# platform: <subdir>' line, so its platform cannot be checked"),
        ("# platform: linux-64\n@EXPLICIT\n", "t.lock: lists no packages"),
        (
            f"# platform: linux-64\n@EXPLICIT\n{PY}#{MD5}\n{PY}#{MD5}\n",
            "t.lock: package 'python' is listed twice (python-3.11.9-h1_0_cpython.conda)",
        ),
        (f"# platform: linux-64\n@EXPLICIT\n{PY}#sha256:{MD5}\n", f"t.lock: {PY} has a malformed sha256 '{MD5}'"),
        (f"# platform: linux-64\n@EXPLICIT\n{PY}#{MD5}0\n", f"t.lock: {PY} has a malformed md5 '{MD5}0'"),
    ],
)
def test_parse_lock_refusals(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_lock(text, "t.lock")
    assert err.value.message == message and err.value.exit_code == 3
    if "malformed" not in message and "twice" not in message:
        assert err.value.tip == "regenerate it with `envspec lock`"


def test_conda_lock_hashes_merged_exactly() -> None:
    merged = add_conda_lock_hashes(parse_lock(LOCK, "t.lock"), CONDA_LOCK, "t.conda-lock.yml")
    assert merged == ExplicitLock("linux-64", (LockEntry(PY, MD5, SHA), LockEntry(TQDM, MD5, SHA)))
    foreign = CONDA_LOCK.replace("linux-64, url", "osx-64, url")  # other platform: nothing to merge
    assert add_conda_lock_hashes(parse_lock(LOCK, "t.lock"), foreign, "s").entries == parse_lock(LOCK, "t.lock").entries


def test_conda_lock_disagreement_message() -> None:
    bad = CONDA_LOCK.replace(f"sha256: {SHA}", f"sha256: {'ff' * 32}")
    lock = parse_lock(f"# platform: linux-64\n@EXPLICIT\n{PY}#sha256:{SHA}\n", "t.lock")
    with pytest.raises(SpecError) as err:
        add_conda_lock_hashes(lock, bad, "t.conda-lock.yml")
    assert err.value.message == (
        "t.conda-lock.yml and the explicit lockfile disagree on python-3.11.9-h1_0_cpython.conda (sha256)"
    )
    assert err.value.tip == "re-lock: `envspec lock --target <target>` writes both files together"


def test_check_platform_messages() -> None:
    lock = ExplicitLock("linux-64", ())
    check_platform(lock, "t.lock", "t", "linux-64", "linux-64")
    with pytest.raises(PlatformMismatch) as err:
        check_platform(lock, "t.lock", "t", "osx-64", "osx-64")
    assert err.value.message == "t.lock is for platform linux-64, but target 't' is osx-64"
    assert err.value.tip == "regenerate it with `envspec lock --target t`"
    with pytest.raises(PlatformMismatch) as err:
        check_platform(lock, "t.lock", "t", "linux-64", "win-64")
    assert err.value.message == "t.lock is for platform linux-64, but this machine is win-64"
    assert (
        err.value.tip == "install the target made for win-64 (see `envspec targets`), or run this on a linux-64 machine"
    )
    assert err.value.exit_code == 9


def test_an_invalid_conda_lock_file_is_named() -> None:
    with pytest.raises(SpecError, match=r"^t\.conda-lock\.yml: not a conda-lock\.yml: no 'package' list$"):
        add_conda_lock_hashes(parse_lock(LOCK, "t.lock"), "version: 1\n", "t.conda-lock.yml")


def test_plan_install_refusals_name_the_file_and_target() -> None:
    with pytest.raises(PlatformMismatch) as err:
        plan_install(
            Target("t", "osx-64", {}),
            LockInput(LOCK, "l.lock"),
            host="osx-64",
            destination=Destination(Path("/e")),
            mirrors={},
        )
    assert err.value.message == "l.lock is for platform linux-64, but target 't' is osx-64"
    assert err.value.tip == "regenerate it with `envspec lock --target t`"


# ------------------------------------------------------------------------------- mirrors and state


def test_mirror_prefixes_and_urls() -> None:
    prefixes = mirror_prefixes({"conda-forge": "file:///m/", "https://x.org/ch/": "https://y.org/ch"})
    assert prefixes == {f"{CF}/": "file:///m/", "https://x.org/ch/": "https://y.org/ch/"}
    assert mirrored_url(PY, prefixes) == "file:///m/linux-64/python-3.11.9-h1_0_cpython.conda"
    assert mirrored_url("https://other/a.conda", prefixes) == "https://other/a.conda"
    assert mirror_prefixes({"https://a/chX": "file:///mX"}) == {"https://a/chX/": "file:///mX/"}


def test_mirrored_explicit_text_exactly() -> None:
    text = f"# platform: linux-64\n@EXPLICIT\n{PY}#{MD5}\n  {TQDM}  #x\n"
    assert mirrored_explicit_text(text, {PY: "file:///m/py.conda", TQDM: "file:///m/t.tar.bz2"}) == (
        f"# platform: linux-64\n@EXPLICIT\nfile:///m/py.conda#{MD5}\nfile:///m/t.tar.bz2#x\n"
    )


def test_state_json_exactly() -> None:
    assert state_json(None, {"B": "2", "A": "1"}) == '{\n  "env_vars": {\n    "A": "1",\n    "B": "2"\n  }\n}\n'
    kept = json.loads(state_json({"env_vars": {"A": "0", "C": "3"}, "x": 1}, {"A": "1"}))
    assert kept == {"env_vars": {"A": "1", "C": "3"}, "x": 1}
    assert json.loads(state_json({"env_vars": "junk"}, {"A": "1"})) == {"env_vars": {"A": "1"}}
    assert state_json({"z": 1, "a": 2}, {}) == '{\n  "a": 2,\n  "env_vars": {},\n  "z": 1\n}\n'


# ------------------------------------------------------------------------------- the whole plan


def test_plan_install_exactly() -> None:
    dest = Destination(Path("/env"))
    plan = plan_install(
        Target("linux-cuda", "linux-64", {"X": "1"}),
        LockInput(LOCK, "lockfiles/linux-cuda.lock", (CONDA_LOCK, "lockfiles/linux-cuda.conda-lock.yml")),
        host="linux-64",
        destination=dest,
        mirrors={"conda-forge": "file:///m"},
        tool="micromamba",
    )
    assert plan.target == "linux-cuda" and plan.source == "lockfiles/linux-cuda.lock"
    assert plan.prefix == Path("/env") and plan.destination == dest
    assert plan.lock.entries == (LockEntry(PY, MD5, SHA), LockEntry(TQDM, MD5, SHA))
    assert plan.urls == (
        "file:///m/linux-64/python-3.11.9-h1_0_cpython.conda",
        "file:///m/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2",
    )
    assert plan.variables == {"X": "1"} and plan.tool == "micromamba"
    assert plan.tool_lock_text == (
        f"# platform: linux-64\n@EXPLICIT\nfile:///m/linux-64/python-3.11.9-h1_0_cpython.conda#{MD5}\n"
        f"file:///m/noarch/tqdm-4.67.1-pyhd8ed1ab_0.tar.bz2#sha256:{SHA}\n"
    )
    rattler = plan_install(
        Target("linux-cuda", "linux-64", {}),
        LockInput(LOCK, "l"),
        host="linux-64",
        destination=dest,
        mirrors={},
    )
    assert rattler.tool == "rattler" and rattler.tool_lock_text is None
    assert rattler.urls == (PY, TQDM) and rattler.lock == parse_lock(LOCK, "l")
