"""Smaller kindnesses of the command line: version, graphs, wide and coloured tables,
plurals, pausing twice, backfill warnings and --wait, runs --since, shell completion,
import errors that point at the right file, and tasks refused when they are made."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import ppacer_async
from ppacer_async import DAG, DagDefinitionError, Scheduler, TaskContext, task
from ppacer_async.cli import main
from ppacer_async.schedules import Cron, Interval

from .helpers import command_env

COMMAND = [sys.executable, "-m", "ppacer_async"]
START = datetime(2026, 1, 1, tzinfo=UTC)


@task
async def a(ctx: TaskContext) -> None:
    pass


b = task(a.func, id="b")
c = task(a.func, id="c")
d = task(a.func, id="d")


def _dags() -> list[DAG]:
    return [
        DAG("diamond").add(a >> [b, c] >> d),
        DAG(
            "weekdays",
            schedule=Cron("0 6 * * 1-5", tz="America/Argentina/Buenos_Aires"),
        ).add(a),
        DAG("hourly", schedule=Interval(timedelta(hours=1)), start=START).add(a),
    ]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite file where the DAGs are recorded and one run of ``diamond`` succeeded."""
    found = f"sqlite:///{tmp_path / 'small.db'}"

    async def record() -> None:
        async with Scheduler(_dags(), storage=found) as scheduler:
            run = await scheduler.trigger("diamond")
            await scheduler.wait_for_run(run.id, timeout=10)

    anyio.run(record)
    return found


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env=command_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _on_terminal(*args: str, **env: str) -> str:
    """What the command prints to a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [*COMMAND, *args],
            env=command_env(**env),
            stdout=follower,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert done.returncode == 0
    return b"".join(chunks).decode()


def test_version_is_the_installed_package_version() -> None:
    assert ppacer_async.__version__ == importlib.metadata.version("ppacer-async")
    done = _cli("--version")
    assert (done.returncode, done.stdout) == (0, f"ppacer-async {ppacer_async.__version__}\n")


def test_dags_show_prints_the_graph_as_text_dot_or_mermaid(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dags", "show", "diamond", "--storage", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "diamond: 4 tasks, 4 edges",
        "  a",
        "  ├─> b",
        "  └─> c",
        "  b",
        "  └─> d",
        "  c",
        "  └─> d",
        "  d",
    ]
    assert main(["dags", "show", "diamond", "--format", "dot", "--storage", url]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith('digraph "diamond" {')
    assert '"a" -> "b";' in dot and '"c" -> "d";' in dot
    assert main(["dags", "show", "diamond", "--format", "mermaid", "--storage", url]) == 0
    mermaid = capsys.readouterr().out.splitlines()
    assert mermaid[1] == "flowchart LR"
    assert '  t0["a"]' in mermaid and "  t0 --> t1" in mermaid
    assert main(["dags", "show", "nope", "--storage", url]) == 2


def test_the_schedule_column_is_not_cut_on_a_wide_terminal(url: str) -> None:
    shown = _on_terminal("dags", "--storage", url, COLUMNS="200", NO_COLOR="")
    assert "America/Argentina/Buenos_Aires" in shown
    narrow = _cli("dags", "--storage", url).stdout  # a pipe: 80 columns
    assert all(len(line) <= 80 for line in narrow.splitlines())


def test_statuses_are_coloured_on_a_terminal_unless_no_color(url: str) -> None:
    coloured = _on_terminal("runs", "--storage", url, NO_COLOR="")
    assert "\x1b[32msuccess\x1b[0m" in coloured
    plain = _on_terminal("runs", "--storage", url, NO_COLOR="1")
    assert "\x1b[" not in plain and "success" in plain
    piped = _cli("runs", "--storage", url).stdout
    assert "\x1b[" not in piped


def test_pausing_a_paused_dag_says_so(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pause", "hourly", "--storage", url]) == 0
    assert capsys.readouterr().out.startswith("paused hourly")
    assert main(["pause", "hourly", "--storage", url]) == 0
    assert capsys.readouterr().out.startswith("hourly is already paused")
    assert main(["unpause", "hourly", "--storage", url]) == 0
    capsys.readouterr()
    assert main(["unpause", "hourly", "--storage", url]) == 0
    assert capsys.readouterr().out.startswith("hourly is not paused")


def test_a_refused_backfill_says_how_many_points_the_range_has(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["backfill", "hourly", "--start", "2020-01-01T00:00+00:00"]
    assert main([*args, "--end", "2026-01-01T00:00+00:00", "--storage", url]) == 2
    error = capsys.readouterr().err
    assert "the range has 52,609 schedule points, more than the 10,000" in error
    assert "the first ending at 2021-02-20T15:00:00+00:00" in error


@pytest.mark.anyio
async def test_backfill_warns_of_points_before_the_start_and_waits_for_its_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'backfill.db'}"
    args = ["backfill", "hourly", "--start", "2025-12-31T22:00+00:00"]
    args += ["--end", "2026-01-01T01:00+00:00", "--wait", "--storage", url]
    async with Scheduler(_dags(), storage=url):
        code = await anyio.to_thread.run_sync(main, args)
    shown = capsys.readouterr()
    assert code == 0, shown.err
    assert "warning: 2 runs of the backfill are for points before the DAG's start" in shown.err
    assert "queued 4 runs of hourly" in shown.out
    assert "4 of 4 runs succeeded" in shown.out


def test_runs_since_lists_only_runs_at_or_after_the_time(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "--since", "1h", "--json", "--storage", url]) == 0
    assert [r["dag_id"] for r in json.loads(capsys.readouterr().out)] == ["diamond"]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert main(["runs", "--since", later, "--json", "--storage", url]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["runs", "--since", "yesterday", "--storage", url]) == 2
    assert "--since 'yesterday' is not an ISO-8601 time" in capsys.readouterr().err


def test_a_recovered_run_is_counted_in_the_singular(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'recover.db'}"

    async def record() -> None:
        async with Scheduler(_dags(), storage=url):
            pass

    anyio.run(record)
    assert main(["trigger", "diamond", "--storage", url]) == 0  # queued, nothing serves
    caplog.set_level(logging.INFO, logger="ppacer_async.scheduler")

    async def recover() -> None:
        async with Scheduler(_dags(), storage=url) as scheduler:
            await scheduler.wait_for_run(1, timeout=10)

    anyio.run(recover)
    assert "recovered 1 active run" in caplog.messages
    assert "serving 3 DAGs: diamond, weekdays, hourly" in caplog.messages


def test_a_task_function_that_takes_no_context_is_refused_when_decorated() -> None:
    with pytest.raises(DagDefinitionError, match=r"task 'nothing': nothing\(\) must take"):

        @task  # type: ignore[arg-type]
        async def nothing() -> None:
            pass

    with pytest.raises(DagDefinitionError, match=r"two\(ctx, extra\) must take the task context"):
        task(lambda ctx, extra: None, id="two")  # type: ignore[arg-type, misc]

    @task
    def with_default(ctx: TaskContext, retries_left: int = 3) -> None:
        pass

    assert with_default.id == "with_default"


def test_bash_completion_completes_commands_options_and_choices() -> None:
    script = _cli("completion", "bash").stdout
    probe = (
        script
        + '\nt() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _ppacer_async;'
        + ' echo "${COMPREPLY[*]}"; }\n'
        + "t ppacer-async tri\nt ppacer-async dags s\nt ppacer-async runs --sta\n"
        + "t ppacer-async runs --status fa\nt ppacer-async completion z\n"
    )
    done = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout.splitlines() == ["trigger", "show", "--status", "failed", "zsh"]
    zsh = _cli("completion", "zsh").stdout
    assert zsh.startswith("#compdef ppacer-async")
    assert "bashcompinit" in zsh and "complete -o filenames -F _ppacer_async" in zsh


def test_an_import_error_in_a_helper_module_names_the_helper_s_line(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("import os\n\nLIMIT = int(os.environ['NOPE_LIMIT'])\n")
    (tmp_path / "mydags.py").write_text("import helper\nfrom ppacer_async import DAG\n")
    done = subprocess.run(
        [*COMMAND, "serve", "mydags.py", "--storage", "memory://"],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert (
        "importing mydags.py failed at helper.py:3 (imported at line 1 of mydags.py): "
        "KeyError: 'NOPE_LIMIT'; --log-level DEBUG shows the traceback"
    ) in line

    debug = subprocess.run(
        [*COMMAND, "serve", "mydags.py", "--storage", "memory://", "--log-level", "DEBUG"],
        cwd=tmp_path,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'helper.py", line 3' in debug.stderr
