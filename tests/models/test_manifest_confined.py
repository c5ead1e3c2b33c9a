"""A model folder's manifest names files inside the folder only (issue #21, family 1).

``models pull`` deletes files a previous pull recorded and the lockfile no longer names: a manifest
(``models/<name>/.envspec-model.json``, a file anyone can edit or ship) with ``../`` or absolute
``dest`` entries must never make it delete anything outside the folder. And the Hub listing's
parser turns any shape of server answer into a RemoteFile or one ToolFailed, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envspec.errors import ExitCode, ToolFailed
from envspec.models import hub, local
from envspec.models.plan import ModelsPlanError, check_path

from .conftest import Project
from .test_models_hub import FP16, setup_repo


def _manifest(folder: Path, dests: list[object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = [{"dest": d, "size": 1, "digest": "sha256:" + "0" * 64, "mtime_ns": 1} for d in dests]
    data = {"schema": local.MANIFEST_SCHEMA, "name": "tiny", "repo": "a/b", "commit": "", "load": ".", "files": files}
    (folder / local.MANIFEST).write_text(json.dumps(data))


@pytest.mark.parametrize(
    "dest", ["../victim", "/etc/passwd", "a/../../victim", "C:\\x", "..", "a\\..\\..\\v", "ok/\u202ex", "", 7]
)
def test_a_manifest_naming_a_file_outside_its_folder_is_not_trusted(tmp_path: Path, dest: object) -> None:
    _manifest(tmp_path / "m", ["unet/config.json", dest])
    assert local.read_manifest(tmp_path / "m") is None


def test_a_plain_manifest_is_read(tmp_path: Path) -> None:
    _manifest(tmp_path / "m", ["unet/config.json", "model_index.json"])
    manifest = local.read_manifest(tmp_path / "m")
    assert manifest is not None and set(manifest.files) == {"unet/config.json", "model_index.json"}


def test_inside_refuses_a_path_through_a_symlink_out(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "link").symlink_to(tmp_path)
    assert local.inside(tmp_path / "m", "link/victim") is None
    assert local.inside(tmp_path / "m", "sub/file") == tmp_path / "m" / "sub" / "file"


@given(st.lists(st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=4))
def test_whatever_a_manifest_names_read_manifest_is_safe(dests: list[object]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        _manifest(folder, dests)
        manifest = local.read_manifest(folder)
        if manifest is None:
            return
        for dest in manifest.files:
            assert check_path(dest) == dest
            assert local.inside(folder, dest) is not None


_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=70),
    st.sampled_from(["0" * 40, "a" * 64, "../../x", "unet/\x9bx", "model.safetensors"]),
)


@given(name=_value, size=_value, blob=_value, lfs=st.none() | st.tuples(_value, _value))
def test_the_hub_listing_parser_gives_a_file_or_one_line(name: object, size: object, blob: object, lfs: object) -> None:
    lfs_info = None if lfs is None else SimpleNamespace(size=lfs[0], sha256=lfs[1])  # type: ignore[index]
    sibling = SimpleNamespace(rfilename=name, size=size, blob_id=blob, lfs=lfs_info)
    try:
        got = hub._remote_file(sibling, "listing")
    except ToolFailed as exc:
        assert "\n" not in exc.one_line() and exc.one_line().isprintable()
        return
    assert isinstance(got.path, str) and isinstance(got.size, int) and 0 <= got.size < 2**53
    assert (got.sha256 is None) != (got.git_sha1 is None)
    try:  # the planner's own check decides about the name; it never crashes either
        check_path(got.path)
    except ModelsPlanError as exc:
        assert str(exc).isprintable()


@pytest.mark.integration
def test_pull_never_deletes_what_a_hostile_manifest_names_outside(project: Project) -> None:
    setup_repo(project, **FP16)
    assert project.run("lock").code == 0
    assert project.run("pull").code == 0
    folder = project.root / "models" / "tiny"
    victim = project.root / "victim.txt"
    victim.write_text("precious")
    data = json.loads((folder / local.MANIFEST).read_text())
    for dest in ("../../victim.txt", str(victim)):
        data["files"].append({"dest": dest, "size": 8, "digest": "sha256:" + "0" * 64, "mtime_ns": 1})
    (folder / local.MANIFEST).write_text(json.dumps(data))
    result = project.run("pull")
    assert result.code == 0, result.text
    assert victim.read_text() == "precious"


@pytest.mark.integration
def test_pull_never_writes_through_a_link_out_of_the_model_folder(project: Project) -> None:
    # a checkout (or anyone) may ship models/tiny/unet as a symlink: the pull would place the locked
    # file, under the lockfile's name, wherever it points
    setup_repo(project, unet_size=1 << 16, **FP16)
    assert project.run("lock").code == 0
    outside = project.root.parent / "outside"
    outside.mkdir()
    folder = project.root / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "unet").symlink_to(outside, target_is_directory=True)
    result = project.run("pull")
    assert result.code == ExitCode.INTEGRITY, result.text
    assert "is a link out of the model's folder" in result.err.splitlines()[-1]
    assert list(outside.iterdir()) == []
