"""The committed lockfiles/ against the real records they were solved from.

``tools/lock_real.py`` solves every target of envspec.yml against real conda-forge records and the
real PyPI registry, and vendors exactly the records the lockfiles pin into
``tests/data/locked-records/<subdir>/repodata.json`` (copied unchanged; provenance in
``provenance.json`` there). These tests read both, never write (the checkout's lockfiles/ stay
untouched), and iterate over whatever targets envspec.yml has:

* every target has its lockfiles, and ``envspec lock --check`` finds them fresh with no channel;
* every conda package is a real record: canonical conda-forge URL, sha256 and md5 equal to the
  vendored record, and the records are exactly those the lockfiles pin. A package whose sha256 is
  unknown (a test channel, an unvendored snapshot) fails, and so does a lockfile the lock step
  marked as solved against a test channel (``envspec-solved-from``);
* every ``depends`` and ``constrains`` of every record is met inside the lock plus the target's
  virtual packages (py-rattler's MatchSpec decides);
* a CUDA target carries a CUDA pytorch build with its cuda-version; any other target does not;
* the PyPI part is wheels with sha256 whose tags fit the target, the same in all three files, and
  never a second copy of a conda package (by the shipped PyPI <-> conda name mapping);
* (integration) ``conda-lock render -k explicit`` reproduces each committed ``.lock``;
* (network, opt-in: ``ENVSPEC_NETWORK_TESTS=1``) every URL exists (HTTP HEAD).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging import tags
from packaging.utils import canonicalize_name, parse_wheel_filename

from envspec.cli.main import main
from envspec.lock import explicit, pypi_mapping
from envspec.spec.load import ResolvedTarget, load_spec

REPO = Path(__file__).resolve().parents[2]
LOCKFILES = REPO / "lockfiles"
RECORDS = REPO / "tests" / "data" / "locked-records"
CANONICAL = "https://conda.anaconda.org/conda-forge"
RELOCK = "re-solve with `python tools/lock_real.py PATH/TO/conda-forge-records.tar.gz` (see lockfiles/README.md)"
TARGETS: dict[str, ResolvedTarget] = {t.name: t for t in load_spec(REPO / "envspec.yml").resolve_all()}
#: conda subdir -> (wheel platform family, machine): what a wheel's platform tag must be built for.
WHEEL_PLATFORMS = {
    "linux-64": ("manylinux", "x86_64"),
    "linux-aarch64": ("manylinux", "aarch64"),
    "osx-64": ("macosx", "x86_64"),
    "osx-arm64": ("macosx", "arm64"),
    "win-64": ("win", "amd64"),
}


@functools.cache
def vendored(subdir: str) -> dict[str, dict[str, Any]]:
    """file name -> the vendored record (raw JSON) of one subdir."""
    path = RECORDS / subdir / "repodata.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {**data.get("packages", {}), **data.get("packages.conda", {})}


@functools.cache
def conda_lock(target: str) -> dict[str, Any]:
    path = LOCKFILES / f"{target}.conda-lock.yml"
    if not path.is_file():
        pytest.fail(f"target {target} has no committed {path.relative_to(REPO)}: {RELOCK}")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def conda_packages(target: str) -> list[dict[str, Any]]:
    return [p for p in conda_lock(target)["package"] if p.get("manager", "conda") == "conda"]


def pip_packages(target: str) -> list[dict[str, Any]]:
    return [p for p in conda_lock(target)["package"] if p.get("manager") == "pip"]


def file_of(url: str) -> tuple[str, str]:
    """(subdir, file name) of a conda package URL."""
    subdir, name = url.rsplit("/", 2)[-2:]
    return subdir, name


def records(target: str) -> list[Any]:
    """The locked packages as py-rattler PackageRecords, built from their vendored records."""
    out = []
    for pkg in conda_packages(target):
        subdir, name = file_of(pkg["url"])
        raw = vendored(subdir).get(name)
        assert raw is not None, f"{target}: {pkg['url']} has no vendored record: {RELOCK}"
        out.append(_record(raw))
    return out


def _record(raw: dict[str, Any]) -> Any:
    """A record's name, version, build and its depends/constrains, as py-rattler reads them."""
    from rattler import BuildString, PackageRecord

    return PackageRecord(
        name=raw["name"],
        version=raw["version"],
        build=BuildString(raw["build"]),
        build_number=int(raw["build_number"]),
        subdir=raw["subdir"],
        noarch=raw.get("noarch"),
        depends=list(raw.get("depends", [])),
        constrains=list(raw.get("constrains", [])),
    )


def virtual_records(target: ResolvedTarget) -> list[Any]:
    """The target's virtual packages (``VERSION`` or ``VERSION BUILD``) as records to match against."""
    from rattler import BuildString, PackageRecord

    out = []
    for name, value in target.virtual_packages.items():
        version, _, build = value.partition(" ")
        record = PackageRecord(
            name=name, version=version, build=BuildString(build or "0"), build_number=0, subdir=target.subdir
        )
        out.append(record)
    return out


def by_name(target: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in conda_packages(target)}


def ids(targets: dict[str, ResolvedTarget]) -> list[str]:
    return sorted(targets)


@pytest.fixture(params=ids(TARGETS))
def target(request: pytest.FixtureRequest) -> ResolvedTarget:
    return TARGETS[request.param]


# --- the files and their freshness -----------------------------------------------------------------


def test_every_target_has_its_lockfiles_and_lock_check_passes_without_a_channel(
    target: ResolvedTarget, capsys: pytest.CaptureFixture[str]
) -> None:
    for suffix in (".conda-lock.yml", ".lock", *((".pip.txt",) if target.pip else ())):
        assert (LOCKFILES / f"{target.name}{suffix}").is_file(), f"lockfiles/{target.name}{suffix} missing: {RELOCK}"
    if not target.pip:
        assert not (LOCKFILES / f"{target.name}.pip.txt").exists()
    # no mirror, no network: --check reads the files and their input hashes only
    code = main(["--spec", str(REPO / "envspec.yml"), "lock", "--check", "--target", target.name])
    assert code == 0, capsys.readouterr().err


def test_no_lockfile_was_solved_against_a_test_channel(target: ResolvedTarget) -> None:
    for suffix in (".lock", ".conda-lock.yml", *((".pip.txt",) if target.pip else ())):
        text = (LOCKFILES / f"{target.name}{suffix}").read_text(encoding="utf-8")
        assert explicit.SOLVED_FROM_KEY not in text, (
            f"lockfiles/{target.name}{suffix} was solved against a test channel"
        )


# --- the conda part: real records --------------------------------------------------------------------


def test_every_conda_package_is_a_real_record_with_its_hashes(target: ResolvedTarget) -> None:
    problems = []
    for pkg in conda_packages(target.name):
        url = pkg["url"]
        subdir, name = file_of(url)
        if subdir not in (target.subdir, "noarch") or url != f"{CANONICAL}/{subdir}/{name}":
            problems.append(f"{url}: not the canonical conda-forge URL of a {target.subdir} or noarch package")
            continue
        record = vendored(subdir).get(name)
        if record is None:
            problems.append(f"{url}: not among the real records the lockfiles came from (tests/data/locked-records)")
            continue
        if pkg["hash"].get("sha256") != record["sha256"] or pkg["hash"].get("md5") != record["md5"]:
            problems.append(f"{url}: sha256/md5 differ from the real record's")
        if (pkg["name"], str(pkg["version"])) != (record["name"], record["version"]):
            problems.append(f"{url}: name/version {pkg['name']} {pkg['version']} differ from the record's")
    assert not problems, f"{target.name}: " + "; ".join(problems[:10]) + f" ({len(problems)} in all): {RELOCK}"


def test_the_explicit_file_pins_what_the_conda_lock_file_pins(target: ResolvedTarget) -> None:
    text = (LOCKFILES / f"{target.name}.lock").read_text(encoding="utf-8")
    lines = {(e.url, e.hash) for e in explicit.entries(text)}
    assert lines == {(p["url"], p["hash"]["md5"]) for p in conda_packages(target.name)}
    assert explicit.header_fields(text)[explicit.TARGET_KEY] == target.name


def test_the_vendored_records_are_exactly_those_the_lockfiles_pin() -> None:
    pinned = {file_of(p["url"]) for t in TARGETS for p in conda_packages(t)}
    present = {(path.parent.name, fn) for path in RECORDS.glob("*/repodata.json") for fn in vendored(path.parent.name)}
    assert present == pinned, f"vendored but not pinned: {sorted(present - pinned)[:5]}; {RELOCK}"


def test_the_provenance_names_every_target_and_its_source() -> None:
    provenance = json.loads((RECORDS / "provenance.json").read_text(encoding="utf-8"))
    assert set(provenance["targets"]) == set(TARGETS), RELOCK
    assert provenance["conda"]["source"] and provenance["conda"]["channel"] == CANONICAL
    if "snapshot_sha256" in provenance["conda"]:  # solved from the snapshot (not a relock's --vendor-from)
        assert re.fullmatch(r"[0-9a-f]{64}", provenance["conda"]["snapshot_sha256"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", provenance["locked_at"])
    for name, facts in provenance["targets"].items():
        assert facts["conda_records"] == len(conda_packages(name)) and facts["pypi_wheels"] == len(pip_packages(name))
        assert (
            facts["pytorch"]
            == f"{by_name(name)['pytorch']['version']} "
            + file_of(by_name(name)["pytorch"]["url"])[1]
            .removesuffix(".conda")
            .removesuffix(".tar.bz2")
            .rsplit("-", 1)[1]
        )


def test_every_depends_and_constrains_is_met_inside_the_lock(target: ResolvedTarget) -> None:
    from rattler import MatchSpec

    locked = records(target.name)
    pool: dict[str, list[Any]] = {}
    for record in [*locked, *virtual_records(target)]:
        pool.setdefault(record.name.normalized, []).append(record)
    unmet = []
    for record in locked:
        for dep in record.depends:
            spec = MatchSpec(dep)
            if not any(spec.matches(c) for c in pool.get(spec.name.normalized, [])):
                unmet.append(f"{record.name.normalized} {record.version} depends on {dep!r}")
        for constraint in record.constrains:
            spec = MatchSpec(constraint)
            if not all(spec.matches(c) for c in pool.get(spec.name.normalized, [])):
                unmet.append(f"{record.name.normalized} {record.version} constrains {constraint!r}")
    assert not unmet, f"{target.name}: " + "; ".join(unmet[:10])


def test_cuda_targets_carry_a_cuda_pytorch_and_the_others_do_not(target: ResolvedTarget) -> None:
    from rattler import MatchSpec

    pkgs = by_name(target.name)
    assert "pytorch" in pkgs, f"{target.name}: no pytorch in the lock"
    build = file_of(pkgs["pytorch"]["url"])[1].removesuffix(".conda").removesuffix(".tar.bz2").rsplit("-", 1)[1]
    cuda_deps = [r.name.normalized for r in records(target.name) if any(d.split()[0] == "__cuda" for d in r.depends)]
    if target.accelerator == "cuda":
        assert build.startswith("cuda"), f"{target.name}: pytorch build {build} is not a CUDA build"
        assert "cuda-version" in pkgs and target.cuda_version is not None
        record = _record(vendored(file_of(pkgs["cuda-version"]["url"])[0])[file_of(pkgs["cuda-version"]["url"])[1]])
        assert MatchSpec(f"cuda-version {target.cuda_version}.*").matches(record), pkgs["cuda-version"]["version"]
        assert "pytorch" in cuda_deps
    else:
        assert not build.startswith("cuda") and "cuda" not in build, f"{target.name}: pytorch build {build}"
        assert not cuda_deps, f"{target.name} ({target.accelerator}) has packages that need __cuda: {cuda_deps}"


# --- the PyPI part -----------------------------------------------------------------------------------


def target_tags(target: ResolvedTarget) -> set[tags.Tag]:
    """The wheel tags the target's locked python accepts on the target's platform."""
    python = by_name(target.name)["python"]
    major, minor = (int(x) for x in str(python["version"]).split(".")[:2])
    family, machine = WHEEL_PLATFORMS[target.subdir]
    if family == "manylinux":
        glibc = int(target.virtual_packages["__glibc"].split()[0].split(".")[1])
        platforms = [f"manylinux_2_{m}_{machine}" for m in range(glibc, 4, -1)]
        platforms += [
            f"{alias}_{machine}"
            for alias, m in (("manylinux2014", 17), ("manylinux2010", 12), ("manylinux1", 5))
            if glibc >= m
        ]
        platforms.append(f"linux_{machine}")
    elif family == "macosx":
        osx = tuple(int(x) for x in target.virtual_packages["__osx"].split()[0].split(".")[:2])
        platforms = list(tags.mac_platforms((osx[0], osx[1]), machine))
    else:
        platforms = [f"win_{machine}"]
    interpreter = f"cp{major}{minor}"
    return {
        *tags.cpython_tags((major, minor), platforms=platforms),
        *tags.compatible_tags((major, minor), interpreter, platforms),
    }


def test_the_pypi_part_is_hashed_wheels_whose_tags_fit_the_target(target: ResolvedTarget) -> None:
    wheels = pip_packages(target.name)
    if not target.pip:
        assert not wheels
        return
    assert wheels, f"{target.name} asks for PyPI packages but its lock has none"
    fit = target_tags(target)
    for pkg in wheels:
        name = pkg["url"].rsplit("/", 1)[-1].split("#", 1)[0]
        assert name.endswith(".whl"), f"{target.name}: {pkg['url']} is not a wheel"
        assert re.fullmatch(r"[0-9a-f]{64}", pkg["hash"].get("sha256", "")), pkg
        project, version, _, wheel_tags = parse_wheel_filename(name)
        assert canonicalize_name(pkg["name"]) == project and str(version) == str(pkg["version"]), name
        assert wheel_tags & fit, f"{target.name}: {name} fits none of the target's tags"


def test_the_pypi_part_is_the_same_in_all_three_files(target: ResolvedTarget) -> None:
    if not target.pip:
        return
    wheels = {(canonicalize_name(p["name"]), str(p["version"]), p["hash"]["sha256"]) for p in pip_packages(target.name)}
    pip_txt = (LOCKFILES / f"{target.name}.pip.txt").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Za-z0-9._-]+)==(\S+) --hash=sha256:([0-9a-f]{64})$", pip_txt, re.MULTILINE))
    assert {(canonicalize_name(n), v, h) for n, v, h in listed} == wheels
    lock = (LOCKFILES / f"{target.name}.lock").read_text(encoding="utf-8")
    lines = set(re.findall(r"^# pip (\S+) @ (\S+)#sha256=([0-9a-f]{64})$", lock, re.MULTILINE))
    assert {(canonicalize_name(n), h) for n, _, h in lines} == {(n, h) for n, _, h in wheels}
    assert {u for _, u, _ in lines} == {p["url"].split("#", 1)[0] for p in pip_packages(target.name)}


def conda_names_of_pypi() -> dict[str, str]:
    """PyPI project -> conda package name, read by the shipped mapping's own reader (one reader per format)."""
    out = pypi_mapping.pypi_to_conda()
    assert out.get("torch") == "pytorch", "the shipped mapping must map torch to pytorch"
    return out


def test_the_pypi_part_never_installs_a_conda_package_a_second_time(target: ResolvedTarget) -> None:
    mapping = conda_names_of_pypi()
    conda = set(by_name(target.name))
    twice = []
    for pkg in pip_packages(target.name):
        project = str(canonicalize_name(pkg["name"]))
        if mapping.get(project, project) in conda:
            twice.append(f"{project} (conda: {mapping.get(project, project)})")
    assert not twice, f"{target.name}: the PyPI part installs again what conda installs: {twice}"


# --- conda-lock reads them as we do -------------------------------------------------------------------


@pytest.mark.integration
def test_conda_lock_render_reproduces_each_committed_explicit_file(target: ResolvedTarget, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "conda_lock",
            "render",
            "--kind",
            "explicit",
            "--filename-template",
            str(tmp_path / "rendered-{platform}"),
            str(LOCKFILES / f"{target.name}.conda-lock.yml"),
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    rendered = (tmp_path / f"rendered-{target.subdir}").read_text(encoding="utf-8")
    committed = (LOCKFILES / f"{target.name}.lock").read_text(encoding="utf-8")

    def body(text: str) -> list[str]:
        lines = text.splitlines()
        return [line for line in lines[lines.index("@EXPLICIT") :] if line.strip()]

    assert body(rendered) == body(committed)


# --- opt-in: every URL exists (for the relock workflow and maintainers) ------------------------------


def _urls() -> list[str]:
    urls = []
    for name in TARGETS:
        if (LOCKFILES / f"{name}.conda-lock.yml").is_file():
            urls += [p["url"].split("#", 1)[0] for p in conda_lock(name)["package"]]
    return sorted(set(urls))


@pytest.mark.integration
@pytest.mark.network
@pytest.mark.skipif(not os.environ.get("ENVSPEC_NETWORK_TESTS"), reason="reaches the channels: ENVSPEC_NETWORK_TESTS=1")
def test_every_locked_url_exists() -> None:
    missing = []
    for url in _urls():
        request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "envspec-lockfile-check"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                if response.status != 200:
                    missing.append(f"{url} ({response.status})")
        except (urllib.error.URLError, TimeoutError) as exc:
            missing.append(f"{url} ({exc})")
    assert not missing, f"{len(missing)} locked URL(s) do not exist: " + "; ".join(missing[:10])
