"""The OpenAPI 3 document of the JSON API, written by hand to say exactly what the
routes do (a test runs schemathesis against it)."""

from __future__ import annotations

from typing import Any

from .._enums import DagRunStatus, RunTrigger, TaskStatus

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


#: The largest id storage can hold (64-bit).
_MAX_ID = 2**63 - 1

_TIME: Schema = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = _nullable(_TIME)


def _object(properties: dict[str, Schema], *, extra: bool = False) -> Schema:
    return {
        "type": "object",
        "required": sorted(properties),
        "properties": properties,
        "additionalProperties": extra,
    }


def _schemas() -> dict[str, Schema]:
    run: dict[str, Schema] = {
        "id": {"type": "integer"},
        "dag_id": {"type": "string"},
        "logical_time": _TIME,
        "status": {"type": "string", "enum": [s.value for s in DagRunStatus]},
        "trigger": {"type": "string", "enum": [t.value for t in RunTrigger]},
        "params": {"type": "object"},
        "dag_version": {"type": "integer"},
        "created_at": _TIME,
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
        "duration_seconds": _nullable({"type": "number"}),
        "note": _nullable({"type": "string", "description": "why the run ended as it did"}),
    }
    attempt: dict[str, Schema] = {
        "task_id": {"type": "string"},
        "map_index": _nullable(
            {"type": "integer", "description": "the instance of a mapped task (process[3])"}
        ),
        "attempt": {"type": "integer", "minimum": 1},
        "status": {"type": "string", "enum": [s.value for s in TaskStatus]},
        "reason": {"type": "string"},
        "scheduled_at": _TIME_OR_NULL,
        "started_at": _TIME_OR_NULL,
        "finished_at": _TIME_OR_NULL,
        "duration_seconds": _nullable({"type": "number"}),
        "error": _nullable({"type": "string"}),
        "result": {"description": "the JSON value the task returned"},
    }
    summary: dict[str, Schema] = {
        "dag_id": {"type": "string"},
        "schedule": _nullable({"type": "string"}),
        "paused": {"type": "boolean"},
        "next_due": _TIME_OR_NULL,
        "last_run": _nullable(_ref("Run")),
        "served": {
            "type": "boolean",
            "description": "whether a live scheduler process serves the DAG",
        },
        "task_count": {"type": "integer"},
        "version": {"type": "integer"},
        "description": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    }
    process: dict[str, Schema] = {
        "id": {"type": "string"},
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "role": {"type": "string"},
        "started_at": _TIME_OR_NULL,
        "last_seen": _TIME_OR_NULL,
        # the DAGs it serves; null when only its lock says it serves (no record)
        "dag_ids": _nullable({"type": "array", "items": {"type": "string"}}),
    }
    return {
        "Error": _object({"error": {"type": "string"}}),
        "Run": _object(run),
        "Attempt": _object(attempt),
        "RunTask": _object(
            {
                "task_id": {"type": "string"},
                "upstream": {"type": "array", "items": {"type": "string"}},
                "status": _nullable({"type": "string", "enum": [s.value for s in TaskStatus]}),
                "waiting": _nullable({"type": "string", "enum": ["scheduled", "pending"]}),
                "attempts": {"type": "array", "items": _ref("Attempt")},
                "branch": {"type": "boolean", "description": "a branch task"},
            }
        ),
        "RunDetail": _object({**run, "tasks": {"type": "array", "items": _ref("RunTask")}}),
        "RunPage": _object(
            {
                "runs": {"type": "array", "items": _ref("Run")},
                "next_before": _nullable(
                    {
                        "type": "integer",
                        "description": "pass as `before` for the next page; null on the last",
                    }
                ),
            }
        ),
        "Runs": _object({"runs": {"type": "array", "items": _ref("Run")}}),
        "LogRecord": _object(
            {
                "run_id": {"type": "integer"},
                "task_id": {"type": "string"},
                "attempt": {"type": "integer"},
                "time": _TIME,
                "level": {"type": "string"},
                "message": {"type": "string"},
            }
        ),
        "LogPage": _object(
            {
                "run": _ref("Run"),
                "records": {"type": "array", "items": _ref("LogRecord")},
                "next_after": {
                    "type": "integer",
                    "description": "pass as `after` to read the records written since",
                },
            }
        ),
        "DagSummary": _object(summary),
        "DagList": _object({"dags": {"type": "array", "items": _ref("DagSummary")}}),
        "DagDetail": _object(
            {
                **summary,
                "start": _TIME_OR_NULL,
                "catchup": {"type": "boolean"},
                "max_active_runs": {"type": "integer"},
                "params": {"type": "object"},
                "tasks": {
                    "type": "array",
                    "items": _object(
                        {
                            "task_id": {"type": "string"},
                            "upstream": {"type": "array", "items": {"type": "string"}},
                            "options": {"type": "object"},
                        }
                    ),
                },
            }
        ),
        "Process": _object(process),
        "Health": _object(
            {
                "version": {"type": "string"},
                "storage": {"type": "string"},
                "mode": {"type": "string", "enum": ["embedded", "standalone"]},
                "read_only": {"type": "boolean"},
                "processes": {"type": "array", "items": _ref("Process")},
            }
        ),
        "Statistics": {
            "type": "object",
            "properties": {"pools": {"type": "array", "items": _ref("Pool")}},
            "additionalProperties": {"type": "integer"},
            "description": "Scheduler.statistics() of the serving process",
        },
        "Pool": _object(
            {
                "name": {"type": "string"},
                "slots": {"type": "integer"},
                "used": {"type": "integer"},
                "waiting": {"type": "integer"},
                "updated_at": _TIME_OR_NULL,
            }
        ),
        "Pools": _object({"pools": {"type": "array", "items": _ref("Pool")}}),
    }


_ERRORS = {
    400: "the request body is not a JSON object",
    401: "a token is needed for writes and this request has none or a wrong one",
    403: "writes are turned off (read-only), or the request comes from another site",
    404: "no such DAG, run, task or path",
    409: "the state of the DAG or run does not allow it",
    422: "a value is invalid; the error says which and why",
    503: "the storage cannot be reached",
}


def _json_response(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    ok: tuple[int, str, Schema],
    errors: tuple[int, ...],
    *,
    parameters: list[Schema] | None = None,
    body: Schema | None = None,
    body_required: bool = False,
    write: bool = False,
) -> Schema:
    codes = sorted({*errors, 404, 503, *((400, 401, 403) if write else ())})
    responses: dict[str, Schema] = {str(ok[0]): _json_response(ok[1], ok[2])}
    for code in codes:
        responses[str(code)] = _json_response(_ERRORS[code], _ref("Error"))
    operation: Schema = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    if write:
        operation["security"] = [{}, {"bearer": []}, {"cookie": []}]
    return operation


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_DAG_ID: Schema = {"name": "dag_id", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN_ID: Schema = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}


def openapi_document(version: str, base: str) -> Schema:
    """The document served at ``/api/v1/openapi.json``; ``base`` is the API's path."""
    statuses = [s.value for s in DagRunStatus]
    paths: dict[str, Schema] = {
        "/health": {
            "get": _operation(
                "Version, storage kind, live scheduler processes and when each was last seen",
                (200, "the server's health", _ref("Health")),
                (),
            )
        },
        "/dags": {
            "get": _operation(
                "Every recorded DAG: schedule, paused, next due, last run, served",
                (200, "the DAGs, by id", _ref("DagList")),
                (),
            )
        },
        "/dags/{dag_id}": {
            "get": _operation(
                "A DAG with its tasks, their options and upstream ids",
                (200, "the DAG", _ref("DagDetail")),
                (422,),
                parameters=[_DAG_ID],
            )
        },
        "/dags/{dag_id}/runs": {
            "post": _operation(
                "Queue a manual run; params override the DAG's defaults",
                (201, "the run queued", _ref("Run")),
                (409, 422),
                parameters=[_DAG_ID],
                body={"type": "object", "properties": {"params": {"type": "object"}}},
                write=True,
            )
        },
        "/dags/{dag_id}/pause": {
            "post": _operation(
                "Stop the DAG's schedule from creating runs (manual runs still run)",
                (200, "the DAG as it is now", _ref("DagSummary")),
                (409, 422),
                parameters=[_DAG_ID],
                body={"type": "object"},
                write=True,
            )
        },
        "/dags/{dag_id}/unpause": {
            "post": _operation(
                'Resume the schedule: from "now" (skip the points missed) or from the "last" '
                "point (the DAG's catch-up rule)",
                (200, "the DAG as it is now", _ref("DagSummary")),
                (409, 422),
                parameters=[_DAG_ID],
                body={
                    "type": "object",
                    "properties": {"from": {"type": "string", "enum": ["now", "last"]}},
                },
                write=True,
            )
        },
        "/dags/{dag_id}/backfill": {
            "post": _operation(
                "Queue a run for every schedule point in [start, end] that has none",
                (201, "the runs created, oldest first", _ref("Runs")),
                (409, 422),
                parameters=[_DAG_ID],
                body={
                    "type": "object",
                    "required": ["start", "end"],
                    "properties": {"start": _TIME, "end": _TIME},
                },
                body_required=True,
                write=True,
            )
        },
        "/runs": {
            "get": _operation(
                "Runs, newest first, a page at a time",
                (200, "a page of runs", _ref("RunPage")),
                (422,),
                parameters=[
                    _query("dag_id", {"type": "string"}, "only this DAG's runs"),
                    _query("status", {"type": "string", "enum": statuses}, "only this status"),
                    _query("since", _TIME, "only runs whose logical time is at or after this"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "at most this many runs",
                    ),
                    _query(
                        "before",
                        {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
                        "only runs with a lower id: the next_before of the previous page",
                    ),
                ],
            )
        },
        "/runs/{run_id}": {
            "get": _operation(
                "A run and every task of it with all its attempts",
                (200, "the run", _ref("RunDetail")),
                (),
                parameters=[_RUN_ID],
            )
        },
        "/runs/{run_id}/restart": {
            "post": _operation(
                "Run again what did not succeed in a failed or cancelled run",
                (200, "the run, queued again", _ref("Run")),
                (409,),
                parameters=[_RUN_ID],
                body={"type": "object"},
                write=True,
            )
        },
        "/runs/{run_id}/cancel": {
            "post": _operation(
                "Cancel a queued or running run: running attempts are cancelled, tasks "
                "not started never start",
                (200, "the run, cancelled", _ref("Run")),
                (409, 422),
                parameters=[_RUN_ID],
                body={"type": "object", "properties": {"note": {"type": "string"}}},
                write=True,
            )
        },
        "/runs/{run_id}/logs": {
            "get": _operation(
                "A run's task log records in the order written",
                (200, "a page of records", _ref("LogPage")),
                (422,),
                parameters=[
                    _RUN_ID,
                    _query("task_id", {"type": "string"}, "only this task's records"),
                    _query(
                        "attempt",
                        {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
                        "only this attempt",
                    ),
                    _query(
                        "after",
                        {"type": "integer", "minimum": 0, "maximum": _MAX_ID, "default": 0},
                        "skip this many records: the next_after of the previous page",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 10000},
                        "at most this many records",
                    ),
                ],
            )
        },
        "/events": {
            "get": {
                "summary": "Server-sent events: run and task status changes as they are "
                "committed (events `run` and `task`, data a JSON object; `resync` when the "
                "client fell too far behind and should reload)",
                "parameters": [
                    _query(
                        "run_id",
                        {"type": "integer", "minimum": 1, "maximum": _MAX_ID},
                        "only this run",
                    ),
                    _query("dag_id", {"type": "string"}, "only this DAG's runs"),
                ],
                "responses": {
                    "200": {
                        "description": "an endless event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **{
                        str(code): _json_response(_ERRORS[code], _ref("Error"))
                        for code in (404, 422, 503)
                    },
                },
            }
        },
        "/pools": {
            "get": _operation(
                "Each pool's slots, used and waiting, as the scheduling process last recorded them",
                (200, "the pools", _ref("Pools")),
                (),
            )
        },
        "/statistics": {
            "get": _operation(
                "The serving scheduler's counters (the app embedded in the scheduler only)",
                (200, "Scheduler.statistics()", _ref("Statistics")),
                (409,),
            )
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ppacer-async",
            "version": version,
            "description": "Watch and steer a ppacer-async scheduler. Times are ISO 8601 "
            "in UTC (a time sent without an offset is taken as UTC). With a token, every "
            "write needs it as a bearer token or the cookie that POST /login sets.",
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "ppacer_session"},
            },
        },
    }
