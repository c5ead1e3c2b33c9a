"""`envspec doctor` end to end: recorded machines through main(), and the real machine (integration)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from envspec.cli.main import main
from envspec.doctor.probe import RecordedProbe, SystemProbe
from envspec.errors import ExitCode

DATA = Path(__file__).resolve().parent.parent / "data" / "doctor"

TOP_KEYS = {"schema", "spec", "recommended", "target", "ok", "summary", "machine", "install_commands", "checks"}
MACHINE_KEYS = {
    "system",
    "machine",
    "python",
    "python_subdir",
    "hardware_subdir",
    "rosetta",
    "macos",
    "distro",
    "glibc",
    "nvidia",
    "memory_total",
    "disk_free",
    "conda_tools",
}


def recorded_main(name: str, **changes: Any) -> Callable[[list[str]], int]:
    """main() on a recorded machine: the probe is a parameter of main."""
    data = json.loads((DATA / f"{name}.json").read_text())
    data.update(changes)
    return functools.partial(main, probe=RecordedProbe(data))


def test_json_report_has_stable_versioned_keys(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = recorded_main("linux-h100-580")
    assert main(["--spec", str(repo / "envspec.yml"), "doctor", "--json"]) == ExitCode.OK
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout is only the JSON; progress went to stderr
    assert "probing" in captured.err
    assert set(data) == TOP_KEYS
    assert data["schema"] == "envspec-doctor/1"
    assert set(data["machine"]) == MACHINE_KEYS
    assert data["recommended"] == data["target"] == "linux-cuda"
    assert data["ok"] is True and data["summary"] == {"PASS": len(data["checks"]), "WARN": 0, "FAIL": 0}
    assert data["machine"]["nvidia"]["gpus"] == [
        {"name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "compute_cap": "9.0"}
    ]
    for entry in data["checks"]:
        assert set(entry) == {"name", "status", "reason", "fix"}
        assert entry["status"] in ("PASS", "WARN", "FAIL")
    assert data["install_commands"][0] == "conda create -n stable-diffusion-linux-cuda --file lockfiles/linux-cuda.lock"


def test_text_report_puts_the_recommendation_on_top_and_exits_1_on_fail(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = recorded_main("m1-rosetta")
    assert main(["--spec", str(repo / "envspec.yml"), "doctor"]) == ExitCode.CHECK_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine: Darwin x86_64, Python 3.11.5 under Rosetta, macOS 14.6.1")
    assert lines[1].startswith("recommended target: osx-arm64 (osx-arm64, mps)")
    assert lines[3].split() == ["STATUS", "CHECK", "REASON"]
    rosetta = next(i for i, line in enumerate(lines) if line.startswith("FAIL") and "rosetta" in line)
    assert "fix:" in lines[rosetta + 1] and "CONDA_SUBDIR=osx-arm64" in lines[rosetta + 1]
    assert lines[-1] == "doctor: FAILED (1 FAIL, 1 WARN, 7 PASS)"


def test_target_option_checks_another_target(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = recorded_main("linux-h100-580")
    assert main(["--spec", str(repo / "envspec.yml"), "doctor", "--json", "--target", "osx-arm64"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["recommended"] == "linux-cuda" and data["target"] == "osx-arm64"
    platform_check = next(c for c in data["checks"] if c["name"] == "platform")
    assert platform_check["status"] == "FAIL" and platform_check["fix"] == "use --target linux-cuda"


def test_unknown_target_is_a_spec_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = recorded_main("linux-h100-580")
    assert main(["--spec", str(repo / "envspec.yml"), "doctor", "--target", "nope"]) == ExitCode.SPEC_INVALID
    err = capsys.readouterr().err
    assert "no target named 'nope'" in err and "Traceback" not in err


def test_disk_estimate_reads_the_projects_lockfile(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    main = recorded_main("linux-h100-580", disk_free=9 * 1024**3)
    spec = str(project_copy / "envspec.yml")
    # Without a lockfile: the 12 GiB CUDA default + the checkpoint does not fit in 9 GiB.
    assert main(["--spec", spec, "doctor", "--json"]) == 1
    disk = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "disk")
    assert disk["status"] == "FAIL" and "default for a cuda environment" in disk["reason"]
    lock = {
        "version": 1,
        "metadata": {"platforms": ["linux-64"]},
        "package": [
            {"name": "pytorch", "version": "2.8.0", "manager": "conda", "platform": "linux-64", "size": 600_000_000},
            {"name": "python", "version": "3.12.11", "manager": "conda", "platform": "linux-64", "size": 30_000_000},
        ],
    }
    (project_copy / "lockfiles").mkdir(exist_ok=True)
    (project_copy / "lockfiles" / "linux-cuda.conda-lock.yml").write_text(yaml.safe_dump(lock))
    assert main(["--spec", spec, "doctor", "--json"]) == 0
    disk = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "disk")
    assert disk["status"] == "PASS" and "2 packages" in disk["reason"]
    # A broken lockfile falls back to the default instead of crashing.
    (project_copy / "lockfiles" / "linux-cuda.conda-lock.yml").write_text("package: [unclosed\n")
    assert main(["--spec", spec, "doctor", "--json"]) == 1
    capsys.readouterr()
    # So does one that is not UTF-8, or too deeply nested for the YAML parser.
    for data in (b"\xff\xfe package", b"package: " + b"[" * 5000 + b"]" * 5000):
        (project_copy / "lockfiles" / "linux-cuda.conda-lock.yml").write_bytes(data)
        assert main(["--spec", spec, "doctor", "--json"]) == 1
        disk = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "disk")
        assert "default for a cuda environment" in disk["reason"]


def test_doctor_is_registered_in_the_command_table() -> None:
    from envspec.cli.main import COMMANDS

    assert ("doctor", "envspec.cli.doctor") in [(name, module) for name, module, _ in COMMANDS]


def test_system_probe_answers_none_for_a_missing_command() -> None:
    # No process is spawned for a command that does not exist.
    assert SystemProbe().run(["envspec-no-such-tool-xyz", "--version"]) is None
    assert SystemProbe().read_file("/nonexistent/envspec/file") is None
    assert SystemProbe().file_size("/nonexistent/envspec/file") is None


# ---- The real machine ------------------------------------------------------------------------


def _expected_recommendation() -> str | None:
    """linux-cuda on a Linux x86-64 machine with an NVIDIA driver, linux-cpu without one."""
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        nvidia = Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None
        return "linux-cuda" if nvidia else "linux-cpu"
    return None


@pytest.mark.integration
def test_real_doctor_in_process(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--spec", str(repo / "envspec.yml"), "doctor", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert code == (0 if data["ok"] else 1)
    assert data["schema"] == "envspec-doctor/1"
    expected = _expected_recommendation()
    if expected:
        assert data["recommended"] == expected
        names = {c["name"] for c in data["checks"]}
        assert {"platform", "glibc", "disk", "memory", "installer", "checkpoint"} <= names
        assert ("nvidia-gpu" in names) == (expected == "linux-cuda")
        assert data["machine"]["glibc"]  # a glibc system: this machine's
    assert data["machine"]["memory_total"] > 0 and data["machine"]["disk_free"] > 0


@pytest.mark.integration
def test_real_doctor_as_a_subprocess(repo: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "envspec", "--spec", str(repo / "envspec.yml"), "doctor"],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard: how fast the doctor answers is benchmarks/bench_cli.py's business
        env=env,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    assert lines[1].startswith("recommended target: ")
    assert lines[-1].startswith("doctor: " + ("ok" if done.returncode == 0 else "FAILED"))


@pytest.mark.integration
def test_system_probe_never_hangs(tmp_path: Path) -> None:
    """A command past its timeout is ended with everything it started (its own session), so nothing
    holds the probe: the verdict is what is left running, not how long it took."""
    script = tmp_path / "slow.sh"
    pid_file = tmp_path / "grandchild"
    script.write_text(f"#!/bin/sh\necho started\nsleep 3600 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    timeout = 0.5
    while True:  # a loaded machine may end the script before it started its child: give it longer
        result = SystemProbe(timeout=timeout).run([str(script)])
        assert result is not None and result.returncode == 124 and "timed out" in result.stderr
        if pid_file.is_file() and pid_file.read_text().strip():
            break
        assert timeout < 300, "the script never started its child"  # a hang guard
        timeout *= 2
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 300  # a hang guard: without the group kill it sleeps an hour
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the command's child outlived the probe's timeout"
        time.sleep(0.05)
    echo = SystemProbe().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert echo is not None and (echo.returncode, echo.stdout, echo.stderr) == (3, "out\n", "err\n")


@pytest.mark.integration
@pytest.mark.parametrize("stream", ["", ">&2"])
def test_a_command_that_prints_without_end_is_ended_at_the_output_cap(
    tmp_path: Path, stream: str, bounded_memory: None
) -> None:
    """An endless nvidia-smi (or a conda that loops printing) must not fill memory until the timeout:
    each stream is read up to OUTPUT_MAX_BYTES, then the command and its children are ended (reading it
    all, as before, ends in MemoryError under bounded_memory, or at the timeout)."""
    from envspec.doctor.probe import OUTPUT_MAX_BYTES, OVERFLOW_RETURNCODE

    result = SystemProbe(timeout=120).run(["sh", "-c", f"yes envspec {stream}"])  # the timeout: a hang guard
    assert result is not None and result.returncode == OVERFLOW_RETURNCODE, (result.returncode, result.stderr[:200])
    assert f"more than {OUTPUT_MAX_BYTES} bytes" in result.stderr and result.stdout == ""


def test_install_without_target_uses_the_recommended_target(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 5 item 2: `envspec install` without TARGET takes the doctor's recommendation (here a
    recorded Windows box with an NVIDIA GPU, so not this Linux machine's only linux-64 target)."""
    from envspec.spec.load import load_spec

    data = json.loads((DATA / "windows-cuda.json").read_text())
    assert load_spec(project_copy / "envspec.yml").resolve("win-cuda").subdir == "win-64"
    argv = ["--spec", str(project_copy / "envspec.yml"), "install", "--prefix", str(project_copy / "env")]
    code = main(argv, environ={}, probe=RecordedProbe(data))
    err = capsys.readouterr().err
    assert "target: win-cuda" in err  # chosen before the unrendered project stops the install
    assert code != 0 and "lock: win-cuda: its environment file" in err


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(os.name != "posix", reason="FIFOs and devices are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_lockfile_that_is_no_regular_file_falls_back_to_the_default_estimate(
    project_copy: Path, capsys: pytest.CaptureFixture[str], kind: str, bounded_memory: None
) -> None:
    import threading

    main = recorded_main("linux-h100-580", disk_free=9 * 1024**3)
    lock = project_copy / "lockfiles" / "linux-cuda.conda-lock.yml"
    lock.parent.mkdir(exist_ok=True)
    done = threading.Event()
    if kind == "fifo":
        os.mkfifo(lock)

        def unblock() -> None:
            # should the refusal break, a blocking open still ends, and reads a lockfile (the test fails)
            one = {"name": "pytorch", "version": "2.8.0", "manager": "conda", "platform": "linux-64", "size": 1}
            text = yaml.safe_dump({"version": 1, "package": [one]}).encode()
            while not done.wait(2):
                with contextlib.suppress(OSError):
                    fd = os.open(lock, os.O_WRONLY | os.O_NONBLOCK)
                    os.write(fd, text)
                    os.close(fd)

        threading.Thread(target=unblock, daemon=True).start()
    else:
        lock.symlink_to("/dev/zero")  # an endless read
    try:
        assert main(["--spec", str(project_copy / "envspec.yml"), "doctor", "--json"]) == 1
    finally:
        done.set()
    disk = next(c for c in json.loads(capsys.readouterr().out)["checks"] if c["name"] == "disk")
    assert "default for a cuda environment" in disk["reason"]


def test_text_from_the_machine_reaches_the_terminal_escaped(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads((DATA / "linux-h100-580.json").read_text())
    smi = next(k for k in data["commands"] if k.startswith("nvidia-smi"))
    data["commands"][smi]["stdout"] = "NVIDIA \x1b[2JH100\x9b31m, 580.65.06, 81559, 9.0\n"
    data["files"]["/etc/os-release"] = 'ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu \u202eSTL 40.42"\n'
    assert main(["--spec", str(repo / "envspec.yml"), "doctor"], probe=RecordedProbe(data)) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x9b\u202e"), out
    assert "NVIDIA \\x1b[2JH100\\x9b31m" in out and "Ubuntu \\u202eSTL" in out
