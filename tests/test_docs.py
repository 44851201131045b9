"""The Python examples of the documentation run, so the docs cannot rot.

Each page's ```python blocks run in order as one script (a later block may use what an
earlier one defined), in an empty directory. A block that needs a server or runs
forever is marked with ``<!-- no-run: why -->`` on the line before it: it is only
compiled.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import command_env

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)")
NO_RUN = re.compile(r"^\s*<!-- no-run: (?P<why>.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    start: int  # 0-based index of the block's first code line in the page
    code: str
    runs: bool


def python_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    n = 0
    while n < len(lines):
        fence = FENCE.match(lines[n])
        if fence is None:
            n += 1
            continue
        indent = len(fence["indent"])
        end = n + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if fence["lang"] == "python":
            before = next((line for line in reversed(lines[:n]) if line.strip()), "")
            code = "\n".join(line[indent:] for line in lines[n + 1 : end])
            blocks.append(Block(start=n + 1, code=code, runs=NO_RUN.match(before) is None))
        n = end + 1
    return blocks


def pages() -> list[Path]:
    found = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    return [page for page in found if python_blocks(page)]


def script(page: Path, blocks: list[Block]) -> str:
    """The page's runnable blocks, each at its own line number, so that a traceback
    points at the page's line."""
    lines = [""] * len(page.read_text().splitlines())
    for block in blocks:
        if block.runs:
            for k, line in enumerate(block.code.splitlines()):
                lines[block.start + k] = line
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_python_examples_in_the_docs_run(page: Path, tmp_path: Path) -> None:
    blocks = python_blocks(page)
    for block in blocks:
        if not block.runs:
            compile(block.code, f"{page}:{block.start + 1}", "exec")
    if not any(block.runs for block in blocks):
        return
    program = tmp_path / page.name.replace(".md", "_md.py")
    program.write_text(script(page, blocks))
    done = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = (done.stdout + done.stderr).replace(str(program), str(page))
    assert done.returncode == 0, output


def test_examples_left_unrun_are_few_and_say_why() -> None:
    unrun = [
        (page.relative_to(ROOT), block.start)
        for page in pages()
        for block in python_blocks(page)
        if not block.runs
    ]
    runs = sum(block.runs for page in pages() for block in python_blocks(page))
    assert runs >= 4 * len(unrun), f"most examples should run; not run: {unrun}"


def test_cli_reference_shows_the_help_of_every_command() -> None:
    import argparse
    import importlib.util

    from ppacer_async.cli import build_parser

    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "hooks" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown("# CLI\n\n<!-- cli-reference -->\n", page=None)

    def commands(parser: argparse.ArgumentParser) -> list[str]:
        found = [parser.prog]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    found += commands(sub)
        return found

    names = commands(build_parser())
    assert "ppacer-async db upgrade" in names
    for name in names[1:]:
        assert f"# {name}\n" in page
        assert f"usage: {name} " in page
    assert "<!-- cli-reference -->" not in page
