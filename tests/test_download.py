"""The one downloader (envspec.download) against real local HTTP servers that misbehave.

Every server runs on 127.0.0.1 (port 0) in daemon threads; each handler is bounded in time and
bytes and stops when the test's ``stop`` event is set. Nothing here measures time: a bound is
asserted by counting (requests a server saw, bytes written), or by a download that ends at all.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envspec import download
from envspec.download import Downloader, DownloadError, Limits, Refused, Stalled, TooLarge
from envspec.settings import positive_number

HANDLER_LIMIT_S = 20.0
BODY = bytes(range(256)) * 1024  # 256 KiB
SHA = hashlib.sha256(BODY).hexdigest()
# Limits for the tests, back-off tiny. A transfer meant to succeed (or to fail otherwise than by a
# stall) gets a stall window no loaded machine reaches; the tests of stalls use FAST: a stall is
# 0.3 s without STALL_MIN_BYTES (a starved machine only makes that more certain).
GOOD = Limits(max_bytes=1 << 20, stall_s=60, backoff_s=0.01, retry_after_cap_s=2.0)
FAST = Limits(max_bytes=1 << 20, stall_s=0.3, backoff_s=0.01, retry_after_cap_s=2.0)


@dataclass
class Seen:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, headers: dict[str, str]) -> int:
        with self.lock:
            self.requests.append((path, headers))
            self.times.append(time.monotonic())
            self.counts[path] = self.counts.get(path, 0) + 1
            return self.counts[path]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    stop: threading.Event
    seen: Seen
    other: str  # the base URL of the other origin

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        n = self.seen.add(self.path, {k.lower(): v for k, v in self.headers.items()})
        route = self.path.split("/")[1]
        getattr(self, f"r_{route.replace('-', '_')}", self.r_missing)(n)

    def _send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _hold(self) -> None:
        deadline = time.monotonic() + HANDLER_LIMIT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.stop.wait(0.05)
        self.close_connection = True

    def r_missing(self, n: int) -> None:
        self._send_body(404, b"no")

    def r_ok(self, n: int) -> None:
        self._send_body(200, BODY)

    def r_trickle(self, n: int) -> None:  # one byte every 50 ms: never silent for a read time-out
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        deadline = time.monotonic() + HANDLER_LIMIT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                break
            self.stop.wait(0.05)
        self.close_connection = True

    def r_slowheaders(self, n: int) -> None:  # a status line, then one header byte every 50 ms, forever
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        deadline = time.monotonic() + HANDLER_LIMIT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.wfile.write(b"a")
                self.wfile.flush()
            except OSError:
                break
            self.stop.wait(0.05)
        self.close_connection = True

    def r_endless(self, n: int) -> None:  # no Content-Length, never ends
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        block = b"z" * 65536
        deadline = time.monotonic() + HANDLER_LIMIT_S
        for _ in range(4096):
            if self.stop.is_set() or time.monotonic() > deadline:
                break
            try:
                self.wfile.write(block)
            except OSError:
                break
        self.close_connection = True

    def r_busy(self, n: int) -> None:  # 503, Retry-After: 100000 (about 28 hours)
        self._send_body(503, b"busy", {"Retry-After": "100000"})

    def r_flaky(self, n: int) -> None:  # 503 twice (Retry-After: 0), then the file
        if n <= 2:
            self._send_body(503, b"busy", {"Retry-After": "0"})
        else:
            self._send_body(200, BODY)

    def r_later(self, n: int) -> None:  # 503, Retry-After: 1, then the file
        if n == 1:
            self._send_body(503, b"busy", {"Retry-After": "1"})
        else:
            self._send_body(200, BODY)

    def r_down(self, n: int) -> None:  # always 500
        self._send_body(500, b"down")

    def r_norange(self, n: int) -> None:  # ignores Range, sends 100 KiB then stalls: resumed, bounded
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY[: 100 * 1024])
        self.wfile.flush()
        self._hold()

    def r_breaks(self, n: int) -> None:  # breaks off after 100 KiB; honours Range
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) - start))
        self.end_headers()
        if start == 0:
            self.wfile.write(BODY[: 100 * 1024])
            self.close_connection = True
            return
        self.wfile.write(BODY[start:])

    def r_away(self, n: int) -> None:  # redirect to the other origin
        self._send_body(302, b"", {"Location": f"{self.other}/ok/x"})

    def r_home(self, n: int) -> None:  # redirect within this origin
        self._send_body(302, b"", {"Location": "/ok/y"})

    def r_tofile(self, n: int) -> None:
        self._send_body(302, b"", {"Location": "file:///etc/passwd"})

    def r_badloc(self, n: int) -> None:  # a Location http.client cannot send, or whose host is broken
        where = {"/badloc/space": "/a b", "/badloc/ipv6": "http://[::1/x", "/badloc/port": "http://h:99999/x"}
        self._send_body(302, b"", {"Location": where[self.path]})

    def r_loop(self, n: int) -> None:
        self._send_body(302, b"", {"Location": f"/loop/{n}"})

    def r_big(self, n: int) -> None:  # announces more than any cap
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 40))
        self.end_headers()
        self.close_connection = True


@dataclass
class Server:
    url: str
    seen: Seen


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    stop = threading.Event()
    made: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []
    out: list[Server] = []
    for _ in range(2):
        seen = Seen()
        handler = type("H", (Handler,), {"stop": stop, "seen": seen, "other": ""})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # type: ignore[method-assign]  # a client that hung up
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        made.append((server, thread))
        out.append(Server(f"http://127.0.0.1:{server.server_address[1]}", seen))
        out[-1].handler = handler  # type: ignore[attr-defined]
    out[0].handler.other = out[1].url  # type: ignore[attr-defined]
    out[1].handler.other = out[0].url  # type: ignore[attr-defined]
    try:
        yield out[0], out[1]
    finally:
        stop.set()
        for server, thread in made:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _fetch(url: str, dest: Path, limits: Limits = GOOD, **kw: object) -> download.Downloaded:
    dest.mkdir(exist_ok=True)
    with Downloader(limits, **kw) as d:  # type: ignore[arg-type]
        return d.fetch(url, dest, "f.bin")


def _only(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir())


# --- the good path, pooled -------------------------------------------------------------------


def test_downloads_are_hashed_and_connections_kept_alive(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with Downloader(GOOD) as d:
        for i in range(5):
            got = d.fetch(f"{a.url}/ok/{i}", tmp_path, f"f{i}.bin")
            assert got.sha256 == SHA and got.size == len(BODY) and got.path.read_bytes() == BODY
        assert d.connections_opened == 1  # one keep-alive connection served all five
    assert _only(tmp_path) == [f"f{i}.bin" for i in range(5)]


def test_a_broken_body_is_resumed_with_range(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    got = _fetch(f"{a.url}/breaks/x", tmp_path)
    assert got.sha256 == SHA
    ranges = [h.get("range") for p, h in a.seen.requests]
    assert ranges == [None, f"bytes={100 * 1024}-"]


def test_retries_honour_a_short_retry_after(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    assert _fetch(f"{a.url}/flaky/x", tmp_path).sha256 == SHA
    assert a.seen.counts["/flaky/x"] == 3


# --- bounds ------------------------------------------------------------------------------------


def test_a_retry_after_within_the_cap_is_waited_for(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    assert _fetch(f"{a.url}/later/x", tmp_path).sha256 == SHA
    assert a.seen.times[1] - a.seen.times[0] >= 0.95  # a lower bound: a busy machine only adds to it


def test_retry_after_100000_gives_up_at_once(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(DownloadError, match="retry after 100000 s, more than the 2 s"):
        _fetch(f"{a.url}/busy/x", tmp_path)
    assert a.seen.counts["/busy/x"] == 1 and _only(tmp_path) == []


def test_server_errors_are_retried_a_bounded_number_of_times(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(DownloadError, match="HTTP 500"):
        _fetch(f"{a.url}/down/x", tmp_path)
    assert a.seen.counts["/down/x"] == GOOD.retries + 1


def test_a_trickle_is_a_stall(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(Stalled):
        _fetch(f"{a.url}/trickle/x", tmp_path, FAST)
    assert a.seen.counts["/trickle/x"] == 1  # no progress worth resuming
    assert _only(tmp_path) == []


def test_headers_trickling_in_forever_are_a_stall(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(Stalled, match="no complete answer"):
        _fetch(f"{a.url}/slowheaders/x", tmp_path, FAST)
    assert a.seen.counts["/slowheaders/x"] == 1 and _only(tmp_path) == []


def test_a_server_ignoring_range_and_stalling_is_resumed_at_most_resumes_times(
    servers: tuple[Server, Server], tmp_path: Path
) -> None:
    a, _ = servers
    with pytest.raises(Stalled):
        _fetch(f"{a.url}/norange/x", tmp_path, FAST)
    assert a.seen.counts["/norange/x"] == FAST.resumes + 1
    assert all(h.get("range") for _, h in a.seen.requests[1:])
    assert _only(tmp_path) == []


@pytest.mark.parametrize("route", ["endless", "big"])
def test_an_endless_or_oversized_body_stops_at_the_cap(
    servers: tuple[Server, Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    a, _ = servers
    written = {"n": 0}
    real = download._Transfer.add

    def counting(self: download._Transfer, chunk: bytes) -> None:
        real(self, chunk)
        written["n"] += len(chunk)

    monkeypatch.setattr(download._Transfer, "add", counting)
    with pytest.raises(TooLarge):
        _fetch(f"{a.url}/{route}/x", tmp_path, Limits(max_bytes=300_000, stall_s=60))
    assert written["n"] <= 300_000 and _only(tmp_path) == []


def test_too_many_redirects_end(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(DownloadError, match="redirects"):
        _fetch(f"{a.url}/loop/0", tmp_path)
    assert len(a.seen.requests) == GOOD.max_redirects + 1


# --- credentials and redirects -----------------------------------------------------------------


def test_credentials_never_follow_a_redirect_to_another_origin(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = servers
    auth = {"Authorization": "Basic c2VjcmV0OnRva2Vu"}
    got = _fetch(f"{a.url}/away/x", tmp_path, headers_for=lambda url: auth)
    assert got.sha256 == SHA
    assert a.seen.requests[0][1]["authorization"] == auth["Authorization"]
    assert [h.get("authorization") for _, h in b.seen.requests] == [None]


def test_credentials_follow_a_redirect_within_the_origin(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    auth = {"Authorization": "Basic c2VjcmV0OnRva2Vu"}
    _fetch(f"{a.url}/home/x", tmp_path, headers_for=lambda url: auth)
    assert [h.get("authorization") for _, h in a.seen.requests] == [auth["Authorization"]] * 2


@pytest.mark.parametrize("kind", ["space", "ipv6", "port"])
def test_a_malformed_redirect_is_one_download_error(servers: tuple[Server, Server], tmp_path: Path, kind: str) -> None:
    a, _ = servers
    with pytest.raises(DownloadError, match="not a valid URL"):
        _fetch(f"{a.url}/badloc/{kind}", tmp_path)
    assert _only(tmp_path) == []


def test_a_redirect_to_file_is_refused(servers: tuple[Server, Server], tmp_path: Path) -> None:
    a, _ = servers
    with pytest.raises(Refused, match="file://"):
        _fetch(f"{a.url}/tofile/x", tmp_path)
    assert _only(tmp_path) == []


@pytest.mark.parametrize(
    ("one", "two", "same"),
    [
        ("http://h/x", "http://h:80/y", True),
        ("https://H/x", "https://h:443/y", True),
        ("http://h/x", "https://h/x", False),
        ("http://h/x", "http://h:8080/x", False),
        ("http://h/x", "http://h.evil/x", False),
        ("http://user:pw@h/x", "http://h/x", True),
    ],
)
def test_origin_is_scheme_host_and_port(one: str, two: str, same: bool) -> None:
    assert (download.origin(one) == download.origin(two)) is same


# --- file:// -------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="devices and FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_file_urls_read_regular_files_only(tmp_path: Path, kind: str) -> None:
    if kind == "dev-zero":
        source = Path("/dev/zero")
    elif kind == "fifo":
        source = tmp_path / "pipe"
        os.mkfifo(source)  # no writer: a blocking open would wait forever
    else:
        source = tmp_path
    with pytest.raises(Refused, match="not a regular file"):
        _fetch(source.as_uri(), tmp_path / "dest")
    assert _only(tmp_path / "dest") == []


def test_a_file_url_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    source = tmp_path / "big"
    with source.open("wb") as f:
        f.truncate(10 << 20)  # sparse
    with pytest.raises(TooLarge, match="10485760 bytes"):
        _fetch(source.as_uri(), tmp_path / "dest")


# --- names: decoded once, confined ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://h/simple/..%2F..%2Fevil.whl",
        "https://h/simple/%2Fetc%2Fpasswd",
        "https://h/simple/..",
        "https://h/simple/%2E%2E",
        "https://h/simple/a%5Cb.whl",
        "https://h/simple/C:evil.whl",
        "https://h/simple/x%00.whl",
        "https://h/simple/",
        "https://h/simple/%E2%80%AEgpj.whl",
        "https://h/simple/a%252Fb.whl",  # decoded once: "a%2Fb.whl" is a plain (odd) name
    ],
)
def test_url_file_names_are_one_plain_segment(url: str) -> None:
    if url.endswith("a%252Fb.whl"):
        assert download.url_filename(url) == "a%2Fb.whl"
        return
    with pytest.raises(ValueError):
        download.url_filename(url)


@given(st.text(max_size=40))
def test_a_url_name_never_leaves_its_folder(segment: str) -> None:
    from urllib.parse import quote

    folder = Path("/srv/dl")
    for raw in (segment, quote(segment, safe=""), quote(segment, safe="/.")):
        try:
            name = download.url_filename(f"https://h/files/{raw}")
        except ValueError:
            continue
        path = folder / name
        assert path.parent == folder and os.path.normpath(path) == str(path)


def test_a_symlinked_destination_name_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f.bin").symlink_to(tmp_path / "outside")
    with pytest.raises(ValueError, match="leaves"):
        download.confined(dest, "f.bin")


# --- environment values --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e309", "inf", "nan", "-1", "0", "x", "1" * 4301])
def test_environment_numbers_are_finite_positive_or_refused(value: str) -> None:
    with pytest.raises(ValueError, match="ENVSPEC_X"):
        positive_number({"ENVSPEC_X": value}, "ENVSPEC_X", 1.0)


@given(st.text(max_size=30))
def test_environment_numbers_never_crash(value: str) -> None:
    try:
        got = positive_number({"V": value}, "V", 5.0)
    except ValueError as exc:
        assert str(exc).startswith("V=")
        return
    assert 0 < got <= 1e15 and int(got) >= 0


@given(st.one_of(st.none(), st.text(max_size=40), st.integers(min_value=0, max_value=10**30).map(str)))
def test_retry_after_never_crashes(value: str | None) -> None:
    got = download.retry_after(value, now=0.0)
    assert got is None or got >= 0


@pytest.mark.parametrize("value", ["²", "١٢", "3²"])
def test_a_retry_after_of_non_ascii_digits_is_ignored_not_a_crash(value: str) -> None:
    """`str.isdigit` accepts '²' and Arabic-Indic digits, which float() and int() refuse (hypothesis found it)."""
    assert download.retry_after(value, now=0.0) is None
