"""``ppacer-async serve``, driven as a user would: the real command in a subprocess."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from .helpers import Subprocess, assert_usage_error, command_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
COMMAND = [sys.executable, "-m", "ppacer_async"]
STOPPING = "stopping (in-flight attempts are saved as interrupted)"

TINY_DAG = """\
from datetime import UTC, datetime, timedelta

from ppacer_async import DAG, TaskContext, task
from ppacer_async.schedules import Interval


@task
async def ping(ctx: TaskContext) -> str:
    ctx.log.info("ping on attempt %d", ctx.attempt)
    return "pong"


@task
def pong(ctx: TaskContext) -> None:
    ctx.log.info("got %s", ctx.upstream["ping"])


tiny = DAG(
    "tiny",
    schedule=Interval(timedelta(milliseconds=200), min_every=timedelta(0)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
)
tiny.add(ping >> pong)
"""

STUCK_DAG = """\
import time
from datetime import UTC, datetime, timedelta

from ppacer_async import DAG, task
from ppacer_async.schedules import Interval


@task
def stuck(ctx):
    ctx.log.info("blocking for a minute")
    time.sleep(60)


dag = DAG(
    "stuck",
    schedule=Interval(timedelta(milliseconds=200), min_every=timedelta(0)),
    start=datetime(2026, 1, 1, tzinfo=UTC),
)
dag.add(stuck)
"""


class Served(Subprocess):
    """A running ``ppacer-async`` process; a thread reads its output lines."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        super().__init__([*COMMAND, *args], cwd=cwd, env=env)


class Serve(Protocol):
    def __call__(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> Served: ...


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start ``python -m ppacer_async ARGS`` processes, killed at the end if still alive."""
    started: list[Served] = []

    def start(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Served:
        served = Served(list(args), cwd or tmp_path, env or command_env())
        started.append(served)
        return served

    yield start
    for served in started:
        served.close()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        cwd=cwd,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def tiny_dag(tmp_path: Path) -> Path:
    path = tmp_path / "tinydags.py"
    path.write_text(TINY_DAG)
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_runs_scheduled_dag_and_stops_cleanly_on_signal(
    serve: Serve, tiny_dag: Path, tmp_path: Path, signum: int
) -> None:
    db = tmp_path / "x.db"
    served = serve("serve", str(tiny_dag), "--storage", f"sqlite:///{db}")

    served.wait_for_next(r"serving 1 DAG: tiny")
    run_id = served.wait_for_next(r"run (\d+) of tiny started \(schedule").group(1)
    served.wait_for_next(rf"run {run_id} task ping: ping on attempt 1$")
    served.wait_for_next(rf"run {run_id} task pong attempt 1 success in [\d.]+ ms")
    served.wait_for_next(rf"run {run_id} of tiny success in [\d.]+ s")

    assert served.stop(signum) == 0
    output = served.output()
    assert STOPPING in output
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO    stopped$", output, re.M)
    assert "Traceback" not in output
    assert db.exists()


def test_serve_exits_promptly_when_a_blocking_task_ignores_the_stop(
    serve: Serve, tmp_path: Path
) -> None:
    (tmp_path / "stuck.py").write_text(STUCK_DAG)
    served = serve("serve", "stuck.py", "--storage", f"sqlite:///{tmp_path}/x.db")
    served.wait_for_next(r"task stuck: blocking for a minute")

    assert served.stop() == 0
    output = served.output()
    assert STOPPING in output
    assert re.search(r"exiting without waiting for \d+ threads? still running", output)


def test_serve_log_lines_show_local_time_level_and_message(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    served = serve("serve", str(tiny_dag), "--storage", "memory://")
    line = served.wait_for_next(r"serving 1 DAG").string
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO    serving 1 DAG: tiny", line)
    assert served.stop() == 0


def test_serve_loads_module_attr_from_current_directory_with_storage_from_env(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    db = tmp_path / "from_env.db"
    served = serve("serve", "tinydags:tiny", env=command_env(PPACER_STORAGE=f"sqlite:///{db}"))
    served.wait_for_next(
        rf"loaded 1 DAG from tinydags:tiny; storage sqlite:///{re.escape(str(db))}"
    )
    served.wait_for_next(r"run \d+ of tiny success")
    assert served.stop() == 0
    assert db.exists()


def test_second_scheduler_on_one_sqlite_file_exits_2_with_one_line(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first = serve("serve", str(tiny_dag), "--storage", url)
    first.wait_for_next(r"serving 1 DAG")

    second = run_cli("serve", str(tiny_dag), "--storage", url, cwd=tmp_path)

    assert second.returncode == 2
    errors = [line for line in second.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, second.stderr
    assert "already served by another scheduler" in errors[0]
    assert "Traceback" not in second.stderr
    assert first.stop() == 0


@pytest.mark.parametrize(
    ("files", "target", "expected"),
    [
        pytest.param({}, "nope.py", "nope.py does not exist", id="missing-file"),
        pytest.param({}, "no_such_module", "no module named 'no_such_module'", id="no-module"),
        pytest.param(
            {"empty.py": "X = 1\n"}, "empty.py", "no DAGs in empty.py", id="module-without-dags"
        ),
        pytest.param(
            {"tinydags.py": TINY_DAG},
            "tinydags.py:missing",
            "tinydags.py has no attribute 'missing' (attributes holding DAGs: tiny)",
            id="attr-missing",
        ),
        pytest.param(
            {"tinydags.py": TINY_DAG},
            "tinydags.py:ping",
            "tinydags.py:ping is <FunctionTask 'ping'>, not a DAG or a list of DAGs",
            id="attr-not-dags",
        ),
        pytest.param(
            {"dags.py": "dags = ['etl']\n"},
            "dags.py",
            "dags.py:dags must hold only DAGs, but it holds str 'etl'",
            id="dags-not-dags",
        ),
        pytest.param(
            {
                "cyclic.py": (
                    "from ppacer_async import DAG, task\n"
                    "a = task(lambda ctx: None, id='a')\n"
                    "b = task(lambda ctx: None, id='b')\n"
                    "dag = DAG('loop').add(a >> b >> a)\n"
                )
            },
            "cyclic.py",
            "invalid DAG in cyclic.py: DAG 'loop' has a cycle: a >> b >> a",
            id="cycle",
        ),
        pytest.param(
            {"broken.py": "import json\n\nVALUE = 1 / 0\n"},
            "broken.py",
            "importing broken.py failed at line 3: ZeroDivisionError: division by zero",
            id="import-raises",
        ),
        pytest.param(
            {"needs.py": "import not_installed_anywhere\n"},
            "needs",
            "importing module 'needs' failed at needs.py:1: ModuleNotFoundError: "
            "No module named 'not_installed_anywhere'",
            id="module-import-raises",
        ),
    ],
)
def test_serve_cannot_load_dags_exits_2_with_one_line(
    tmp_path: Path, files: dict[str, str], target: str, expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    done = run_cli("serve", target, "--storage", "memory://", cwd=tmp_path)

    assert_usage_error(done, expected)


def test_serve_unknown_storage_scheme_exits_2(tiny_dag: Path, tmp_path: Path) -> None:
    done = run_cli("serve", str(tiny_dag), "--storage", "redis://localhost", cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ppacer-async: error: unknown storage URL scheme 'redis' in 'redis://localhost'; "
        "use memory://, sqlite:///path.db or postgresql://user@host/db"
    ]


def test_serve_refuses_a_file_that_is_not_a_ppacer_database(tiny_dag: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database\n")

    done = run_cli("serve", str(tiny_dag), "--storage", "sqlite:///notes.db", cwd=tmp_path)

    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("ppacer-async:")]
    assert len(errors) == 1, done.stderr
    assert "notes.db" in errors[0]
    assert "Traceback" not in done.stderr


def test_help_exits_0(tmp_path: Path) -> None:
    done = run_cli("--help", cwd=tmp_path)

    assert done.returncode == 0
    assert "serve" in done.stdout


def test_no_command_exits_2(tmp_path: Path) -> None:
    done = run_cli(cwd=tmp_path)

    assert done.returncode == 2
    assert "ppacer-async: error: name a command" in done.stderr


def test_examples_serve_and_stop_cleanly(serve: Serve, tmp_path: Path) -> None:
    served = serve("serve", str(EXAMPLES / "all.py"), "--storage", f"sqlite:///{tmp_path}/x.db")

    served.wait_for_next(
        r"serving 11 DAGs: hello, etl, rules, branching, fanout, timeouts, shell, http_check, "
        r"warehouse, extract, report"
    )

    assert served.stop() == 0
    assert STOPPING in served.output()
    assert "Traceback" not in served.output()
