"""Solver-level truth on REAL conda-forge records: what py-rattler picks for torch-only targets.

The channel is ``tests/data/conda-forge`` (a subset of the shared snapshot of real conda-forge
repodata; provenance in its README.md), copied to a ``file://`` channel in a temporary folder and
solved in-process with ``rattler.solve``, the targets' virtual packages given as
``GenericVirtualPackage``: no conda-lock, no envspec code. ``targets.json`` beside the data holds
the torch-only specs per target (envspec.yml's virtual packages, specs the snapshot can satisfy)
and the builds they must give; the lock tests and the lock benchmark read the same file.

Specs are passed as parsed ``MatchSpec`` objects: ``rattler.solve`` parses plain strings strictly
and rejects ``pytorch=*=cuda*``, the form envspec.yml uses.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).resolve().parents[1] / "data" / "conda-forge"
REPO = Path(__file__).resolve().parents[2]
SUBDIRS = ("linux-64", "osx-64", "osx-arm64", "win-64", "noarch")
TARGETS: dict[str, Any] = json.loads((DATA / "targets.json").read_text(encoding="utf-8"))
CUDA_TARGETS = ("linux-cuda", "win-cuda")
TORCH_NAMES = ("pytorch", "libtorch", "pytorch-gpu", "pytorch-cpu")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalChannel:
    root: Path
    gateway: Any  # one py-rattler Gateway for the module: it keeps the parsed repodata between solves


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    """The vendored subset as a local channel (only the repodata, nothing else of the folder)."""
    from rattler import Gateway

    root = tmp_path_factory.mktemp("cf") / "conda-forge"
    for subdir in SUBDIRS:
        (root / subdir).mkdir(parents=True)
        shutil.copy2(DATA / subdir / "repodata.json", root / subdir / "repodata.json")
    return LocalChannel(root, Gateway(cache_dir=root.parent / "rattler-cache"))


def virtual_packages(target: str, **changes: str | None) -> dict[str, str]:
    """The target's virtual packages; ``cuda=None`` removes ``__cuda``, ``osx="10.15"`` sets ``__osx``."""
    vpkgs = dict(TARGETS["targets"][target]["virtual_packages"])
    for key, value in changes.items():
        name = f"__{key.removeprefix('__')}"
        if value is None:
            vpkgs.pop(name, None)
        else:
            vpkgs[name] = value
    return vpkgs


def solve(channel: LocalChannel, subdir: str, specs: list[str], vpkgs: Mapping[str, str]) -> dict[str, Any]:
    """py-rattler's solution as ``{name: RepoDataRecord}``; raises rattler's SolverError."""
    from rattler import BuildString, Channel, GenericVirtualPackage, MatchSpec, PackageName, Version
    from rattler import solve as rattler_solve

    virtual = []
    for name, value in vpkgs.items():
        version, _, build = value.partition(" ")
        virtual.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0")))
    records = asyncio.run(
        rattler_solve(
            [Channel(channel.root.as_uri())],
            [MatchSpec(s) for s in specs],
            gateway=channel.gateway,
            platforms=[subdir, "noarch"],
            virtual_packages=virtual,
            channel_relations="disabled",
        )
    )
    return {r.name.normalized: r for r in records}


def solve_target(
    channel: LocalChannel, target: str, specs: list[str] | None = None, **changes: str | None
) -> dict[str, Any]:
    t = TARGETS["targets"][target]
    return solve(channel, t["subdir"], t["specs"] if specs is None else specs, virtual_packages(target, **changes))


def unsatisfiable(channel: LocalChannel, target: str, specs: list[str] | None = None, **changes: str | None) -> str:
    """The solver's error text for a solve that must fail."""
    from rattler.exceptions import SolverError

    with pytest.raises(SolverError) as info:
        solve_target(channel, target, specs, **changes)
    return str(info.value)


def vb(record: Any) -> str:
    return f"{record.version} {record.build}"


def virtual_satisfies(spec: str, vpkgs: Mapping[str, str]) -> bool:
    from rattler import MatchSpec, Version, VersionSpec

    ms = MatchSpec(spec)
    value = vpkgs.get(ms.name.normalized)
    if value is None:
        return False
    version, _, build = value.partition(" ")
    if ms.version not in {None, "*"} and not VersionSpec(str(ms.version)).matches(Version(version)):
        return False
    return ms.build in {None, "*"} or fnmatch.fnmatchcase(build or "0", str(ms.build))


def unmet(solution: Mapping[str, Any], vpkgs: Mapping[str, str]) -> list[str]:
    """Every depends not satisfied, and every constrains violated, within the solution."""
    from rattler import MatchSpec

    problems = []
    for name, record in solution.items():
        for dep in record.depends:
            ms = MatchSpec(dep)
            dname = ms.name.normalized
            ok = (
                virtual_satisfies(dep, vpkgs)
                if dname.startswith("__")
                else dname in solution and ms.matches(solution[dname])
            )
            if not ok:
                problems.append(f"{name} {vb(record)} depends on {dep!r}")
        for con in record.constrains:
            ms = MatchSpec(con)
            cname = ms.name.normalized
            if cname.startswith("__"):
                ok = cname not in vpkgs or virtual_satisfies(con, vpkgs)
            else:
                ok = cname not in solution or ms.matches(solution[cname])
            if not ok:
                problems.append(f"{name} {vb(record)} constrains {con!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------------


def test_vendored_channel_is_a_small_real_channel() -> None:
    total = 0
    for subdir in SUBDIRS:
        path = DATA / subdir / "repodata.json"
        total += path.stat().st_size
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["info"]["subdir"] == subdir
        assert set(data) == {"info", "packages", "packages.conda", "repodata_version"}
        for section in ("packages", "packages.conda"):
            for fn, rec in data[section].items():
                assert fn.endswith(".conda" if section == "packages.conda" else ".tar.bz2"), fn
                assert fn.startswith(f"{rec['name']}-{rec['version']}-{rec['build']}"), fn
                assert rec["subdir"] == subdir, fn
                assert len(rec["sha256"]) == 64 and len(rec["md5"]) == 32, fn
    assert total < 2_000_000, "keep the vendored subset small (see its README for how it is cut)"


def test_targets_json_carries_envspec_yml_virtual_packages() -> None:
    spec = yaml.safe_load((REPO / "envspec.yml").read_text(encoding="utf-8"))
    assert set(TARGETS["targets"]) == set(spec["targets"])
    for name, target in TARGETS["targets"].items():
        assert target["subdir"] == spec["targets"][name]["subdir"], name
        assert target["virtual_packages"] == spec["targets"][name]["virtual_packages"], (
            f"{name}: envspec.yml's virtual packages changed; update tests/data/conda-forge/targets.json "
            "(and re-run make_subset.py if the subset no longer solves)"
        )


def test_the_win64_cuda128_chain_is_in_the_records() -> None:
    """pytorch 2.8.0 cuda128 accepts cuda-version 12.8, but its libmagma does not."""
    data = json.loads((DATA / "win-64" / "repodata.json").read_text(encoding="utf-8"))["packages.conda"]
    torch = data["pytorch-2.8.0-cuda128_mkl_py313_hd1c3b22_302.conda"]["depends"]
    assert "cuda-version >=12.8,<13" in torch
    assert "libmagma >=2.9.0,<2.9.1.0a0" in torch
    magmas = [r for r in data.values() if r["name"] == "libmagma"]
    assert [r["version"] for r in magmas] == ["2.9.0"]
    assert "cuda-version >=12.9,<13" in magmas[0]["depends"]


# ---------------------------------------------------------------------------------------------
# Solves
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", list(TARGETS["targets"]))
def test_target_solves_to_the_expected_builds_with_a_complete_closure(channel: LocalChannel, target: str) -> None:
    solution = solve_target(channel, target)
    picked = {name: vb(solution[name]) for name in TARGETS["targets"][target]["expect"] if name in solution}
    assert picked == TARGETS["targets"][target]["expect"]
    assert unmet(solution, virtual_packages(target)) == []
    subdir = TARGETS["targets"][target]["subdir"]
    assert {str(r.subdir) for r in solution.values()} <= {subdir, "noarch"}


def test_closure_check_sees_a_missing_dependency_and_a_violated_constraint(channel: LocalChannel) -> None:
    solution = solve_target(channel, "linux-cuda")
    vpkgs = virtual_packages("linux-cuda")
    gone = {n: r for n, r in solution.items() if n != "libmagma"}
    assert "pytorch 2.7.1 cuda129_mkl_py312_hfde4d7d_304 depends on 'libmagma >=2.9.0,<2.9.1.0a0'" in unmet(gone, vpkgs)
    assert "pytorch 2.7.1 cuda129_mkl_py312_hfde4d7d_304 depends on '__cuda'" in unmet(solution, {})
    assert "cuda-version 12.9 h4f385c5_3 constrains '__cuda >=12'" in unmet(solution, {**vpkgs, "__cuda": "11.8"})


@pytest.mark.parametrize("target", CUDA_TARGETS)
def test_cuda_target_gets_no_cpu_build(channel: LocalChannel, target: str) -> None:
    solution = solve_target(channel, target)
    torch = [r for name, r in solution.items() if name in TORCH_NAMES]
    assert {r.name.normalized for r in torch} >= {"pytorch", "libtorch"}
    assert all(str(r.build).startswith("cuda") for r in torch), [vb(r) for r in torch]
    assert not [vb(r) for r in solution.values() if str(r.build).startswith("cpu_")]
    assert "pytorch-cpu <0.0a0" in solution["pytorch"].constrains
    assert "__cuda" in solution["pytorch"].depends


def test_linux_cuda_picks_a_cuda129_build(channel: LocalChannel) -> None:
    solution = solve_target(channel, "linux-cuda")
    assert str(solution["pytorch"].build).startswith("cuda129_")
    assert str(solution["cuda-version"].version) == "12.9"
    assert "cuda-version >=12.9,<13" in solution["pytorch"].depends


def test_linux_unpinned_pytorch_takes_cuda_only_while_cuda_is_declared(channel: LocalChannel) -> None:
    """The trap the build-string spec guards against: a plain ``pytorch`` silently goes CPU."""
    with_cuda = solve_target(channel, "linux-cuda", ["python=3.12", "pytorch"])
    assert str(with_cuda["pytorch"].build).startswith("cuda129_")
    without = solve_target(channel, "linux-cuda", ["python=3.12", "pytorch"], cuda=None)
    assert vb(without["pytorch"]) == "2.5.1 cpu_mkl_py312_hf462abe_109"
    assert "cuda-version" not in without


@pytest.mark.parametrize(
    ("cuda_version", "pytorch"),
    [("12.8", "2.6.0 cuda126_mkl_py312_h8bb5dc9_300"), ("12.6", "2.4.0 cuda120_py312h26b3cf7_301")],
)
def test_linux_lower_cuda_version_pin_silently_gets_an_older_torch(
    channel: LocalChannel, cuda_version: str, pytorch: str
) -> None:
    """A cuda-version pin below the newest builds' floor does not fail: it downgrades torch."""
    solution = solve_target(channel, "linux-cuda", ["python=3.12", "pytorch=*=cuda*", f"cuda-version={cuda_version}"])
    assert vb(solution["pytorch"]) == pytorch
    assert str(solution["cuda-version"].version) == cuda_version


@pytest.mark.parametrize("target", CUDA_TARGETS)
def test_cuda_build_without_cuda_virtual_package_is_unsatisfiable(channel: LocalChannel, target: str) -> None:
    message = unsatisfiable(channel, target, cuda=None)
    assert "pytorch * cuda*" in message
    assert "__cuda *, for which no candidates were found" in message


def test_cuda_driver_below_12_is_refused_by_cuda_version(channel: LocalChannel) -> None:
    """cuda-version 12.9 constrains ``__cuda >=12``: an 11.8 driver fails, naming that chain."""
    message = unsatisfiable(channel, "linux-cuda", cuda="11.8")
    assert "cuda-version 12.9 would constrain" in message
    assert "__cuda >=12" in message


def test_cuda_driver_version_within_12_is_not_binding(channel: LocalChannel) -> None:
    """What the records say: no record needs ``__cuda`` >= 12.9; 12.0 gives the same solution."""
    low = solve_target(channel, "linux-cuda", cuda="12.0")
    assert {n: vb(r) for n, r in low.items()} == {n: vb(r) for n, r in solve_target(channel, "linux-cuda").items()}


def test_linux_cuda_needs_glibc_228(channel: LocalChannel) -> None:
    message = unsatisfiable(channel, "linux-cuda", glibc="2.17")
    assert "__glibc >=2.28,<3.0.a0, for which no candidates were found" in message


def test_osx64_picks_cpu_mkl(channel: LocalChannel) -> None:
    solution = solve_target(channel, "osx-64")
    assert str(solution["pytorch"].build).startswith("cpu_mkl_py312_")
    assert str(solution["libtorch"].build).startswith("cpu_mkl_")
    assert "cuda-version" not in solution


def test_osx64_older_macos_silently_gets_an_older_torch(channel: LocalChannel) -> None:
    """pytorch 2.8.0 needs ``__osx >=11.0``: with 10.15 the solver quietly falls back to 2.5.1."""
    assert "__osx >=11.0" in solve_target(channel, "osx-64")["pytorch"].depends
    old = solve_target(channel, "osx-64", osx="10.15")
    assert vb(old["pytorch"]) == "2.5.1 cpu_mkl_py312_h6ed91f6_109"
    assert unmet(old, virtual_packages("osx-64", osx="10.15")) == []


def test_osx_arm64_honours_osx(channel: LocalChannel) -> None:
    solution = solve_target(channel, "osx-arm64")
    assert str(solution["pytorch"].build).startswith("cpu_generic_py313_")
    assert "__osx >=11.0" in solution["pytorch"].depends
    for osx in ("10.15", None):
        message = unsatisfiable(channel, "osx-arm64", osx=osx)
        assert "pytorch 2.10.0 would require" in message
        assert "__osx >=11.0, for which no candidates were found" in message


@pytest.mark.parametrize("case", list(TARGETS["unsatisfiable"]))
def test_win_cuda_version_128_is_unsatisfiable(channel: LocalChannel, case: str) -> None:
    """envspec.yml's win-cuda pins cuda-version=12.8; the records' CUDA 12.8 torch needs 12.9 libraries."""
    c = TARGETS["unsatisfiable"][case]
    message = unsatisfiable(channel, c["target"], c["specs"])
    assert message.startswith("Cannot solve the request because of:")
    for text in c["error_names"]:
        assert text in message, message


@pytest.mark.parametrize(
    ("target", "specs", "error"),
    [
        # envspec.yml's own torch pins, against the snapshot (see docs/pins.md: absence is weak evidence)
        ("osx-arm64", ["python=3.12", "pytorch>=2.9"], "python >=3.13,<3.14.0a0, for which no candidates"),
        ("osx-64", ["python=3.12", "pytorch>=2.9"], "No candidates were found for pytorch >=2.9"),
        ("win-cuda", ["python=3.12", "pytorch=*=cuda*", "cuda-version=12.8"], "python >=3.13,<3.14.0a0"),
    ],
)
def test_envspec_yml_torch_pins_find_nothing_in_the_snapshot(
    channel: LocalChannel, target: str, specs: list[str], error: str
) -> None:
    assert error in unsatisfiable(channel, target, specs)
