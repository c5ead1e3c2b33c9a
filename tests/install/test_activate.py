"""Activation scripts (pure: no process): every value quoted for its shell, each shell its own scripts."""

from __future__ import annotations

import io
import os
import shlex
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from envspec.cli.main import main
from envspec.errors import ExitCode
from envspec.install.activate import Activation, hook_script

HOSTILE = 'a $(touch x) `id` "q" \'s %PATH% ^&| \\ ‘t’ end'


def act(tmp: Path) -> Activation:
    prefix = tmp / "my env"
    return Activation(
        prefix=prefix,
        name="sd",
        path=(str(prefix / "bin"),),
        removed=(),
        variables={"HOSTILE": HOSTILE, "PLAIN": "1"},
        scripts=tuple(prefix / "etc/conda/activate.d" / n for n in ("a.bat", "a.fish", "a.ps1", "a.sh", "b.sh")),
    )


def test_bash_and_zsh_values_are_single_quoted_words(tmp_path: Path) -> None:
    for shell in ("bash", "zsh"):
        lines = hook_script(act(tmp_path), shell).splitlines()
        exports = dict(
            shlex.split(line)[1].split("=", 1)
            for line in lines
            if line.startswith("export ") and not line.startswith("export PATH=")
        )
        assert exports["HOSTILE"] == HOSTILE and exports["CONDA_PREFIX"] == str(tmp_path / "my env")
        assert exports["CONDA_DEFAULT_ENV"] == "sd"
        assert lines[-2:] == [f". {shlex.quote(str(s))}" for s in act(tmp_path).scripts if s.suffix == ".sh"]
        assert lines[0] == f'export PATH={shlex.quote(str(tmp_path / "my env" / "bin"))}"${{PATH:+{os.pathsep}$PATH}}"'


def test_fish_powershell_cmd_quote_their_own_way(tmp_path: Path) -> None:
    fish = hook_script(act(tmp_path), "fish")
    assert "set -gx HOSTILE 'a $(touch x) `id` \"q\" \\'s %PATH% ^&| \\\\ ‘t’ end'" in fish
    assert fish.rstrip().endswith(f"source '{tmp_path}/my env/etc/conda/activate.d/a.fish'")
    ps = hook_script(act(tmp_path), "powershell")
    assert "${Env:HOSTILE} = 'a $(touch x) `id` \"q\" ''s %PATH% ^&| \\ ‘‘t’’ end'" in ps  # typographic quotes too
    cmd = hook_script(act(tmp_path), "cmd")
    assert '@SET "HOSTILE=a $(touch x) `id` "q" \'s %%PATH%% ^&| \\ ‘t’ end"' in cmd
    assert cmd.count("@CALL") == 1 and ps.count(". '") == 1 and fish.count("source ") == 1


def test_run_takes_everything_after_the_first_double_dash(tmp_path: Path) -> None:
    err = io.StringIO()
    with redirect_stderr(err):  # options after -- belong to the command, never to envspec
        code = main(["run", "--prefix", str(tmp_path / "none"), "--", "python", "--prefix", "--", "-n"])
    assert code == ExitCode.USAGE and "does not exist" in err.getvalue()
    with redirect_stderr(io.StringIO()):
        assert main(["run", "--", "python"]) == ExitCode.USAGE  # --prefix or --name is required


@pytest.mark.parametrize("prefix_kind", ["file", "plain folder", "other target"])
def test_only_an_envspec_environment_is_activated(tmp_path: Path, prefix_kind: str) -> None:
    prefix = tmp_path / "p"
    if prefix_kind == "file":
        prefix.write_text("x")
    else:
        (prefix / "conda-meta").mkdir(parents=True)
    if prefix_kind == "other target":
        (prefix / "conda-meta" / "envspec.marker").write_text('{"created_by": "envspec", "target": "osx-64"}')
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["shell-hook", "linux-cuda", "--prefix", str(prefix)])
    assert code == ExitCode.USAGE and err.getvalue().count("\n") == 1


def test_the_default_shell_follows_shell() -> None:
    from envspec.cli.shell_hook import default_shell

    assert default_shell({"SHELL": "/usr/bin/fish"}) == "fish"
    assert default_shell({"SHELL": "/bin/zsh"}) == "zsh"
    assert default_shell({"SHELL": "/usr/local/bin/pwsh"}) == "powershell"
    assert default_shell({"SHELL": "/bin/tcsh"}) == ("cmd" if os.name == "nt" else "bash")
