"""`envspec pack` and `envspec install --from`: carry an environment to a machine without network.

The bundle is packed from the real lock of the local channel through a local HTTP mirror (see
conftest.built_env); the mirror is then gone, and no network is reachable (proxies point at a
closed port), so ``install --from`` can only use the bundle. Tampered bundles must be refused
like a tampered download: exit 7, nothing installed, nothing left behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Built, envspec, serve
from jsondocs import only_document

from envspec.errors import ExitCode
from envspec.install.plan import parse_lock

pytestmark = pytest.mark.integration

#: Nothing outside this machine is reachable during an install --from (a closed local port).
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
#: conda-meta fields that name where a package was fetched from or unpacked, not what it is.
WHERE = ("url", "channel", "extracted_package_dir", "package_tarball_full_path", "link")


@pytest.fixture(scope="module")
def bundle(built_env: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "sd linux-cuda.tar"
    with serve(built_env.channel) as url:
        proc = envspec(built_env.project, "pack", "linux-cuda", "-o", str(out), "--mirror", f"conda-forge={url}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"packed {out}: ") and f"({out.stat().st_size} bytes)" in proc.stdout
    assert "no lockfiles/models.lock.yml: no models in the bundle" in proc.stderr
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary folder left
    return out


def records(prefix: Path) -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")}


def files(prefix: Path) -> list[str]:
    return sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if "conda-meta" not in p.parts)


def test_pack_then_install_from_without_network_gives_the_same_environment(
    built_env: Built, bundle: Path, tmp_path: Path
) -> None:
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(names[0]).read())  # type: ignore[union-attr]
    lock = parse_lock((built_env.project / "lockfiles" / "linux-cuda.lock").read_text(), "x")
    assert names[0] == "envspec-bundle.json" and manifest["target"] == "linux-cuda"
    assert {f"conda/{e.filename}" for e in lock.entries} <= set(names)
    assert {"lockfiles/linux-cuda.lock", "lockfiles/linux-cuda.conda-lock.yml"} <= set(names)
    assert sorted(f["path"] for f in manifest["files"]) == sorted(names[1:])

    prefix = tmp_path / "offline-env"
    proc = envspec(built_env.project, "install", "linux-cuda", "--from", str(bundle), "--prefix", str(prefix),
                   "--cache-dir", str(tmp_path / "fresh-cache"), env=OFFLINE)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "bundle lockfiles match this project's" in proc.stderr
    assert f"use it: envspec run --prefix {prefix} -- python" in proc.stderr  # not `conda activate`
    assert proc.stdout.startswith(f"created {prefix}: {len(lock.entries)} packages of linux-cuda")
    before, after = records(built_env.prefix), records(prefix)
    assert set(after) == set(before)
    for name, record in after.items():
        assert {k: v for k, v in record.items() if k not in WHERE} == {
            k: v for k, v in before[name].items() if k not in WHERE
        }, name
        assert record["link"]["type"] == before[name]["link"]["type"]  # type: ignore[index]
    by_stem = {e.stem: e for e in lock.entries}
    for name, record in after.items():  # recorded under the locked URL, not the bundle's temporary file
        assert record["url"] == by_stem[name.removesuffix(".json")].url
    assert files(prefix) == files(built_env.prefix)
    state = json.loads((prefix / "conda-meta" / "state").read_text())
    assert state == json.loads((built_env.prefix / "conda-meta" / "state").read_text())
    assert not list((tmp_path / "fresh-cache" / ".envspec").glob("bundle-*"))  # unpacked copy removed
    run = envspec(built_env.project, "run", "-p", str(prefix), "--", "python", "-c",
                  "import os; print(os.environ['ENVSPEC_TEST_ACTIVATED'])", env=OFFLINE)  # fmt: skip
    assert run.returncode == 0 and run.stdout == "set by activate.d\n", run.stderr
    # --json: stdout is the install document (docs/json.md), as for an install from a lockfile
    again = envspec(built_env.project, "install", "linux-cuda", "--from", str(bundle), "--json",
                    "--prefix", str(tmp_path / "json-env"), env=OFFLINE)  # fmt: skip
    assert again.returncode == 0, again.stderr
    doc = only_document(again.stdout, "install")  # one line, valid against the shipped schema
    assert doc["target"] == "linux-cuda" and doc["lockfile"] == str(bundle)


def _rewrite(
    src: Path, dest: Path, edit: Callable[[tarfile.TarInfo, bytes], list[tuple[tarfile.TarInfo, bytes]]]
) -> None:
    with tarfile.open(src) as old, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as new:
        for info in old.getmembers():
            data = old.extractfile(info).read() if info.isreg() else b""  # type: ignore[union-attr]
            for out_info, out_data in edit(info, data):
                new.addfile(out_info, io.BytesIO(out_data) if out_info.isreg() else None)


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = (len(data) if kind == tarfile.REGTYPE else 0), kind, link
    return info


def _first_conda(names: list[str]) -> str:
    return next(n for n in names if n.startswith("conda/pytorch-"))


def tamper(kind: str, src: Path, dest: Path) -> None:
    with tarfile.open(src) as tar:
        names = tar.getnames()
        victim = tar.getmember(_first_conda(names))
    if kind == "changed byte":
        data = bytearray(src.read_bytes())
        data[victim.offset_data + victim.size // 2] ^= 0x01
        dest.write_bytes(bytes(data))
    elif kind == "truncated":
        dest.write_bytes(src.read_bytes()[: victim.offset_data + victim.size // 2])
    elif kind == "not a tar":
        dest.write_bytes(b"\x00garbage" * 1000)
    elif kind == "member missing":
        last = names[-1]
        _rewrite(src, dest, lambda i, d: [] if i.name == last else [(i, d)])
    elif kind == "extra member":
        _rewrite(
            src,
            dest,
            lambda i, d: [(i, d)] + ([(_member("conda/extra.conda", b"x"), b"x")] if i.name == victim.name else []),
        )
    elif kind == "dotdot member":
        _rewrite(
            src, dest, lambda i, d: [(i, d)] + ([(_member("../escaped", b"x"), b"x")] if i.name == victim.name else [])
        )
    elif kind == "symlink member":
        link = _member(victim.name, kind=tarfile.SYMTYPE, link="/etc/passwd")
        link.size = victim.size  # as the manifest says: only the member's type gives it away
        _rewrite(src, dest, lambda i, d: [(link, b"")] if i.name == victim.name else [(i, d)])
    elif kind == "dotdot in manifest":

        def edit(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
            if info.name != "envspec-bundle.json":
                return [(info, data)]
            doc = json.loads(data)
            doc["files"][0]["path"] = "lockfiles/../../escaped"
            new = json.dumps(doc).encode()
            return [(_member(info.name, new), new)]

        _rewrite(src, dest, edit)
    elif kind == "package and manifest changed together":

        def swap(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
            import hashlib

            if info.name == victim.name:
                data = data[:-1] + bytes([data[-1] ^ 1])
                return [(_member(info.name, data), data)]
            if info.name == "envspec-bundle.json":
                doc = json.loads(data)
                with tarfile.open(src) as tar:
                    changed = tar.extractfile(victim).read()  # type: ignore[union-attr]
                changed = changed[:-1] + bytes([changed[-1] ^ 1])
                for f in doc["files"]:
                    if f["path"] == victim.name:
                        f["sha256"] = hashlib.sha256(changed).hexdigest()
                new = json.dumps(doc).encode()
                return [(_member(info.name, new), new)]
            return [(info, data)]

        _rewrite(src, dest, swap)
    else:
        raise AssertionError(kind)


#: Each way to tamper with a bundle, and the reason the refusal gives.
TAMPERED = {
    "changed byte": "does not match its sha256 in the manifest",
    "truncated": "not a complete tar file (unexpected end of data)",
    "not a tar": "not a complete tar file",
    "member missing": "missing (truncated?)",
    "extra member": "'conda/extra.conda' is not in its manifest",
    "dotdot member": "'../escaped' is not in its manifest",
    "symlink member": "is a link, folder or device, not a file",
    "dotdot in manifest": "has a '..' in its path",
    "package and manifest changed together": "does not match the lockfile's sha256",
}


@pytest.mark.parametrize("kind", list(TAMPERED))
def test_a_tampered_bundle_is_refused_and_nothing_installed(
    built_env: Built, bundle: Path, tmp_path: Path, kind: str
) -> None:
    bad = tmp_path / "work" / "bad.tar"
    bad.parent.mkdir()
    tamper(kind, bundle, bad)
    prefix, cache = tmp_path / "work" / "env", tmp_path / "work" / "cache"
    proc = envspec(built_env.project, "install", "linux-cuda", "--from", str(bad), "--prefix", str(prefix),
                   "--cache-dir", str(cache), env=OFFLINE)  # fmt: skip
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    assert "nothing was installed" in proc.stderr and "Traceback" not in proc.stderr
    assert TAMPERED[kind] in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not prefix.exists()
    assert not list((cache / ".envspec").glob("bundle-*"))  # the unpacked part is gone
    assert not list(tmp_path.rglob("escaped"))  # nothing written outside the unpack folder
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) in (["bad.tar"], ["bad.tar", "cache"])


def test_install_from_refuses_another_target_or_another_lockfile(
    built_env: Built, bundle: Path, tmp_path: Path
) -> None:
    other = envspec(
        built_env.project, "install", "osx-arm64", "--from", str(bundle), "-p", str(tmp_path / "e"), env=OFFLINE
    )
    assert other.returncode in (ExitCode.SPEC_INVALID, ExitCode.PLATFORM_MISMATCH), other.stderr
    assert "Traceback" not in other.stderr and not (tmp_path / "e").exists()
    project = tmp_path / "proj"
    shutil.copytree(built_env.project, project)
    lockfile = project / "lockfiles" / "linux-cuda.lock"
    lockfile.write_text(lockfile.read_text() + "\n")
    moved = envspec(project, "install", "linux-cuda", "--from", str(bundle), "-p", str(tmp_path / "e"), env=OFFLINE)
    assert moved.returncode == ExitCode.INTEGRITY, moved.stderr
    assert "packed from another lockfiles/linux-cuda.lock" in moved.stderr
    missing = envspec(project, "install", "linux-cuda", "--from", str(tmp_path / "nope.tar"), "-p", str(tmp_path / "e"))
    assert missing.returncode == ExitCode.SPEC_INVALID and "does not exist" in missing.stderr
    assert not (tmp_path / "e").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]


def _with_pulled_model(project: Path, *, pulled: bool = True) -> dict[str, bytes]:
    """A models.lock.yml pinning model ``tiny`` (one LFS file by sha256, one git file by blob id),
    and, when ``pulled``, its files in models/tiny/ as `envspec models pull` leaves them."""
    from envspec.models import local, lockfile
    from envspec.models.lockfile import LockedFile, LockedModel
    from envspec.project import Project

    content = {"unet/weights.safetensors": b"\x00weights" * 1000, "model_index.json": b'{"_class_name": "x"}\n'}
    weights, index = content["unet/weights.safetensors"], content["model_index.json"]
    blob = hashlib.sha1(b"blob %d\0" % len(index) + index, usedforsecurity=False).hexdigest()
    files = [
        LockedFile(path="unet/weights.safetensors", size=len(weights), sha256=hashlib.sha256(weights).hexdigest()),
        LockedFile(path="model_index.json", size=len(index), git_sha1=blob),
    ]
    model = LockedModel(
        repo="example/tiny", revision="main", commit="a" * 40, layout="diffusers", license="MIT", load=".",
        input_hash="sha256:" + "b" * 64, size=sum(f.size for f in files), files=files,
    )  # fmt: skip
    proj = Project(project)
    lockfile.write(local.lockfile_path(proj), lockfile.build({"tiny": model}))
    if pulled:
        folder = local.model_dir(proj, "tiny")
        records = {}
        for rel, data in content.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
            f = next(f for f in files if f.target == rel)
            records[rel] = local.ManifestFile(rel, f.size, f.digest, (folder / rel).stat().st_mtime_ns)
        local.write_manifest(folder, local.Manifest("tiny", model.repo, model.commit, model.load, records))
        assert local.pulled_model_path(proj, "tiny") == folder
    return content


def test_pulled_models_travel_in_the_bundle(built_env: Built, tmp_path: Path) -> None:
    from envspec.models import local
    from envspec.project import Project

    source = tmp_path / "source"
    shutil.copytree(built_env.project, source)
    content = _with_pulled_model(source)
    out = tmp_path / "b.tar"
    with serve(built_env.channel) as url:
        proc = envspec(source, "pack", "linux-cuda", "-o", str(out), "--mirror", f"conda-forge={url}")
        assert proc.returncode == 0, proc.stderr
        assert "2 model files" in proc.stdout and "1 model(s) in the bundle" in proc.stderr
        # a pulled file changed since (same size): the pack stops, and writes no bundle
        weights = source / "models" / "tiny" / "unet" / "weights.safetensors"
        weights.write_bytes(weights.read_bytes()[:-1] + b"!")
        changed = envspec(source, "pack", "linux-cuda", "-o", str(tmp_path / "c.tar"), "--mirror", f"conda-forge={url}")
        assert changed.returncode == ExitCode.INTEGRITY and "does not match its lockfile sha256" in changed.stderr
        assert not (tmp_path / "c.tar").exists() and not list(tmp_path.glob(".envspec-pack-*"))
        # not pulled: packed without them, and it says so
        shutil.rmtree(source / "models")
        bare = envspec(source, "pack", "linux-cuda", "-o", str(tmp_path / "d.tar"), "--mirror", f"conda-forge={url}")
        assert bare.returncode == 0 and "models not pulled, left out: tiny" in bare.stderr
    # the offline machine: the same lockfiles (models.lock.yml too), no models yet
    target = tmp_path / "target"
    shutil.copytree(source, target)
    proc = envspec(target, "install", "linux-cuda", "--from", str(out), "-p", str(tmp_path / "env"),
                   "--cache-dir", str(tmp_path / "cache"), env=OFFLINE)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "models: tiny placed in models/tiny" in proc.stderr
    folder = local.pulled_model_path(Project(target), "tiny")  # counts as pulled: manifest and files agree
    assert folder is not None
    assert {rel: (folder / rel).read_bytes() for rel in content} == content

    # a git-pinned model file changed in the bundle, its manifest entry changed to match: the
    # project's models.lock.yml still catches it, before anything is installed
    def edit(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == "models/tiny/model_index.json":
            return [(_member(info.name, b'{"_class_name": "y"}\n'), b'{"_class_name": "y"}\n')]
        if info.name == "envspec-bundle.json":
            doc = json.loads(data)
            for f in doc["files"]:
                if f["path"] == "models/tiny/model_index.json":
                    f["sha256"] = hashlib.sha256(b'{"_class_name": "y"}\n').hexdigest()
            new = json.dumps(doc).encode()
            return [(_member(info.name, new), new)]
        return [(info, data)]

    _rewrite(out, tmp_path / "bad.tar", edit)
    again = tmp_path / "again"
    shutil.copytree(source, again)
    proc = envspec(again, "install", "linux-cuda", "--from", str(tmp_path / "bad.tar"), "-p", str(tmp_path / "env2"),
                   "--cache-dir", str(tmp_path / "cache"), env=OFFLINE)  # fmt: skip
    assert proc.returncode == ExitCode.INTEGRITY, proc.stderr
    assert "models/tiny/model_index.json does not match lockfiles/models.lock.yml" in proc.stderr
    assert not (tmp_path / "env2").exists() and not (again / "models").exists()


def test_a_killed_pack_leaves_no_bundle_and_the_next_one_cleans_up(built_env: Built, tmp_path: Path) -> None:
    """SIGKILL while packing: no half-written bundle appears (it is renamed into place whole), and
    the next pack removes the temporary folder the killed one left."""
    out = tmp_path / "out" / "b.tar"
    with serve(built_env.channel) as url:
        environ = {k: v for k, v in os.environ.items() if k != "ENVSPEC_MIRRORS"}
        environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        child = subprocess.Popen(
            [sys.executable, "-m", "envspec", "--spec", str(built_env.project / "envspec.yml"), "pack", "linux-cuda",
             "-o", str(out), "--mirror", f"conda-forge={url}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environ,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while child.poll() is None and not list(out.parent.glob(".envspec-pack-*")):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=60)
        if out.exists():  # killed after the rename: the bundle is whole
            with tarfile.open(out) as tar:
                assert tar.getnames()[0] == "envspec-bundle.json"
        leftovers = list(out.parent.glob(".envspec-pack-*"))
        again = envspec(built_env.project, "pack", "linux-cuda", "-o", str(out), "--mirror", f"conda-forge={url}")
    assert again.returncode == 0, again.stderr
    assert [p.name for p in out.parent.iterdir()] == ["b.tar"]  # the killed run's folder is gone too
    assert all(not p.exists() for p in leftovers)
