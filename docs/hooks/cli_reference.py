"""MkDocs hook: put the help of every ``ppacer-async`` command where a page says
``<!-- cli-reference -->``, rendered from the command's own argparse parser, so the
reference cannot drift from the program."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- cli-reference -->"
WIDTH = "74"


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())


def render() -> str:
    from ppacer_async.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps help to the terminal's width
    try:
        parser = build_parser()
        sections = []
        for depth, name, sub in _walk(parser, 0):
            help_text = sub.format_help().rstrip()
            if depth == 0:
                sections.append(f"```text\n{help_text}\n```\n")
            else:
                heading = "#" * (depth + 2)
                sections.append(f"{heading} {name}\n\n```text\n{help_text}\n```\n")
        return "\n".join(sections)
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _walk(
    parser: argparse.ArgumentParser, depth: int
) -> Iterator[tuple[int, str, argparse.ArgumentParser]]:
    yield depth, parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for sub in action.choices.values():
                if id(sub) not in seen:  # an alias names the same parser again
                    seen.add(id(sub))
                    yield from _walk(sub, depth + 1)
