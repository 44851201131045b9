"""Named queries: the statements of a dialect live in ``sql/<dialect>/queries.sql``,
each under a ``-- name --`` line, and the storage takes them by name."""

from __future__ import annotations

import re
from importlib import resources

import attrs

from ._migrations import Dialect

_HEADER = re.compile(r"^-- ([a-z0-9_]+) --$", re.MULTILINE)


def parse_queries(text: str, source: str) -> dict[str, str]:
    """The queries of a ``queries.sql`` text by name, without the comment lines that
    precede and follow each statement.

    :param source: how messages name the file.
    :raises RuntimeError: a name is used twice or has no statement.
    """
    parts = _HEADER.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = body.strip().splitlines()
        while lines and lines[0].startswith("--"):
            del lines[0]
        while lines and (not lines[-1].strip() or lines[-1].startswith("--")):
            del lines[-1]
        if name in found:
            raise RuntimeError(f"{source} names two queries {name!r}; rename one")
        if not lines:
            raise RuntimeError(f"query {name!r} of {source} has no statement")
        found[name] = "\n".join(lines)
    return found


@attrs.define(eq=False)
class NamedQueries:
    """The queries of one ``queries.sql``, taken one by one by name; whatever is left
    untaken at :meth:`check_all_taken` is a mistake (a query nothing runs)."""

    source: str
    _queries: dict[str, str]
    _taken: set[str] = attrs.field(init=False, factory=set)

    @classmethod
    def load(cls, dialect: Dialect) -> NamedQueries:
        """Read ``sql/<dialect>/queries.sql`` shipped with the package."""
        source = f"sql/{dialect}/queries.sql"
        text = resources.files("ppacer_async.storage").joinpath(source).read_text("utf-8")
        return cls(source, parse_queries(text, source))

    def take(self, name: str) -> str:
        """The statement named ``name``.

        :raises KeyError: the file has no such query.
        """
        try:
            statement = self._queries[name]
        except KeyError:
            raise KeyError(f"{self.source} has no query named {name!r}") from None
        self._taken.add(name)
        return statement

    def check_all_taken(self) -> None:
        """:raises RuntimeError: some queries of the file were never taken."""
        left = sorted(set(self._queries) - self._taken)
        if left:
            raise RuntimeError(f"{self.source} has queries that nothing runs: {left}")
