"""The one place text from the Hub's client becomes a message: secrets and signed URLs are cut out.

huggingface_hub's errors quote URLs (signed CDN addresses carry credentials in their query string),
server messages (which could echo a header) and, in debug logs, whole requests. Every message
envspec builds from them goes through ``redact``: envspec's one URL redaction
(:func:`envspec.channels.redact`), then the Hub's own token forms, query strings cut, control and
bidi characters escaped (:func:`envspec.channels.printable`), one line of at most MAX_LENGTH.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Final

from envspec.channels import printable
from envspec.channels import redact as redact_secrets

#: Variables huggingface_hub reads a token from.
TOKEN_VARIABLES: Final = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
MAX_LENGTH: Final = 400

_QUERY = re.compile(r"(?P<url>https?://[^\s?#'\"]*)[?#][^\s'\"]*")
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s'\",;)]+")
_KEY_VALUE = re.compile(r"(?i)\b(token|access_token|api_key|password)=[^\s'\",;&]+")
_HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")


def known_tokens(extra: Iterable[str | None] = ()) -> list[str]:
    """Token values this process could send: from the environment, plus ``extra`` (e.g. the login file's)."""
    values = [os.environ.get(name) for name in TOKEN_VARIABLES]
    return sorted({v.strip() for v in [*values, *extra] if v and len(v.strip()) >= 4}, key=len, reverse=True)


def redact(text: str, tokens: Iterable[str] = ()) -> str:
    """One line, no token values, no userinfo or query strings in URLs, no bearer values, at most MAX_LENGTH."""
    for token in [*tokens, *known_tokens()]:
        text = text.replace(token, "***")
    text = redact_secrets(text)
    text = _QUERY.sub(lambda m: m["url"], text)  # signed CDN URLs: the whole query is a credential
    text = _BEARER.sub("Bearer ***", text)
    text = _KEY_VALUE.sub(lambda m: f"{m[1]}=***", text)
    text = _HF_TOKEN_SHAPE.sub("hf_***", text)
    text = printable(" ".join(text.split()))
    return text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - 1] + "…"
