"""The PyPI half of an install fetches through the one downloader: confined, bounded, credentials kept home.

Issue #21 families 1, 2 and 4 on the wheel path: a ``%2F``/``..%2F`` file name in a lockfile URL, a
FIFO or ``/dev/zero`` behind ``file://``, an endless body, and a pypi mirror redirecting to a CDN.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec.errors import ChannelUnreachable, ExitCode, IntegrityError
from envspec.install import pip as install_pip
from envspec.settings import FetchLimits

WHEEL = b"PK\x05\x06" + b"\0" * 18
SHA = hashlib.sha256(WHEEL).hexdigest()


def _plan(url: str, sha: str = SHA, auth: tuple[str, str, str] | None = None) -> install_pip.PipPlan:
    return install_pip.PipPlan((install_pip.PipWheel("demo", "1.0", url, sha),), "lockfiles/t.pip.txt", auth)


@pytest.mark.parametrize("escape", ["..%2F..%2Fvictim.whl", "%2F{victim}", "..%2Fvictim.whl", "%2E%2E"])
def test_an_encoded_path_in_a_lock_url_never_writes_or_deletes_outside(tmp_path: Path, escape: str) -> None:
    victim = tmp_path / "victim.whl"
    victim.write_bytes(b"precious")
    served = tmp_path / "served"
    served.mkdir()
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    name = escape.replace("{victim}", quote(str(victim), safe=""))
    # A file:// URL whose last segment decodes to a path outside dest (the hash does not match either)
    url = f"{served.as_uri()}/{name}"
    with pytest.raises(IntegrityError, match="not a plain file name") as info:
        install_pip.fetch(_plan(url, sha="0" * 64), dest, lambda _: None)
    assert info.value.exit_code == ExitCode.INTEGRITY
    assert victim.read_bytes() == b"precious" and list(dest.iterdir()) == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=st.text(alphabet=st.sampled_from(list("./%2Fa\\:.eE5C")), min_size=1, max_size=16))
def test_whatever_the_url_names_the_file_lands_in_its_folder(tmp_path: Path, segment: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    url = f"{source.as_uri()}/{segment}"
    try:
        got = install_pip.fetch(_plan(url, sha="0" * 64), dest, lambda _: None)
    except (IntegrityError, ChannelUnreachable):
        got = []
    assert got == [] and list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.skipif(os.name != "posix", reason="devices and FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
def test_a_wheel_url_naming_a_device_or_fifo_is_refused(tmp_path: Path, kind: str) -> None:
    # should the refusal ever break, the test must still end and never fill the disk: /dev/zero stops
    # at a 1 MiB cap, and a late writer unblocks a FIFO a blocking open would wait on forever
    limits = FetchLimits(max_package_bytes=1 << 20)
    unblock = None
    if kind == "fifo":
        source = tmp_path / "demo-1.0-py3-none-any.whl"
        os.mkfifo(source)
        url = source.as_uri()
        unblock = threading.Timer(30, lambda: os.close(os.open(source, os.O_WRONLY | os.O_NONBLOCK)))
        unblock.daemon = True
        unblock.start()
    else:
        url = "file:///dev/zero"
    dest = tmp_path / "dest"
    dest.mkdir()
    try:
        with pytest.raises(ChannelUnreachable, match="not a regular file"):
            install_pip.fetch(_plan(url), dest, lambda _: None, limits)
    finally:
        if unblock is not None:
            unblock.cancel()
    assert list(dest.iterdir()) == []


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]
    other: str
    stop: threading.Event

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/simple/"):  # the mirror sends the file to its CDN
            self.send_response(302)
            self.send_header("Location", f"{self.other}/cdn/demo-1.0-py3-none-any.whl")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/endless/"):
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(4096):
                if self.stop.is_set():
                    break
                try:
                    self.wfile.write(b"z" * 65536)
                except OSError:
                    break
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(WHEEL)))
            self.end_headers()
            self.wfile.write(WHEEL)


@pytest.fixture
def two_origins() -> Iterator[tuple[str, list[tuple[str, str | None]], str, list[tuple[str, str | None]]]]:
    stop = threading.Event()
    made = []
    for _ in range(2):
        seen: list[tuple[str, str | None]] = []
        handler = type("H", (_Handler,), {"seen": seen, "other": "", "stop": stop})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # type: ignore[method-assign]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        made.append((server, handler, seen, f"http://127.0.0.1:{server.server_address[1]}"))
    made[0][1].other, made[1][1].other = made[1][3], made[0][3]  # type: ignore[attr-defined]
    try:
        yield made[0][3], made[0][2], made[1][3], made[1][2]
    finally:
        stop.set()
        for server, *_ in made:
            server.shutdown()
            server.server_close()


def test_the_mirror_credentials_never_reach_the_cdn_it_redirects_to(
    tmp_path: Path, two_origins: tuple[str, list[tuple[str, str | None]], str, list[tuple[str, str | None]]]
) -> None:
    mirror, mirror_seen, _, cdn_seen = two_origins
    netloc = mirror.removeprefix("http://")
    got = install_pip.fetch(
        _plan(f"{mirror}/simple/demo-1.0-py3-none-any.whl", auth=(netloc, "u", "s3cret")), tmp_path, lambda _: None
    )
    assert [p.name for p in got] == ["demo-1.0-py3-none-any.whl"]
    assert mirror_seen[0][1] is not None and mirror_seen[0][1].startswith("Basic ")
    assert cdn_seen == [("/cdn/demo-1.0-py3-none-any.whl", None)]


def test_an_endless_wheel_body_stops_at_the_size_cap(
    tmp_path: Path, two_origins: tuple[str, list[tuple[str, str | None]], str, list[tuple[str, str | None]]]
) -> None:
    mirror, *_ = two_origins
    limits = FetchLimits(max_package_bytes=300000)  # ENVSPEC_MAX_PACKAGE_BYTES
    with pytest.raises(IntegrityError, match="larger than the 300000 byte cap") as info:
        install_pip.fetch(_plan(f"{mirror}/endless/demo-1.0-py3-none-any.whl"), tmp_path, lambda _: None, limits)
    assert "ENVSPEC_MAX_PACKAGE_BYTES" in info.value.message and list(tmp_path.iterdir()) == []


def test_conda_mirror_credentials_never_reach_the_origin_it_redirects_to(
    tmp_path: Path, two_origins: tuple[str, list[tuple[str, str | None]], str, list[tuple[str, str | None]]]
) -> None:
    from envspec import channels
    from envspec.install.fetch import fetch_all
    from envspec.install.plan import ExplicitLock, LockEntry

    mirror, mirror_seen, _, cdn_seen = two_origins
    channels.forget_all()
    try:
        (url,) = channels.parse_mirrors((), f"conda-forge={mirror.replace('://', '://alice:s3cret@')}").values()
        package = f"{url}/simple/demo-1.0-h_0.conda"  # the mirror redirects it to the other origin
        entry = LockEntry(url=package, md5=hashlib.md5(WHEEL).hexdigest())
        (got,) = fetch_all(ExplicitLock("linux-64", (entry,)), (package,), tmp_path / "cache", lambda _: None)
    finally:
        channels.forget_all()
    assert got.sha256 == SHA
    assert mirror_seen[0][1] == "Basic YWxpY2U6czNjcmV0"  # alice:s3cret, to the mirror itself
    assert [auth for _, auth in cdn_seen] == [None]
