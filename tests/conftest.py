"""Shared test setup.

Unit tests may not spawn processes: an autouse fixture makes subprocess fail unless the test is
marked ``integration`` (those run the real tools: conda-lock, the installer, torch). A run fails when
one of its processes passed the suite's memory limit (tests/peak_rss.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from peak_rss import pytest_addoption, pytest_sessionfinish, pytest_terminal_summary  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
#: The spec that fits the tests' synthetic channel (tests/channel_factory.py); the shipped
#: envspec.yml fits real conda-forge records (its lockfiles are committed) and is not for it.
SYNTHETIC_SPEC = REPO / "tests" / "data" / "synthetic" / "envspec.yml"


# Hypothesis judges speed by default (an example over 200 ms fails, slow generation fails a health
# check): on a loaded machine that is a verdict about the machine. Examples are judged by what they do.
settings.register_profile("envspec", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("envspec")


class SpawnForbidden(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _forbid_subprocess(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("integration"):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        raise SpawnForbidden(f"unit test {request.node.nodeid} tried to spawn a process: mark it integration")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A scratch project to render into: the synthetic channel's spec (SYNTHETIC_SPEC); templates are envspec's."""
    dest = tmp_path / "proj"
    dest.mkdir()
    shutil.copy2(SYNTHETIC_SPEC, dest / "envspec.yml")
    return dest


@pytest.fixture(autouse=True, scope="session")
def _caches_in_a_temp_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests never write into the user's caches (~/.cache/envspec, the Hugging Face cache)."""
    base = tmp_path_factory.mktemp("caches")
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "ENVSPEC_PKGS_DIR", "HF_HOME")}
    os.environ["XDG_CACHE_HOME"] = str(base / "xdg")
    os.environ["HF_HOME"] = str(base / "hf")
    os.environ.pop("ENVSPEC_PKGS_DIR", None)
    yield base
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True, scope="session")
def _checkout_lockfiles_untouched() -> Iterator[None]:
    """No test solves into (or deletes from) the checkout's own lockfiles/: they use copies."""

    def listing() -> dict[str, float]:
        return {p.name: p.stat().st_mtime for p in (REPO / "lockfiles").iterdir()}

    before = listing()
    yield
    assert listing() == before, "a test wrote into the checkout's lockfiles/; use the project_copy fixture"


@pytest.fixture
def bounded_memory() -> Iterator[None]:
    """The address space bounded at what this process maps now plus 1 GiB, for one test (Linux): a test
    of an endless read (``/dev/zero``) whose refusal breaks gets MemoryError instead of filling the machine."""
    if not Path("/proc/self/status").exists():
        yield
        return
    import resource

    status = Path("/proc/self/status").read_text()
    vm_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmSize:"))
    saved = resource.getrlimit(resource.RLIMIT_AS)
    soft = vm_kib * 1024 + (1 << 30)
    if saved[1] == resource.RLIM_INFINITY or soft <= saved[1]:
        resource.setrlimit(resource.RLIMIT_AS, (soft, saved[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, saved)
