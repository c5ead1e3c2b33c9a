"""One summary of a conda-lock file (package count, torch build), shared by `envspec lock` and the report."""

from __future__ import annotations

from envspec.lock import condalock
from envspec.lock.conda_lock_job import summarise
from envspec.report import inputs
from envspec.spec.schema import TORCH_PACKAGE


def _entry(name: str, version: str, build: str, platform: str = "linux-64") -> str:
    url = f"https://conda.anaconda.org/conda-forge/{platform}/{name}-{version}-{build}.conda"
    return (
        f"- name: {name}\n  version: {version}\n  manager: conda\n  platform: {platform}\n"
        f"  dependencies: {{}}\n  url: {url}\n  hash: {{md5: {'0' * 32}}}\n"
    )


#: libtorch (torch's C++ library) comes before pytorch in a lock's name order, with another build.
LOCK = (
    "version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n"
    + _entry("libtorch", "2.9.1", "cuda129_generic_h1111111_200")
    + _entry("python", "3.12.11", "h9e4cc4f_0_cpython")
    + _entry("pytorch", "2.9.1", "cuda129_mkl_py312_h2222222_300")
)


def test_the_torch_build_is_pytorch_s_not_libtorch_s() -> None:
    summary = condalock.summarize(LOCK, "lock", "linux-64")
    assert summary.packages == 3
    assert summary.torch is not None and summary.torch.name == "pytorch"
    assert summary.torch_text == "2.9.1 cuda129_mkl_py312_h2222222_300"


def test_lock_table_and_report_read_the_same_torch() -> None:
    assert summarise(condalock.read_conda_lock(LOCK, "lock"), "linux-64") == (
        3,
        "2.9.1 cuda129_mkl_py312_h2222222_300",
    )
    assert inputs.parse_conda_lock(LOCK, "linux-64") == (3, "2.9.1", "cuda129_mkl_py312_h2222222_300")


def test_without_pytorch_there_is_no_torch_build() -> None:
    only_lib = LOCK.split("- name: python")[0]
    summary = condalock.summarize(only_lib, "lock", "linux-64")
    assert summary.torch is None and summary.torch_text == "-"
    assert condalock.summarize(LOCK, "lock", "win-64") == condalock.CondaLockSummary(0, None, "win-64")


def test_one_name_for_the_torch_package() -> None:
    assert condalock.TORCH_PACKAGE == TORCH_PACKAGE
