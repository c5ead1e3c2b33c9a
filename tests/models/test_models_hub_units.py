"""The Hub layer without a network: errors become one redacted line with the right exit code; the stall guard."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status

from envspec.errors import EnvspecError, ExitCode
from envspec.models import hub
from envspec.models.redact import redact

TOKEN = "hf_" + "Yx7" * 11
SIGNED = "https://cdn-lfs.hf.co/repos/ab/cd/file?X-Amz-Signature=deadbeefcafe&Expires=1"


def test_redact_cuts_tokens_signed_urls_and_userinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "plain-secret-value")
    text = (
        f"failed {SIGNED} with Authorization: Bearer {TOKEN}\nfrom https://user:pw@mirror.example/x?token=abc "
        "then plain-secret-value and hf_Abcdefghijklmnop, token=zzz"
    )
    out = redact(text)
    for secret in ("deadbeefcafe", TOKEN, "pw@", "token=abc", "plain-secret-value", "hf_Abcdefghijklmnop", "zzz"):
        assert secret not in out, secret
    assert "\n" not in out
    assert "https://cdn-lfs.hf.co/repos/ab/cd/file" in out and "Bearer ***" in out
    assert "make sure your token has the required permissions" in redact(
        "make sure your token has the required permissions"
    )
    assert len(redact("x" * 5000)) == 400


def hf_error(status: int, code: str | None = None, message: str = "", url: str = SIGNED) -> Exception:
    headers = {"X-Error-Message": message} if message else {}
    if code:
        headers["X-Error-Code"] = code
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as exc:
        return exc
    raise AssertionError("no error raised")


RESOLVE = "https://huggingface.co/acme/sd/resolve/main/unet/x.safetensors"
API = "https://huggingface.co/api/models/acme/sd/revision/main"


@pytest.mark.parametrize(
    ("exc", "doing", "code", "words"),
    [
        (hf_error(401, "GatedRepo", f"restricted {TOKEN}", RESOLVE), "pull", ExitCode.ACCESS_DENIED, "needs a token"),
        (hf_error(403, "GatedRepo", f"not authorized {TOKEN}", RESOLVE), "pull", ExitCode.ACCESS_DENIED, "granted"),
        (hf_error(401, "RepoNotFound", "Repository not found", API), "lock", ExitCode.ACCESS_DENIED, "private"),
        (hf_error(404, "RepoNotFound", "Repository not found", API), "lock", ExitCode.SPEC_INVALID, "no repository"),
        (hf_error(404, "RevisionNotFound", "Invalid rev id", API), "lock", ExitCode.SPEC_INVALID, "no revision"),
        (hf_error(404, "RevisionNotFound", "Invalid rev id", RESOLVE), "pull", ExitCode.CHECK_FAILED, "is gone"),
        (hf_error(404, "EntryNotFound", "missing", RESOLVE), "pull", ExitCode.CHECK_FAILED, "no such file"),
        (hf_error(503, None, f"busy {TOKEN}", RESOLVE), "pull", ExitCode.CHANNEL_UNREACHABLE, "answered 503"),
        (hf_error(403, None, "Forbidden", RESOLVE), "pull", ExitCode.ACCESS_DENIED, "refused access"),
        (httpx2.ConnectError("[Errno 111] Connection refused"), "lock", ExitCode.CHANNEL_UNREACHABLE, "cannot reach"),
        (httpx2.ReadTimeout("transfer stalled: 3 bytes in 10 s"), "pull", ExitCode.CHANNEL_UNREACHABLE, "stalled"),
        (OfflineModeIsEnabled("offline"), "lock", ExitCode.CHANNEL_UNREACHABLE, "HF_HUB_OFFLINE"),
        (
            OSError("Consistency check failed: file should be of size 10 but has size 7"),
            "pull",
            ExitCode.INTEGRITY,
            "did not have the size",
        ),
        (OSError(28, "No space left on device"), "pull", ExitCode.TOOL_FAILED, "free disk space"),
        (RuntimeError(f"odd {TOKEN}"), "pull", ExitCode.TOOL_FAILED, "huggingface_hub failed"),
    ],
)
def test_failures_become_one_redacted_line(exc: Exception, doing: str, code: ExitCode, words: str) -> None:
    err = hub.translate(exc, repo="acme/sd", revision="main", doing=doing, path="unet/x.safetensors")
    assert isinstance(err, EnvspecError)
    line = err.one_line()
    assert err.exit_code == code, line
    assert words in line, line
    assert TOKEN not in line and "deadbeefcafe" not in line and "\n" not in line


def test_the_gated_message_says_what_to_do() -> None:
    err = hub.translate(hf_error(401, "GatedRepo", "x", RESOLVE), repo="acme/sd", revision="main", doing="pull")
    line = err.one_line()
    assert "HF_TOKEN" in line and "hf auth login" in line and f"accept the licence at {hub.repo_url('acme/sd')}" in line


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Trickle(httpx2.SyncByteStream):
    def __init__(self, clock: Clock, chunk: bytes, step: float, count: int) -> None:
        self.clock, self.chunk, self.step, self.count = clock, chunk, step, count

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.count):
            self.clock.now += self.step
            yield self.chunk


def test_the_stall_guard_stops_a_trickle_and_lets_a_slow_but_steady_transfer_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(hub.time, "monotonic", clock)
    request = httpx2.Request("GET", "http://127.0.0.1/x")
    trickle = hub._GuardedStream(Trickle(clock, b"x", 0.5, 1000), request, window=10)
    with pytest.raises(httpx2.ReadTimeout, match="stalled"):
        list(trickle)
    assert clock.now == pytest.approx(10.0)
    steady = hub._GuardedStream(Trickle(clock, b"x" * 2048, 1.0, 100), request, window=10)  # 2 KiB/s
    assert sum(len(c) for c in steady) == 2048 * 100


def test_the_session_turns_xet_off_and_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants
    from huggingface_hub.utils import _runtime, _shared_blobs

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_SHARED_BLOBS", False)
    with hub.session():
        assert not _runtime.is_xet_available() and not _shared_blobs.shared_blobs_enabled()
    assert constants.HF_HUB_DISABLE_XET is False  # what the caller had, after


def test_only_a_files_own_body_is_held_to_its_locked_size(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "/redirect": httpx2.Response(302, headers={"Location": "/x"}, content=b"Found. Redirecting"),
        "/file": httpx2.Response(200, content=b"abcd"),
        "/listing": httpx2.Response(200, content=b"x" * 2048),
    }
    transport = hub._GuardedTransport(httpx2.MockTransport(lambda r: answers[r.url.path]), window=60)

    def body(path: str) -> bytes:
        response = transport.handle_request(httpx2.Request("GET", f"http://127.0.0.1{path}"))
        return b"".join(response.stream)  # type: ignore[arg-type]

    monkeypatch.setattr(hub, "ANSWER_MAX_BYTES", 1024)
    hub._budget.value = hub._Budget("a/b/tiny.safetensors@0123", 3)  # fetch() sets it for one file
    try:
        assert body("/redirect") == b"Found. Redirecting"  # 18 bytes: not the file, under the answer cap
        with pytest.raises(EnvspecError, match="more than the 3 bytes the lockfile records"):
            body("/file")
    finally:
        hub._budget.value = None
    with pytest.raises(EnvspecError, match=r"answered GET /listing \(200\) with more than"):
        body("/listing")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "identity", None])
def test_an_encoded_answer_is_inflated_once_and_read_as_sent(encoding: str | None) -> None:
    import gzip
    import zlib

    body = b'{"sha": "' + b"0" * 40 + b'", "siblings": []}'
    wire = {"gzip": gzip.compress(body), "deflate": zlib.compress(body)}.get(encoding or "", body)
    headers = {"Content-Encoding": encoding} if encoding else {}
    transport = hub._GuardedTransport(  # a stream, as from the network: content= would be inflated at once
        httpx2.MockTransport(lambda r: httpx2.Response(200, headers=headers, stream=httpx2.ByteStream(wire))), 60
    )
    with httpx2.Client(transport=transport) as client:
        assert client.get("http://127.0.0.1/api/models/a/b").content == body


@pytest.mark.parametrize(("encoding", "words"), [("br", "which envspec did not ask for"), ("gzip", "does not decode")])
def test_an_answer_envspec_cannot_inflate_is_refused(encoding: str, words: str) -> None:
    body = httpx2.ByteStream(b"not compressed at all")
    answer = httpx2.Response(200, headers={"Content-Encoding": encoding}, stream=body)
    transport = hub._GuardedTransport(httpx2.MockTransport(lambda r: answer), 60)
    with httpx2.Client(transport=transport) as client, pytest.raises(EnvspecError, match=words):
        client.get("http://127.0.0.1/api/models/a/b").read()


@pytest.mark.parametrize("value", ["lots", "-1", "101", "1.5", "1e2", "\u0663", "9" * 5000])  # U+0663: a digit
def test_ENVSPEC_HUB_RETRIES_is_a_whole_number_from_0_to_100(value: str) -> None:
    from envspec.settings import Settings

    with pytest.raises(EnvspecError, match=r"ENVSPEC_HUB_RETRIES=.* is not a whole number from 0 to 100") as info:
        Settings.from_environ({"ENVSPEC_HUB_RETRIES": value}).hub_retries()
    assert info.value.exit_code == ExitCode.SPEC_INVALID and "unset it (5 retries)" in info.value.one_line()
    assert Settings().hub_retries() == 5 == hub._Budget("f", 1).retries  # unset: 5, what fetch() takes by default
    assert [Settings.from_environ({"ENVSPEC_HUB_RETRIES": v}).hub_retries() for v in ("0", " 2 ", "100")] == [0, 2, 100]
