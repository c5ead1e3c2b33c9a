"""The shipped linux-cpu target (#22): what the doctor and the default target make of it on the
recorded machines (tests/data/doctor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.doctor.probe import RecordedProbe
from envspec.doctor.recommend import default_target
from envspec.spec.load import load_spec

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "doctor"


def recording(name: str, **env: str) -> RecordedProbe:
    data = json.loads((DATA / f"{name}.json").read_text())
    data["env"] = {**data.get("env", {}), **env}
    return RecordedProbe(data)


@pytest.mark.parametrize(
    ("machine", "expected"),
    [("linux-no-gpu", "linux-cpu"), ("linux-h100-580", "linux-cuda"), ("linux-old-driver", "linux-cuda")],
)
def test_a_forced_linux_subdir_picks_between_the_two_linux_targets_by_the_gpu(machine: str, expected: str) -> None:
    """ENVSPEC_HOST_SUBDIR=linux-64 names two targets now: the machine's GPU picks, no "several targets" error."""
    spec = load_spec(REPO / "envspec.yml")
    assert default_target(spec, recording(machine, ENVSPEC_HOST_SUBDIR="linux-64")).name == expected
    assert default_target(spec, recording(machine)).name == expected


def test_the_linux_cpu_target_asks_for_a_cpu_torch_and_no_cuda() -> None:
    target = load_spec(REPO / "envspec.yml").resolve("linux-cpu")
    assert (target.subdir, target.accelerator, target.smoke_device, target.runner) == (
        "linux-64",
        "cpu",
        "cpu",
        "ubuntu-latest",
    )
    assert "pytorch=*=cpu*" in target.dependencies and "__cuda" not in target.virtual_packages
