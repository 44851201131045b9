"""Make what a task produced storable on every storage, before it reaches a commit.

A task's result, its error text and its log lines are the only values written that
the scheduler does not make itself. Two kinds of text no storage takes alike: lone
surrogates (``"\\ud800"``, as ``os.listdir`` gives for a file name that is not valid
UTF-8), which SQLite's UTF-8 encoder and PostgreSQL both refuse, and NUL, which
PostgreSQL refuses in ``text`` and ``jsonb``. They are replaced with U+FFFD, and a note
says so. A result that cannot be stored at all (not JSON, NaN, nested past the
encoder's depth) raises ``Unstorable`` with the reason, which fails the attempt.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: What replaces a character that cannot be stored.
REPLACEMENT = "\ufffd"

_BAD = re.compile("[\x00\ud800-\udfff]")
# In JSON text (ensure_ascii=False) a surrogate appears as itself and NUL as the escape
# \u0000, which must not be preceded by an odd number of backslashes (``"\\u0000"``
# is a backslash and the text "u0000").
_BAD_JSON = re.compile(r"[\ud800-\udfff]|(?<!\\)((?:\\\\)*)\\u0000")
_INT = {int}
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


class Unstorable(ValueError):
    """A task's result cannot be stored; the message says why and what to return."""


def note(count: int) -> str:
    """The note appended to text in which ``count`` characters were replaced."""
    chars = "character" if count == 1 else "characters"
    return (
        f"[ppacer-async: {count} {chars} that cannot be stored (lone surrogates or NUL) "
        "replaced with U+FFFD]"
    )


def text(value: str) -> str:
    """``value`` with unstorable characters replaced and a note appended, or ``value``
    itself when it is storable (the usual case, checked with one regex search)."""
    if _BAD.search(value) is None:
        return value
    fixed, count = _BAD.subn(REPLACEMENT, value)
    return f"{fixed}\n{note(count)}" if "\n" in fixed else f"{fixed} {note(count)}"


def result(value: Any) -> tuple[Any, int]:
    """The result as storage will give it back, and how many characters in it (strings
    and keys) were replaced.

    :raises Unstorable: the value is not JSON data, holds NaN or infinity, or is
        nested too deeply to encode.
    """
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return value, 0
    if kind is str:
        fixed, count = _BAD.subn(REPLACEMENT, value)
        return fixed, count
    if kind is float:
        if not math.isfinite(value):
            raise Unstorable(
                f"the task returned {value!r}, which cannot be stored as JSON; return a "
                "finite number, or None or a string for a missing one"
            )
        return value, 0
    if kind is list and set(map(type, value)) == _INT:
        # A list of ints (ids, offsets: what a task to be mapped often returns) comes
        # back from its JSON as a copy of itself; no need to encode and decode it.
        return list(value), 0
    try:
        encoded = _ENCODE(value)
    except RecursionError:
        raise Unstorable(
            "the task returned a value nested too deeply to store (JSON encoding ran out "
            "of recursion); return flatter data"
        ) from None
    except (TypeError, ValueError) as exc:
        raise Unstorable(
            f"the task returned a value that cannot be stored as JSON ({exc}); return "
            "JSON-compatible data: dict, list, str, int, float, bool or None"
        ) from None
    count = 0
    # ASCII text holds no surrogate, and NUL only as its escape: a plain substring test
    # spares the pattern's scan of a large result (a mapped task's list, say).
    if (not encoded.isascii() or "\\u0000" in encoded) and _BAD_JSON.search(encoded) is not None:
        encoded, count = _BAD_JSON.subn(lambda m: (m[1] or "") + REPLACEMENT, encoded)
    try:
        return json.loads(encoded), count
    except RecursionError:  # the decoder's limit can be below the encoder's
        raise Unstorable(
            "the task returned a value nested too deeply to store; return flatter data"
        ) from None
