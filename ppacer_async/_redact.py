"""Redaction by what the user configured (a password, a header value, a URL's path),
not by the shape of the text it might appear in: a server that echoes a token back in
an error body, or a password holding ``@`` or ``:``, is redacted all the same."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

#: What a secret is replaced with.
MARK = "***"

#: Parts shorter than this are too common to be secrets on their own ("1", "yes"), and
#: replacing them would garble unrelated text ("HTTP 401").
MIN_PART = 4

#: Authorization schemes: the word before the credentials, not itself a secret.
_SCHEMES = frozenset({"basic", "bearer", "digest", "token", "apikey", "hmac", "negotiate"})


def header_secrets(value: str) -> set[str]:
    """The fragments of a header value that may be echoed back alone: the whole value,
    each word but an authorization scheme, and the decoded ``user:password`` of Basic
    credentials with its password."""
    found = {value}
    words = value.split()
    for word in words:
        if word.lower() not in _SCHEMES:
            found.add(word)
    if len(words) == 2 and words[0].lower() == "basic":
        try:
            decoded = base64.b64decode(words[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            pass
        else:
            found.add(decoded)
            found.add(decoded.partition(":")[2])
    return {s for s in found if len(s) >= MIN_PART}


def scrub(text: str, secrets: Iterable[str], mark: str = MARK) -> str:
    """``text`` with every occurrence of each secret replaced by ``mark``, longest
    first so that a secret containing another is removed whole."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mark)
    return text
