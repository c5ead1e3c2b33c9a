"""`envspec models lock|pull --json` against the local Hub-compatible server, in child processes: stdout is
exactly one document valid against the shipped schema, errors included; and the offline tips agree."""

from __future__ import annotations

import pytest
from jsondocs import only_document

from envspec.errors import ExitCode

from .conftest import REPO_ID, Project, entry_yaml, sd_like_files

pytestmark = pytest.mark.integration


def test_models_lock_and_pull_json(project: Project) -> None:
    commit = project.hub.commit(REPO_ID, sd_like_files(1 << 20))
    project.write_spec(entry_yaml(variant="fp16"))
    locked = project.run("lock", "--json")
    assert locked.code == 0, locked.text
    doc = only_document(locked.out, "models-lock")
    (model,) = doc["models"]
    assert (model["name"], model["status"], model["commit"], model["repo"]) == ("tiny", "locked", commit, REPO_ID)
    assert doc["written"] and doc["lockfile"] == "lockfiles/models.lock.yml" and model["files"] > 0
    check = project.run("lock", "--check", "--json")
    assert check.code == 0, check.text
    assert only_document(check.out, "models-lock")["check"] is True
    pulled = project.run("pull", "--json")
    assert pulled.code == 0, pulled.text
    (model,) = only_document(pulled.out, "models-pull")["models"]
    assert model["commit"] == commit and model["fetched"] > 0 and model["folder"] == "models/tiny"
    again = project.run("pull", "--json")
    (model,) = only_document(again.out, "models-pull")["models"]
    assert model["fetched"] == 0 and model["kept"] > 0 and model["received_bytes"] == 0


def test_locking_from_an_unreachable_hub_is_an_error_document_whose_tip_agrees_with_the_docs(
    project: Project,
) -> None:
    project.write_spec(entry_yaml())
    project.hub.stop()
    down = project.run("lock", "--json")
    assert down.code == ExitCode.CHANNEL_UNREACHABLE, down.text
    doc = only_document(down.out, "error")
    assert doc["exit_code"] == ExitCode.CHANNEL_UNREACHABLE
    assert "HF_HUB_OFFLINE=1 does not help" in doc["tip"]  # docs/models.md: `lock` fails under HF_HUB_OFFLINE=1
    offline = project.run("lock", "--json", HF_HUB_OFFLINE="1")
    assert offline.code == ExitCode.CHANNEL_UNREACHABLE, offline.text
    tip = only_document(offline.out, "error")["tip"]
    assert tip.startswith("unset HF_HUB_OFFLINE: locking") and "lock --check` works offline" in tip
    assert "HF_HOME" not in tip  # a cache cannot stand in for the Hub when locking
