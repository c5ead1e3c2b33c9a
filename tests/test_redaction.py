"""One redaction (envspec.channels.redact) for every secret form, wherever envspec writes or prints (#21 family 2).

A secret is a password (``user:pw@``), a lone user-info token (``TOKEN@``), a path token
(``/t/TOKEN/``) or a secret query value (``?token=``, ``X-Amz-Signature=``). Lockfiles (``<t>.pip.txt``),
messages (the CLI's one error line, the Hub's) and reports go through the one function; credentials
given through ``ENVSPEC_MIRRORS`` work exactly as on ``--mirror``. Terminal control characters and
undecodable bytes in what is printed are escaped (family 6).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from envspec import channels
from envspec.channels import parse_mirrors, printable, redact, url_secrets
from envspec.cli.main import main
from envspec.errors import SpecError
from envspec.lock import pypi
from envspec.models.redact import redact as redact_hub


@pytest.fixture(autouse=True)
def _no_registered_credentials() -> Iterator[None]:
    channels.forget_all()
    yield
    channels.forget_all()


SECRET = st.text(alphabet="abcdefghijkLMNOP0123456789-_.~", min_size=6, max_size=20)
HOST = st.sampled_from(["mirror.example", "127.0.0.1:8080", "[::1]:9", "pypi.anaconda.org"])


@given(user=SECRET, password=SECRET, token=SECRET, query=SECRET, host=HOST, form=st.integers(0, 4))
def test_no_secret_form_survives_redaction(
    user: str, password: str, token: str, query: str, host: str, form: int
) -> None:
    shape, secret = [
        (f"https://{user}:{{}}@{host}/simple/x", password),
        (f"https://{{}}@{host}/simple/x", token),
        (f"https://{host}/t/{{}}/pypi/simple", token),
        (f"https://{host}/f.whl?token={{}}&a=1", query),
        (f"https://{host}/f.whl?X-Amz-Signature={{}}", query),
    ][form]
    text = f"error: cannot reach {shape} (after 3 tries)"
    assume(secret not in text)  # the secret is not also a piece of what is not secret (the host, a word)
    url, text = shape.format(secret), text.format(secret)
    assert secret not in redact(text)
    assert secret not in redact_hub(text)
    assert secret in url_secrets(url)


def test_redaction_keeps_what_says_which_account_and_where() -> None:
    assert redact("https://alice:s3cret@h/x") == "https://alice:***@h/x"
    assert redact("https://h/t/tk-123/simple/") == "https://h/t/***/simple/"
    assert redact("https://h/f.whl?token=abcdef&v=2") == "https://h/f.whl?token=***&v=2"
    assert redact("https://h/simple/pkg/") == "https://h/simple/pkg/"


def test_a_path_token_index_never_reaches_the_pip_txt() -> None:
    index = pypi.PipIndex("https://pypi.example/t/tk-SECRET-123/acme/simple")
    text = pypi.render_pip_txt(target="t", subdir="linux-64", input_hash="sha256:" + "0" * 64, index=index, packages=[])
    assert "tk-SECRET-123" not in text and "/t/***/acme/simple" in text
    assert "tk-SECRET-123" in index.secrets()  # and a lock whose output carries it is refused


def test_pypi_credentials_from_envspec_mirrors_work_as_on_the_command_line() -> None:
    url = "https://bob:pw-12345@pypi.example/simple"
    from_env = pypi.pip_index(parse_mirrors((), f"pypi={url}"))
    channels.forget_all()
    from_cli = pypi.pip_index(parse_mirrors([f"pypi={url}"]))
    assert from_env == from_cli
    assert (from_env.username, from_env.password, from_env.url) == ("bob", "pw-12345", "https://pypi.example/simple")


def test_conda_credentials_from_envspec_mirrors_work_as_on_the_command_line() -> None:
    url = "https://bob:pw-12345@mirror.example/cf"
    assert parse_mirrors((), f"conda-forge={url}") == {"conda-forge": "https://mirror.example/cf"}
    env_headers = channels.auth_headers("https://mirror.example/cf/noarch/a.conda")
    channels.forget_all()
    assert parse_mirrors([f"conda-forge={url}"]) == {"conda-forge": "https://mirror.example/cf"}
    assert channels.auth_headers("https://mirror.example/cf/noarch/a.conda") == env_headers
    assert env_headers[1]


@pytest.mark.parametrize(
    "mirror",
    ["conda-forge=https://u:pw12@[::1/cf", "conda-forge=http://[::1]:x/cf", "pypi=https://h:99999/x", "pypi=https://"],
)
@pytest.mark.parametrize("via", ["cli", "env"])
def test_a_broken_mirror_url_is_one_line(mirror: str, via: str) -> None:
    with pytest.raises(SpecError, match="malformed host or port") as info:
        parse_mirrors([mirror]) if via == "cli" else parse_mirrors((), mirror)
    assert "\n" not in info.value.one_line() and "pw12" not in info.value.one_line()


def test_printable_escapes_controls_bidi_and_undecodable_bytes() -> None:
    assert printable("plain text: ok") == "plain text: ok"
    assert printable("a\x9b31mb") == "a\\x9b31mb"
    assert printable("x\u202egpj.exe") == "x\\u202egpj.exe"
    assert printable("out-\udcff") == "out-\\udcff"
    assert printable("\x1b[2J") == "\\x1b[2J"
    assert printable("naïve – ok") == "naïve – ok"


@given(st.text(max_size=40))
def test_printable_output_is_always_printable_and_encodable(text: str) -> None:
    out = printable(text)
    assert out.replace(" ", "").isprintable() or out == ""
    out.encode("utf-8")  # strict: no lone surrogate left


def test_the_cli_error_line_is_redacted_and_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--spec", "/nonexistent/\x9b31m\u202e/https://u:s3cret-pw@h/envspec.yml", "targets"])
    err = capsys.readouterr().err
    assert code == 3
    assert "\x9b" not in err and "\u202e" not in err and "s3cret-pw" not in err
    assert "\\x9b31m\\u202e" in err


def test_a_non_utf8_target_name_on_argv_is_one_line(capsys: pytest.CaptureFixture[str], repo: object) -> None:
    code = main(["--spec", "envspec.yml", "install", "--prefix", "/nonexistent/x", "\udcff\x9b"])
    err = capsys.readouterr().err
    assert code in {2, 3} and "Traceback" not in err
    err.encode("utf-8")
    assert "\x9b" not in err


def test_the_lock_children_never_see_envspec_mirrors(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Credentials in ENVSPEC_MIRRORS reach the lock's child processes as --mirror's do: through
    each job's own routes, never as the raw variable in conda-lock's (and its tools') environment."""
    import subprocess

    from envspec.lock import conda_lock_process as run

    seen: dict[str, object] = {}

    class Captured(Exception):
        pass

    def fake_popen(*args: object, **kwargs: object) -> None:
        seen.update(kwargs)
        raise Captured

    monkeypatch.setenv("ENVSPEC_MIRRORS", "conda-forge=https://bob:pw-secret-9@mirror.example/cf")
    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    with pytest.raises(Captured):
        run.run_conda_lock([], cwd=tmp_path, max_workers=1, on_done=lambda *a: None)  # type: ignore[arg-type]
    env = seen["env"]
    assert isinstance(env, dict) and "ENVSPEC_MIRRORS" not in env
    assert not any("pw-secret-9" in str(v) for v in env.values())


N = 100_000


@pytest.mark.parametrize(
    "text",
    ["x" * N, "?" + "x" * N, "x" * N + "@", "ab+c.d-e" * (N // 8) + "@", "@" + "=a:" * (N // 3)],
    ids=["word", "query", "word-at", "scheme-like", "bare-userinfo"],
)
def test_redaction_is_linear_in_its_text(text: str) -> None:
    # each position of a long word was scanned to the end for a scheme or a user-info that never came:
    # 100,000 characters took about 30 s (a megabyte, hours); now well under a second
    import time

    started = time.process_time()  # CPU time: a busy machine stretches the wall clock, not the work
    assert redact(text + " https://u:pw-12345@h/x").endswith(" https://u:***@h/x")
    assert time.process_time() - started < 3
