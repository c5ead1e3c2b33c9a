"""`envspec completion`: the scripts shtab generates from the parser, loaded by the real shells."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envspec.cli.main import COMMANDS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def script(shell: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "envspec", "completion", shell],
        capture_output=True, text=True, timeout=60, check=False, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def bash_complete(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers for the last word of ``envspec WORDS`` (COMP_WORDS simulated as readline would)."""
    (tmp_path / "envspec.bash").write_text(script("bash"))
    quoted = " ".join(f"'{w}'" for w in ("envspec", *words))
    probe = (
        f"source {tmp_path / 'envspec.bash'}\n"
        "complete -p envspec\n"
        f'COMP_WORDS=({quoted}); COMP_CWORD={len(words)}; COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}\n'
        '_shtab_envspec envspec "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == "complete -o bashdefault -F _shtab_envspec envspec"  # what `complete -p envspec` says
    return sorted(rest)


def test_bash_completes_the_real_commands_and_options(tmp_path: Path) -> None:
    assert set(bash_complete(tmp_path, "")) == {name for name, _, _ in COMMANDS}  # every command, no other
    assert bash_complete(tmp_path, "sh") == ["shell-hook"]
    assert bash_complete(tmp_path, "shell-hook", "--shell", "") == ["bash", "cmd", "fish", "powershell", "zsh"]
    assert bash_complete(tmp_path, "completion", "") == ["bash", "fish", "zsh"]
    assert "--from" in bash_complete(tmp_path, "install", "--f")
    assert bash_complete(tmp_path, "pack", "--ou") == ["--output"]


def test_bash_completes_paths_for_path_options(tmp_path: Path) -> None:
    (tmp_path / "envdir").mkdir()
    (tmp_path / "bundle.tar").write_text("x")
    assert "envdir" in bash_complete(tmp_path, "run", "--prefix", "env")
    assert "bundle.tar" in bash_complete(tmp_path, "install", "--from", "bund")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_load_their_scripts(tmp_path: Path, shell: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed here")
    path = tmp_path / f"envspec.{shell}"
    path.write_text(script(shell))
    assert subprocess.run([exe, "-n", str(path)], capture_output=True, timeout=60, check=False).returncode == 0
    if shell == "fish":  # fish completes a command line itself: `complete -C`
        proc = subprocess.run(
            [exe, "--no-config", "-c", f"source {path}; complete -C 'envspec shell-hook --shell '"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        offered = {line.split("\t")[0] for line in proc.stdout.splitlines()}
        assert offered == {"bash", "zsh", "fish", "powershell", "cmd"}
