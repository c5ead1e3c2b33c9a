"""Room (disk, memory, the checkpoint) and tools (installer, Xcode, long paths), word for word at each threshold.

Written against the survivors of `nox -s mutants -- "envspec.doctor.*"` (docs/mutation.md): a
message, a tip or a status that no test pinned could change unnoticed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml
from checks_support import (
    NO_XCODE,
    GiB,
    _plat,
    _tools,
    rows,
)

from envspec.doctor.check import Status
from envspec.doctor.checkpoint import check_checkpoint
from envspec.doctor.machine import (
    CondaTool,
    MachineFacts,
)
from envspec.doctor.resources import EnvEstimate, ModelsNeed, check_disk, check_memory, estimate_env_bytes
from envspec.doctor.tools import check_installer, check_xcode, install_commands, needs_compiler
from envspec.spec.load import Spec

# ---- room: disk, memory, checkpoint ----------------------------------------------------------------


CKPT_BYTES = 4_265_380_512
FREE_FIX = (
    "free some space, or put the environment and package cache on a bigger disk "
    "(--prefix, CONDA_PKGS_DIRS / RATTLER_CACHE_DIR)"
)


def _lock(*sizes: int | None, platform: str = "linux-64") -> str:
    packages = []
    for i, size in enumerate(sizes):
        p: dict[str, Any] = {"name": f"p{i}", "version": "1.0", "platform": platform}
        if size is not None:
            p["size"] = size
        packages.append(p)
    return yaml.safe_dump({"version": 1, "package": packages})


def test_env_estimate_sources(spec: Spec) -> None:
    cuda, mps = spec.resolve("linux-cuda"), spec.resolve("osx-arm64")
    assert estimate_env_bytes(None, cuda) == EnvEstimate(12 * GiB, "default for a cuda environment")
    assert estimate_env_bytes(None, mps) == EnvEstimate(4 * GiB, "default for a mps environment")
    assert estimate_env_bytes(": [", cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile is not a readable conda-lock.yml"
    )
    assert estimate_env_bytes(_lock(), cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile (0 packages) has no sizes"
    )
    assert estimate_env_bytes(_lock(GiB, None), cuda) == EnvEstimate(
        12 * GiB, "default for a cuda environment; the lockfile (2 packages) has no sizes"
    )
    assert estimate_env_bytes(_lock(GiB, GiB // 2), cuda) == EnvEstimate(
        6 * GiB, "2 packages, 1.5 GiB to download (x4 for cache + environment)"
    )
    # Another platform's packages are not this environment's.
    assert estimate_env_bytes(_lock(GiB, platform="osx-arm64"), cuda).source == (
        "default for a cuda environment; the lockfile (0 packages) has no sizes"
    )


def _room(free: int | None, checkpoint: int | None = None, **kw: Any) -> MachineFacts:
    return MachineFacts(
        platform=_plat(),
        python_subdir="linux-64",
        hardware_subdir="linux-64",
        disk_free=free,
        checkpoint_size=checkpoint,
        **kw,
    )


def test_disk_thresholds() -> None:
    env = EnvEstimate(4 * GiB, "test")
    need = 4 * GiB + CKPT_BYTES
    parts = "environment ~4.0 GiB (test) + 4.0 GiB for an SD-1 checkpoint"
    assert rows([check_disk(_room(need - 1), env, "/p")]) == [
        ("disk", "FAIL", f"8.0 GiB free at /p, need ~8.0 GiB: {parts}", FREE_FIX)
    ]
    assert rows([check_disk(_room(need), env, "/p")]) == [
        ("disk", "WARN", f"8.0 GiB free at /p, just above the ~8.0 GiB needed: {parts}", FREE_FIX)
    ]
    headroom = int(need * 1.25)
    assert check_disk(_room(headroom - 1), env, "/p").status is Status.WARN
    assert rows([check_disk(_room(headroom + 1), env, "/p")]) == [
        ("disk", "PASS", f"10.0 GiB free, need ~8.0 GiB: {parts}", None)
    ]
    assert rows([check_disk(_room(None, notes={"disk": "statvfs failed"}), env, "/p")]) == [
        ("disk", "WARN", f"free space unknown (statvfs failed); need {parts}", None)
    ]
    assert check_disk(_room(None), env, "/p").reason == f"free space unknown (no answer); need {parts}"


def test_disk_counts_the_checkpoint_only_when_none_is_in_place() -> None:
    env = EnvEstimate(4 * GiB, "test")
    in_place = check_disk(_room(5 * GiB, checkpoint=1_000_000_000), env, "/p")
    assert rows([in_place]) == [("disk", "PASS", "5.0 GiB free, need ~4.0 GiB: environment ~4.0 GiB (test)", None)]
    broken = check_disk(_room(5 * GiB, checkpoint=999_999_999), env, "/p")
    assert broken.status is Status.FAIL and broken.reason.endswith("+ 4.0 GiB for an SD-1 checkpoint")


def test_disk_counts_the_models_still_to_pull_instead_of_a_checkpoint() -> None:
    env = EnvEstimate(4 * GiB, "test")
    models = ModelsNeed(2 * GiB, "lockfiles/models.lock.yml, files not pulled yet")
    got = check_disk(_room(6 * GiB), env, "/p", models)
    assert rows([got]) == [
        (
            "disk",
            "WARN",
            (
                "6.0 GiB free at /p, just above the ~6.0 GiB needed: environment ~4.0 GiB (test) + models ~2.0 GiB "
                "(lockfiles/models.lock.yml, files not pulled yet)"
            ),
            FREE_FIX,
        )
    ]
    nothing_left = check_disk(_room(6 * GiB), env, "/p", ModelsNeed(0, "x"))
    assert nothing_left.reason == "6.0 GiB free, need ~4.0 GiB: environment ~4.0 GiB (test)"


@pytest.mark.parametrize(
    ("total", "accelerator", "status", "reason", "fix"),
    [
        (
            4 * GiB - 1,
            "cuda",
            "FAIL",
            "4.0 GiB RAM: SD-1 needs >= 4.0 GiB to load",
            "use a machine with >= 8 GiB",
        ),
        (
            4 * GiB,
            "mps",
            "WARN",
            "4.0 GiB RAM (shared with the GPU): loading SD-1 will swap below 8.0 GiB",
            "close other programs; expect slow loading",
        ),
        (
            8 * GiB - 1,
            "cpu",
            "WARN",
            "8.0 GiB RAM: loading SD-1 will swap below 8.0 GiB",
            "close other programs; expect slow loading",
        ),
        (8 * GiB, "cuda", "PASS", "8.0 GiB RAM", None),
        (
            GiB,
            "mps",
            "FAIL",
            "1.0 GiB RAM (shared with the GPU): SD-1 needs >= 4.0 GiB to load",
            "use a machine with >= 8 GiB",
        ),
    ],
)
def test_memory_thresholds(
    spec: Spec, total: int, accelerator: str, *, status: str, reason: str, fix: str | None
) -> None:
    target = dataclasses.replace(spec.resolve("linux-cuda"), accelerator=accelerator)
    assert rows([check_memory(_room(None, memory_total=total), target)]) == [("memory", status, reason, fix)]


def test_memory_unknown_or_without_a_target() -> None:
    assert rows([check_memory(_room(None, notes={"memory": "no /proc/meminfo"}), None)]) == [
        ("memory", "WARN", "RAM unknown (no /proc/meminfo)", None)
    ]
    assert check_memory(_room(None), None).reason == "RAM unknown (no answer)"
    assert check_memory(_room(None, memory_total=2 * GiB), None).reason == "2.0 GiB RAM: SD-1 needs >= 4.0 GiB to load"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (
            None,
            (
                "PASS",
                (
                    "no checkpoint at m/model.ckpt: the smoke test uses its tiny built-in model "
                    "(--model PATH for a real one)"
                ),
                None,
            ),
        ),
        (
            999_999_999,
            (
                "WARN",
                (
                    "m/model.ckpt is only 1000.0 MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a git-lfs "
                    "pointer?)"
                ),
                "download the checkpoint again",
            ),
        ),
        (
            133,
            (
                "WARN",
                (
                    "m/model.ckpt is only 0.0 MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a git-lfs "
                    "pointer?)"
                ),
                "download the checkpoint again",
            ),
        ),
        (
            1_000_000_000,
            (
                "PASS",
                "m/model.ckpt (1.00 GB); a .ckpt is a pickle: the smoke test loads it only with --trust-pickle",
                None,
            ),
        ),
    ],
)
def test_checkpoint(size: int | None, expected: tuple[str, str, str | None]) -> None:
    assert rows([check_checkpoint("m/model.ckpt", size)]) == [("checkpoint", *expected)]


# ---- tools: installer and Xcode ---------------------------------------------------------------------


def test_install_commands_in_tool_order(spec: Spec) -> None:
    target = spec.resolve("osx-arm64")
    everything = _tools(
        CondaTool("micromamba", "/b/micromamba", "2.0.5"),
        CondaTool("conda", "/b/conda", "25.9.1"),
        CondaTool("mamba", "/b/mamba", "2.0.5"),
    )
    assert install_commands(everything, target) == [
        "conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock",
        "mamba create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock",
        "micromamba create -n stable-diffusion-osx-arm64 -f lockfiles/osx-arm64.lock",
        "envspec install osx-arm64 --prefix ./env",
    ]
    assert install_commands(everything, None)[0] == "conda create -n ENV --file lockfiles/TARGET.lock"
    assert install_commands(_tools(), None) == ["envspec install TARGET --prefix ./env"]


def test_installer_with_an_unreadable_version_warns(spec: Spec) -> None:
    target = spec.resolve("osx-arm64")
    facts = _tools(CondaTool("conda", "/b/conda", "25.5.0"), CondaTool("mamba", "/b/mamba", None))
    assert rows([check_installer(facts, target)]) == [
        (
            "installer",
            "WARN",
            (
                "conda 25.5.0 (`conda env create -f` reads explicit files too, with a solve); mamba (version unknown); "
                "install with `conda create -n stable-diffusion-osx-arm64 --file lockfiles/osx-arm64.lock`"
            ),
            "check `mamba --version` works; `envspec install osx-arm64 --prefix ./env` needs no conda",
        )
    ]
    old = check_installer(_tools(CondaTool("conda", "/b/conda", "25.4.9")), target)
    assert old.reason.startswith("conda 25.4.9 (older than 25.5.0: `conda env create -f` cannot read explicit files);")
    assert old.status is Status.PASS


@pytest.mark.parametrize(
    ("deps", "pip", "sdist", "why"),
    [
        (("python=3.12",), (), (), None),
        (("conda-forge::GCC>=13",), (), (), "the spec installs gcc"),
        (
            ("cxx-compiler", "cmake 3.30.*", "make[build=h0]", "gcc_linux-64"),
            (),
            (),
            "the spec installs cmake, cxx-compiler, make",
        ),
        (("clangxx!=17",), (), (), "the spec installs clangxx"),
        (
            (),
            ("xformers==0.1",),
            ("xformers", "flash-attn"),
            (
                "pip_allow_sdist lets xformers, flash-attn build from source at install time, which needs a compiler "
                "for C extensions"
            ),
        ),
        ((), (), ("xformers",), None),  # allowed sdists without pip packages: nothing builds
        ((), ("xformers==0.1",), (), None),
    ],
)
def test_needs_compiler(
    spec: Spec, deps: tuple[str, ...], pip: tuple[str, ...], sdist: tuple[str, ...], why: str | None
) -> None:
    target = dataclasses.replace(spec.resolve("osx-arm64"), dependencies=deps, pip=pip, pip_allow_sdist=sdist)
    assert needs_compiler(target) == why


def test_xcode_check(spec: Spec) -> None:
    target = dataclasses.replace(spec.resolve("osx-arm64"), dependencies=("make",))
    assert rows([check_xcode(_tools(xcode_clt=True), target)]) == [
        ("xcode-clt", "PASS", "Xcode command-line tools present (the spec installs make)", None)
    ]
    assert rows([check_xcode(_tools(xcode_clt=None), target)]) == [
        ("xcode-clt", "WARN", "cannot tell whether Xcode's CLT are installed (the spec installs make)", None)
    ]
    assert rows([check_xcode(_tools(xcode_clt=False), target)]) == [
        ("xcode-clt", "FAIL", "Xcode command-line tools missing and the spec installs make", "xcode-select --install")
    ]
    assert rows([check_xcode(_tools(xcode_clt=False), None)]) == [NO_XCODE]
