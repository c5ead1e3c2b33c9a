"""`envspec run` and `envspec shell-hook` on a real installed environment (see conftest.built_env).

Each runs the CLI in a child process; shell-hook output is evaluated by the real shells that exist
here (bash always; zsh and fish when installed), and the PowerShell / cmd text is read back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ACTIVATED, HOSTILE_VALUE, Built, envspec

from envspec.errors import ExitCode

pytestmark = pytest.mark.integration

PRINT_ENV = (
    "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in "
    "('ENVSPEC_TEST_ACTIVATED', 'ENVSPEC_TEST_ENV_VARS_D', 'TEST_HOSTILE', 'TEST_SPACE', 'ENVSPEC_TARGET', "
    "'CONDA_PREFIX', 'PATH')} | {'argv': sys.argv[1:]}))"
)


def test_run_activates_the_environment(built_env: Built, tmp_path: Path) -> None:
    prefix = built_env.prefix
    old = tmp_path / "previously active env"  # conda activate'd before: its folder leaves PATH
    environ = {"CONDA_PREFIX": str(old), "PATH": os.pathsep.join([str(old / "bin"), os.environ["PATH"]])}
    proc = envspec(built_env.project, "run", "--prefix", str(prefix), "--", "python", "-c", PRINT_ENV,
                   "--prefix", "-- x", "$HOME", cwd=tmp_path, env=environ)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["ENVSPEC_TEST_ACTIVATED"] == ACTIVATED  # the package's activate.d script ran
    assert seen["ENVSPEC_TEST_ENV_VARS_D"] == "from env_vars.d"
    assert seen["TEST_HOSTILE"] == HOSTILE_VALUE  # the target's variables, byte for byte
    assert seen["TEST_SPACE"] == "x y"
    assert seen["ENVSPEC_TARGET"] == "linux-cuda"
    assert seen["CONDA_PREFIX"] == str(prefix)
    path = seen["PATH"].split(os.pathsep)
    assert path[0] == str(prefix / "bin") and str(old / "bin") not in path
    assert path[1:] == [p for p in os.environ["PATH"].split(os.pathsep) if p and p != str(prefix / "bin")]
    assert seen["argv"] == ["--prefix", "-- x", "$HOME"]  # everything after the first -- verbatim
    assert not (tmp_path / "PWNED").exists()


def test_run_passes_the_exit_code_through(built_env: Built) -> None:
    for code in (0, 3, 42):
        proc = envspec(built_env.project, "run", "linux-cuda", "-p", str(built_env.prefix), "--",
                       "python", "-c", f"raise SystemExit({code})")  # fmt: skip
        assert proc.returncode == code, proc.stderr
    killed = envspec(built_env.project, "run", "-p", str(built_env.prefix), "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + signal.SIGTERM


def test_run_forwards_sigterm_to_the_command(built_env: Built, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(7)))\n"
        f"pathlib.Path({str(ready)!r}).write_text('x')\n"
        "time.sleep(60)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "CONDA_PREFIX"}
    environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    child = subprocess.Popen(
        [sys.executable, "-m", "envspec", "run", "-p", str(built_env.prefix), "--", "python", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)  # to envspec, not to the command
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert "got SIGTERM" in out, err
    assert child.returncode == 7


def test_run_refuses_what_is_not_an_envspec_environment(built_env: Built, tmp_path: Path) -> None:
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(tmp_path): "is not an environment envspec installed",
    }
    for prefix, words in cases.items():
        proc = envspec(built_env.project, "run", "-p", prefix, "--", "true")
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert words in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    other = envspec(built_env.project, "run", "osx-arm64", "-p", str(built_env.prefix), "--", "true")
    assert other.returncode == ExitCode.USAGE and "not 'osx-arm64'" in other.stderr
    empty = envspec(built_env.project, "run", "-p", str(built_env.prefix))
    assert empty.returncode == ExitCode.SPEC_INVALID and "no command to run" in empty.stderr
    missing = envspec(built_env.project, "run", "-p", str(built_env.prefix), "--", "no-such-command-xyz")
    assert missing.returncode == ExitCode.TOOL_FAILED
    assert "no-such-command-xyz: command not found" in missing.stderr and missing.stderr.count("\n") == 1


def _hook(built: Built, shell: str) -> str:
    proc = envspec(built.project, "shell-hook", "--prefix", str(built.prefix), "--shell", shell)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SHOW = 'printf "%s\\n" "$ENVSPEC_TEST_ACTIVATED" "$TEST_HOSTILE" "$TEST_SPACE" "$CONDA_PREFIX" "$(command -v python)"'


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_hook_is_evaluated_by_the_real_shell(built_env: Built, tmp_path: Path, shell: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here")
    (tmp_path / "hook").write_text(_hook(built_env, shell))
    if shell == "fish":  # as users write it: `envspec shell-hook --shell fish ... | source`
        command = "cat hook | source; " + SHOW.replace('"$(command -v python)"', "(command -v python)")
    else:  # eval "$(envspec shell-hook ...)"
        command = f'eval "$(cat hook)"; {SHOW}'
    proc = subprocess.run([exe, "-c", command], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    prefix = built_env.prefix
    assert proc.stdout.splitlines() == [ACTIVATED, HOSTILE_VALUE, "x y", str(prefix), str(prefix / "bin" / "python")]
    assert not (tmp_path / "PWNED").exists()


def test_shell_hook_for_powershell_and_cmd(built_env: Built) -> None:
    prefix = built_env.prefix
    ps = _hook(built_env, "powershell").splitlines()
    assert ps[0] == f"$Env:PATH = '{prefix / 'bin'}{os.pathsep}' + $Env:PATH"
    assert "${Env:TEST_HOSTILE} = 'a $(touch PWNED) `touch PWNED` \"q\" ''s %PATH% ^&| \\ end'" in ps
    assert f". '{prefix / 'etc/conda/activate.d/envspec-test.ps1'}'" == ps[-1]
    cmd = _hook(built_env, "cmd").splitlines()
    assert cmd[0] == f'@SET "PATH={prefix / "bin"}{os.pathsep}%PATH%"'
    assert '@SET "TEST_HOSTILE=a $(touch PWNED) `touch PWNED` "q" \'s %%PATH%% ^&| \\ end"' in cmd
    assert cmd[-1] == f'@CALL "{prefix / "etc/conda/activate.d/envspec-test.bat"}"'
    assert not [line for line in cmd if ".sh" in line or ".ps1" in line]  # each shell sources its own scripts
