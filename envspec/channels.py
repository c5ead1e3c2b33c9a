"""Channels and mirrors: ``--mirror NAME=URL`` and ``ENVSPEC_MIRRORS="NAME=URL,..."``.

A mirror maps a channel of the spec (``conda-forge``, or its full URL) to another URL: a corporate
mirror, or a ``file:///`` local channel for air-gapped machines (and the tests). Command-line
mirrors win over the environment variable.

**A mirror is transport, never content.** Lockfiles, input hashes and reports name the spec's
*canonical* channel URL (:func:`channel_url`: ``conda-forge`` is
``https://conda.anaconda.org/conda-forge``); only the requests made while solving and installing go
to the mirror.

**Credentials.** A mirror URL may carry ``https://user:token@host/...`` (put it in
``ENVSPEC_MIRRORS`` to keep it out of shell history). The userinfo is split off when the mirror is
parsed (:func:`normalize_url`): every URL envspec handles afterwards is credential-free, and the
secret lives only in this module's in-memory registry. It leaves it only as an HTTP
``Authorization`` header (:func:`auth_headers`, for installs) and in the environment of envspec's
own conda shim (:func:`shim_mirrors`, for the solve); it is never written to a file, a lockfile, a
log line or an error message. :func:`redact` masks a password that reached a string anyway.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from envspec.errors import SpecError
from envspec.settings import MIRRORS_ENV

ENV_VAR = MIRRORS_ENV  # one home: envspec.settings
DEFAULT_CHANNEL_ALIAS = "https://conda.anaconda.org"
_SCHEMES = ("http://", "https://", "file://", "s3://", "oci://")
MASK = "***"


@dataclass(frozen=True)
class Credentials:
    """HTTP basic-auth credentials of a mirror (the password never shows in a repr)."""

    username: str
    password: str = field(repr=False)

    def header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


_registry: dict[str, Credentials] = {}
_registry_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Credentials: split, remember, redact
# ---------------------------------------------------------------------------------------------


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """``scheme://user:pw@host/path`` -> ``(scheme://host/path, Credentials(user, pw))`` (pure)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, Credentials(unquote(user), unquote(password))


def remember(url: str) -> str:
    """Strip the credentials of ``url`` into the registry; return the credential-free URL."""
    clean, creds = split_credentials(url)
    if creds is not None:
        with _registry_lock:
            _registry[clean.rstrip("/")] = creds
    return clean


def credentials_for(url: str) -> Credentials | None:
    """The registered credentials whose mirror URL is the longest prefix of ``url`` (at a ``/``)."""
    clean, inline = split_credentials(url)
    if inline is not None:
        return inline
    key = clean.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    with _registry_lock:
        best = max((p for p in _registry if key == p or key.startswith(p + "/")), key=len, default=None)
        return None if best is None else _registry[best]


def auth_headers(url: str) -> tuple[str, dict[str, str]]:
    """``(credential-free URL, headers)`` for a request to ``url``: ``Authorization`` when it (or
    the mirror it lies under) has credentials."""
    creds = credentials_for(url)
    clean, _ = split_credentials(url)
    return clean, ({"Authorization": creds.header()} if creds is not None else {})


def forget_all() -> None:
    """Drop every registered credential (tests)."""
    with _registry_lock:
        _registry.clear()


# Every repetition that a failed match could rescan from each position is bounded (a scheme is at most
# 32 characters, a scheme-less user-info 256 + 256), so redact stays linear in its text: a message of
# a million word characters took hours with unbounded ones (each position scanned to the end).
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")
#: ``scheme://TOKEN@host``: a lone user-info is a token (GitHub, PyPI proxies, Artifactory use this form).
_LONE_USER_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://)(?P<user>[^/@\s:]+)@")
_BARE_USERINFO_RE = re.compile(r"(?P<pre>^|[\s'\"=,(/])(?P<user>[^\s/@:'\"=,()]{1,256}):(?P<pw>[^\s/@'\"]{1,256})@")
_TOKEN_RE = re.compile(r"/t/[^/\s]+/")
#: Query parameters that carry secrets (tokens, signed-URL signatures and credentials, passwords).
_QUERY_SECRET_RE = re.compile(
    r"(?i)(?P<key>[?&;](?:[\w.-]*(?:token|key|secret|signature|sig|password|passwd|pwd|auth|credential)[\w.-]*))"
    r"=(?P<value>[^&#\s'\"]+)"
)
_BEARER_RE = re.compile(r"(?i)\b(?P<kind>bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact(url: str) -> str:
    """``url`` (or any text quoting URLs) with every secret in it replaced by ``***``: the password
    of ``user:pw@`` (the user stays), a lone ``TOKEN@`` user-info, an anaconda.org-style path token
    ``/t/TOKEN/``, secret-looking query values (``?token=``, ``X-Amz-Signature=``...), ``Bearer``/
    ``Basic`` header values, and every password registered by a mirror (also percent-encoded).

    The one redaction of envspec: lockfiles, metadata, reports and messages all go through it.
    """
    text = url
    if "@" in text:  # every user-info form ends in one
        text = _USERINFO_RE.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        text = _LONE_USER_RE.sub(lambda m: f"{m['scheme']}{MASK}@" if m["user"] != MASK else m[0], text)
        text = _BARE_USERINFO_RE.sub(lambda m: f"{m['pre']}{m['user']}:{MASK}@", text)  # a scheme-less typo
    text = _TOKEN_RE.sub(f"/t/{MASK}/", text)
    text = _QUERY_SECRET_RE.sub(lambda m: f"{m['key']}={MASK}", text)
    text = _BEARER_RE.sub(lambda m: f"{m['kind']} {MASK}", text)
    with _registry_lock:
        secrets = [c.password for c in _registry.values() if len(c.password) >= 4]
    for secret in secrets:  # a secret a tool echoed back, e.g. percent-decoded
        text = text.replace(secret, MASK).replace(quote(secret, safe=""), MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The secret parts of one URL (password, lone user-info token, path token, secret query
    values), so a writer can refuse output that contains any of them (pure)."""
    parts = urlsplit(url)
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, sep, password = userinfo.partition(":")
        found += [unquote(password), password] if sep and password else [unquote(user), user]
    found += [m.group(0)[3:-1] for m in _TOKEN_RE.finditer(parts.path)]
    found += [m["value"] for m in _QUERY_SECRET_RE.finditer("?" + parts.query)]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` safe for a terminal, a log or a one-line report: controls (C0, DEL, C1 such as CSI),
    bidi overrides and other format characters, line separators and lone surrogates (undecodable
    bytes of a file name) are shown escaped (``\\x9b``, ``\\u202e``, ``\\udcff``), never emitted."""
    import unicodedata

    if text.isascii() and text.isprintable():
        return text
    return "".join(
        c if c in " " or (unicodedata.category(c) not in _UNPRINTABLE and c.isprintable()) else ascii(c)[1:-1]
        for c in text
    )


def shown(url: str) -> str:
    """How a (credential-free) mirror URL is shown to people: ``scheme://user:***@host/...`` when
    it has credentials, so a message says which account was used, never its secret."""
    clean, inline = split_credentials(url)
    creds = inline or credentials_for(clean)
    if creds is None:
        return redact(clean)
    parts = urlsplit(clean)
    netloc = f"{quote(creds.username, safe='')}:{MASK}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------------------------------------
# Mirrors
# ---------------------------------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """A mirror URL as conda understands it: an absolute local path becomes ``file://``; the
    credentials of an ``http(s)://user:pw@`` URL go to the registry, the URL returned has none."""
    text = url.strip()
    if not text:
        raise SpecError("empty mirror URL", tip="write --mirror NAME=URL, e.g. conda-forge=file:///srv/conda-forge")
    if text.startswith(_SCHEMES):
        _check_host(text, url)
        return remember(text).rstrip("/")
    path = Path(text).expanduser()
    if path.is_absolute():
        return path.as_uri()
    raise SpecError(
        f"mirror URL {redact(url)!r} is neither a URL (http://, https://, file://) nor an absolute path",
        tip="write --mirror NAME=URL, e.g. conda-forge=https://mirror.example.com/conda-forge",
    )


def _check_host(text: str, shown_as: str) -> None:
    """A malformed host or port (``[::1`` without its bracket, port 99999) is a one-line SpecError."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # ValueError when it is not a number in range
        if parts.scheme in {"http", "https"} and not parts.hostname:
            raise ValueError("no host")
    except ValueError as exc:
        raise SpecError(
            f"mirror URL {redact(shown_as)!r} has a malformed host or port ({exc})",
            tip="write it as scheme://host[:port]/path, an IPv6 host in brackets: https://[::1]:8080/conda-forge",
        ) from None


def parse_mirror(item: str) -> tuple[str, str]:
    """``NAME=URL`` -> ``(NAME, credential-free URL)``."""
    name, sep, url = item.partition("=")
    if not sep or not name.strip():
        raise SpecError(
            f"bad mirror {redact(item)!r}: expected NAME=URL",
            tip="e.g. --mirror conda-forge=file:///srv/conda-forge or ENVSPEC_MIRRORS=conda-forge=https://...",
        )
    return name.strip().rstrip("/"), normalize_url(url)


def parse_mirrors(cli: Iterable[str] = (), env_value: str | None = None) -> dict[str, str]:
    """Mirrors from ``ENVSPEC_MIRRORS`` (comma-separated), then ``--mirror`` items (which win)."""
    mirrors: dict[str, str] = {}
    if env_value:
        for item in env_value.split(","):
            if item.strip():
                name, url = parse_mirror(item)
                mirrors[name] = url
    for item in cli:
        name, url = parse_mirror(item)
        mirrors[name] = url
    return mirrors


def channel_url(channel: str) -> str:
    """The full URL of a channel name as conda resolves it (``conda-forge`` -> anaconda.org)."""
    if channel.startswith(_SCHEMES):
        return channel.rstrip("/")
    return f"{DEFAULT_CHANNEL_ALIAS}/{channel.strip('/')}"


def canonical_channels(channels: Iterable[str]) -> tuple[str, ...]:
    """The spec's channels as the canonical URLs lockfiles name (``nodefaults`` dropped)."""
    return tuple(channel_url(c.rstrip("/")) for c in channels if c not in {"nodefaults"})


def apply_mirrors(channels: Iterable[str], mirrors: Mapping[str, str]) -> tuple[str, ...]:
    """The channels a solve uses: each spec channel replaced by its mirror, if it has one.

    A mirror key matches the channel as written in the spec or its full URL.
    """
    by_url = {channel_url(name): url for name, url in mirrors.items()}
    out = []
    for channel in channels:
        if channel in {"nodefaults"}:
            continue
        key = channel.rstrip("/")
        out.append(mirrors.get(key) or by_url.get(channel_url(key)) or key)
    return tuple(out)


def shim_mirrors(channels: Iterable[str], mirrors: Mapping[str, str]) -> list[dict[str, str]]:
    """What envspec's conda shim needs to reach ``channels`` through ``mirrors``: per mirrored
    channel ``{"channel": canonical URL, "mirror": URL[, "username", "password"]}``.

    Passed to the shim in its environment only (never argv, never a file): conda-lock sees the
    canonical URLs alone, so it can neither write a mirror nor a secret into a lockfile.
    """
    out: list[dict[str, str]] = []
    for channel in channels:
        if channel in {"nodefaults"}:
            continue
        (mirror,) = apply_mirrors([channel], mirrors)
        canonical = channel_url(channel.rstrip("/"))
        mirror = remember(mirror)
        if mirror.rstrip("/") in {canonical, channel.rstrip("/")}:  # not mirrored
            continue
        entry = {"channel": canonical, "mirror": mirror.rstrip("/")}
        creds = credentials_for(mirror)
        if creds is not None:
            entry |= {"username": creds.username, "password": creds.password}
        out.append(entry)
    return out


def unused_mirrors(channels: Iterable[str], mirrors: Mapping[str, str]) -> list[str]:
    """Mirror names that match no channel (a likely typo, reported as a warning)."""
    urls = {channel_url(c) for c in channels}
    names = {c.rstrip("/") for c in channels}
    return sorted(name for name in mirrors if name not in names and channel_url(name) not in urls)
