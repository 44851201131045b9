"""Words for messages."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 DAG``, ``2 DAGs``, ``0 runs``; ``nouns`` for irregular plurals."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
