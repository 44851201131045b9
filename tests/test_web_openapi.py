"""The OpenAPI document matches what the routes do: schemathesis generates requests
from it, and no response is a server error or breaks the document."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.from_thread
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ppacer_async import DAG, Scheduler, TaskContext, task
from ppacer_async.schedules import Interval
from ppacer_async.storage.sqlite import SQLiteStorage
from ppacer_async.web import create_app

from .helpers import T0

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@task
async def echo(ctx: TaskContext) -> Any:
    ctx.log.info("params %s", ctx.params)
    return ctx.params


@task(retries=0)
async def broken(ctx: TaskContext) -> None:
    raise RuntimeError("broken on purpose")


def dags() -> list[DAG]:
    from datetime import timedelta

    return [
        DAG("echo").add(echo),
        DAG("broken").add(broken),
        DAG("hourly", schedule=Interval(timedelta(hours=1)), start=T0).add(echo),
    ]


async def _send(http: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
    kwargs = dict(kwargs)
    if kwargs.pop("cookies", None):
        raise AssertionError("the document names no cookie parameter")
    return await http.request(**kwargs)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_response_outside_the_document(
    tmp_path: Any,
) -> None:
    scheduler = Scheduler(dags(), storage=SQLiteStorage(path=str(tmp_path / "ppacer.db")))
    app = create_app(scheduler)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(scheduler),
    ):
        runs = [
            portal.call(scheduler.trigger, "echo"),
            portal.call(scheduler.trigger, "broken"),
        ]
        for run in runs:
            portal.call(scheduler.wait_for_run, run.id, 10)
        run_ids = [run.id for run in runs]
        document = portal.call(_send, http, {"method": "GET", "url": "/api/v1/openapi.json"})
        schema = schemathesis.openapi.from_dict(document.json())
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        operations = [op for op in operations if op.path != "/events"]  # an endless stream
        assert len(operations) == 15

        for operation in operations:

            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(), data=st.data())
            def check(case: Any, data: st.DataObject) -> None:
                # Known ids half of the time, so the routes' success paths run too.
                if "dag_id" in (case.path_parameters or {}):
                    case.path_parameters["dag_id"] = data.draw(
                        st.sampled_from([case.path_parameters["dag_id"], "echo", "hourly"])
                    )
                if "run_id" in (case.path_parameters or {}):
                    case.path_parameters["run_id"] = data.draw(
                        st.sampled_from([case.path_parameters["run_id"], *run_ids])
                    )
                kwargs = case.as_transport_kwargs(base_url="http://testserver/api/v1")
                response = portal.call(_send, http, kwargs)
                case.validate_response(response, checks=CHECKS)

            check()
        portal.call(http.aclose)
