"""``serve --web`` and ``ppacer-async web``: the real commands in subprocesses, driven
over HTTP as a user's browser or script would."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from . import test_cli_serve as cli_serve
from .helpers import assert_usage_error, command_env
from .test_cli_serve import Serve, Served, run_cli

serve = cli_serve.serve
tiny_dag = cli_serve.tiny_dag

pytestmark = pytest.mark.slow

WEB_LINE = r"web app at http://(\S+):(\d+)/"


def base_url(process: Served) -> str:
    found = process.wait_for(WEB_LINE)
    return f"http://127.0.0.1:{found.group(2)}"


def test_serve_with_web_serves_the_api_on_the_schedulers_loop_and_stops_on_signal(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    served = serve("serve", str(tiny_dag), "--storage", "sqlite:///web.db", "--web", "0")
    url = base_url(served)
    with httpx.Client(base_url=url, timeout=10) as http:
        health = http.get("/api/v1/health").json()
        run = http.post("/api/v1/dags/tiny/runs", json={})
        page = http.get("/")
        metrics_or_missing = http.get("/static/style.css")
    assert health["mode"] == "embedded"
    assert health["storage"] == "sqlite"
    assert run.status_code == 201
    served.wait_for(rf"run {run.json()['id']} of tiny success")
    assert page.status_code == 200
    assert metrics_or_missing.status_code == 200
    assert served.stop() == 0
    served.wait_for("uvicorn.*Application shutdown complete")


def test_serve_refuses_a_public_address_without_a_token(tiny_dag: Path, tmp_path: Path) -> None:
    done = run_cli(
        "serve", str(tiny_dag), "--storage", "memory://", "--web", "0.0.0.0:0", cwd=tmp_path
    )
    assert_usage_error(done, "refusing to serve the web app on 0.0.0.0 without a token")


def test_serve_on_a_public_address_with_a_token_file_needs_it_for_writes(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    served = serve(
        "serve",
        str(tiny_dag),
        "--storage",
        "memory://",
        "--web",
        "0.0.0.0:0",
        "--web-token-file",
        str(token_file),
    )
    with httpx.Client(base_url=base_url(served), timeout=10) as http:
        refused = http.post("/api/v1/dags/tiny/runs")
        allowed = http.post("/api/v1/dags/tiny/runs", headers={"authorization": "Bearer tok-123"})
        read = http.get("/api/v1/runs")
    assert refused.status_code == 401
    assert allowed.status_code == 201
    assert read.status_code == 200
    assert served.stop() == 0


def test_serve_read_only_refuses_writes_and_insecure_allows_a_public_address(
    serve: Serve, tiny_dag: Path
) -> None:
    served = serve(
        "serve",
        str(tiny_dag),
        "--storage",
        "memory://",
        "--web",
        "0.0.0.0:0",
        "--web-insecure",
        "--web-read-only",
    )
    with httpx.Client(base_url=base_url(served), timeout=10) as http:
        refused = http.post("/api/v1/dags/tiny/runs")
    assert refused.status_code == 403
    assert "read-only" in refused.json()["error"]
    assert served.stop() == 0


def test_web_options_without_web_are_a_usage_error(tiny_dag: Path, tmp_path: Path) -> None:
    done = run_cli("serve", str(tiny_dag), "--web-read-only", cwd=tmp_path)
    assert_usage_error(done, "need --web PORT")


def test_a_taken_port_is_a_usage_error(tiny_dag: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "serve", str(tiny_dag), "--storage", "memory://", "--web", str(port), cwd=tmp_path
        )
    assert_usage_error(done, f"cannot listen on 127.0.0.1:{port}")


def test_web_command_serves_a_storage_that_another_process_schedules(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    scheduler = serve("serve", str(tiny_dag), "--storage", "sqlite:///shared.db")
    scheduler.wait_for("serving 1 DAG")
    web = serve("web", "--storage", "sqlite:///shared.db", "--bind", "127.0.0.1:0")
    with httpx.Client(base_url=base_url(web), timeout=10) as http:
        health = http.get("/api/v1/health").json()
        run = http.post("/api/v1/dags/tiny/runs", json={})
        scheduler.wait_for(rf"run {run.json()['id']} of tiny success")
        detail = http.get(f"/api/v1/runs/{run.json()['id']}").json()
    assert health["mode"] == "standalone"
    assert len(health["processes"]) == 1
    assert detail["status"] == "success"
    assert web.stop() == 0
    assert scheduler.stop() == 0


def test_web_command_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    done = run_cli("web", "--storage", "sqlite:///missing.db", cwd=tmp_path)
    assert_usage_error(done, "no database at missing.db")


def test_web_command_with_token_from_environment(
    serve: Serve, tiny_dag: Path, tmp_path: Path
) -> None:
    scheduler = serve("serve", str(tiny_dag), "--storage", "sqlite:///env.db")
    scheduler.wait_for("serving 1 DAG")
    web = serve(
        "web",
        "--storage",
        "sqlite:///env.db",
        "--bind",
        "0.0.0.0:0",
        env=command_env(PPACER_WEB_TOKEN="from-env"),
    )
    with httpx.Client(base_url=base_url(web), timeout=10) as http:
        refused = http.post("/api/v1/dags/tiny/pause")
        allowed = http.post("/api/v1/dags/tiny/pause", headers={"authorization": "Bearer from-env"})
    assert refused.status_code == 401
    assert allowed.json()["paused"] is True
    assert web.stop() == 0
    assert scheduler.stop() == 0
