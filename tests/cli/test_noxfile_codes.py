"""nox ends a failed session with exit status 1 whatever the command's code (#22): the noxfile's
envspec sessions say envspec's own code and its meaning instead of hiding it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nox
import pytest
from test_noxfile import FakeSession, _noxfile


class Failing(FakeSession):
    def __init__(self, posargs: list[str], tmp: Path, code: int) -> None:
        super().__init__(posargs, tmp)
        self.code = code

    def run(self, *args: str, **_: Any) -> None:
        self.calls.append(args)
        raise nox.command.CommandFailed(f"Returned code {self.code}", return_code=self.code)


@pytest.mark.parametrize(("code", "meaning"), [(4, "unsatisfiable"), (5, "channel unreachable"), (1, "check failed")])
def test_a_failed_envspec_command_names_its_exit_code(repo: Path, tmp_path: Path, code: int, meaning: str) -> None:
    session = Failing(["--target", "linux-cpu"], tmp_path, code)
    with pytest.raises(AssertionError) as info:  # FakeSession.error: nox's session.error
        _noxfile(repo).lock(session)
    message = str(info.value)
    assert message.startswith(f"`envspec render` exited {code} ({meaning})")
    assert "nox reports every failed session as exit 1" in message
    assert session.calls == [("envspec", "render")]  # it stopped there
