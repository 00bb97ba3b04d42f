"""The OpenAPI 3 document of the API (API.md as data), served at GET /v1/openapi.json.

One place: every path, parameter, body and response the server can answer is written here,
and tests/test_openapi.py checks it both ways (every Flask rule under /v1 is in it, and
schemathesis finds no response the document does not describe).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import jsonify

from ..models import JOB_STATES, KEY_SCOPES, RUN_STATUSES, RUN_TRIGGERS
from ..schedules import INTERVALS
from . import bp

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"

QUERY_STATUSES = ("queued", "running", "completed", "failed")
SOURCE_STATUSES = ("ready", "needs_credentials", "unavailable")
WEBHOOK_EVENTS = ("job.completed", "job.failed")
EXPORT_FORMATS = ("json", "csv", "ndjson")

# Limits the server checks (webapp/jobs/service.py, webapp/api/serialize.py, schedules.py).
PROMPT_MAX = 2000
NAME_MAX = 200
RESULT_LIMIT_MAX = 1000
SOURCES_MAX = 50
URL_MAX = 2000
PREVIEW_COUNT_MAX = 50
PAGE_DEFAULT, PAGE_MAX = 50, 200
RECORDS_PAGE_DEFAULT, RECORDS_PAGE_MAX = 100, 1000

_ERROR_CODES = {
    "400": ("bad_request", "malformed_json"),
    "401": ("unauthorized",),
    "403": ("forbidden",),
    "404": ("not_found",),
    "409": ("conflict",),
    "413": ("payload_too_large",),
    "422": ("invalid_field",),
    "429": ("rate_limited",),
}
_ERROR_DESCRIPTIONS = {
    "400": "The body is not a JSON object (`malformed_json`), or a cursor is not one the "
    "server gave out (`bad_request`, field `cursor`).",
    "401": "No API key, or an unknown or revoked one.",
    "403": "The key's scope is too low for this operation.",
    "404": "Nothing with this id in the key's project (another project's resource is 404 "
    "too, never 403).",
    "409": "The resource is in a state that does not allow this now.",
    "413": "The request body is larger than the server accepts.",
    "422": "A field is invalid; `field` names it.",
    "429": "Rate limited: retry after the number of seconds in `Retry-After`.",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict) -> dict:
    """A schema that also allows null (OpenAPI 3.0 spelling; a $ref needs an allOf around it)."""
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def _text_field(maximum: int) -> dict:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": maximum,
        "pattern": r"\S",
        "description": f"Not only whitespace; at most {maximum} characters.",
    }


_TIMESTAMP = {"type": "string", "format": "date-time", "example": "2026-04-30T08:00:00Z"}
_NULLABLE_TIMESTAMP = _nullable(_TIMESTAMP)


def _obj(properties: dict, required: list[str] | None = None, extra: bool = False, **more) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = extra
    schema.update(more)
    return schema


def _page_of(item: dict) -> dict:
    return _obj(
        {
            "data": {"type": "array", "items": item},
            "next_cursor": {
                "type": "string",
                "nullable": True,
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
        ["data", "next_cursor"],
    )


def _list_of(item: dict) -> dict:
    """A whole list (no paging) in a `data` member."""
    return _obj({"data": {"type": "array", "items": item}}, ["data"])


def _schemas() -> dict:
    interval_names = list(INTERVALS)
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                        "message": {"type": "string", "minLength": 1},
                        "field": {"type": "string", "description": "The field at fault."},
                    },
                    ["code", "message"],
                )
            },
            ["error"],
        ),
        "DateRange": {
            "description": 'Absolute (`{"start", "end"}`, either side optional) or relative to '
            'the run\'s start (`{"last": "24h" | "7d" | "2w"}`).',
            "oneOf": [
                _obj(
                    {"last": {"type": "string", "pattern": r"^\d{1,4}[hdw]$", "example": "24h"}},
                    ["last"],
                ),
                _obj({"start": _NULLABLE_TIMESTAMP, "end": _NULLABLE_TIMESTAMP}),
            ],
        },
        "SourceSpec": {
            "description": 'A source id (`"reddit"`; a URL is taken as an RSS feed) or an object '
            'for configurable sources, e.g. `{"type": "rss", "url": "https://…"}`.',
            "oneOf": [
                {"type": "string", "minLength": 1, "example": "hackernews"},
                _obj({"type": {"type": "string", "minLength": 1}}, ["type"], extra=True),
            ],
        },
        "SourceConfig": _obj(
            {"type": {"type": "string"}},
            ["type"],
            extra=True,
            description="A source as stored: its type and its options (e.g. `url`).",
        ),
        "ScheduleInput": {
            "description": 'An interval name (`"every_6_hours"`), a 5-field cron expression '
            '(`"0 8 * * *"`), `{"type": "interval", "value": …}` or `{"type": "cron", '
            '"expression": …}`.',
            "oneOf": [
                {"type": "string", "minLength": 1, "example": "every_6_hours"},
                _obj(
                    {
                        "type": {"type": "string", "enum": ["interval"]},
                        "value": {"type": "string", "enum": interval_names},
                    },
                    ["type", "value"],
                    extra=True,
                ),
                _obj(
                    {
                        "type": {"type": "string", "enum": ["cron"]},
                        "expression": {"type": "string", "minLength": 1, "example": "0 8 * * *"},
                    },
                    ["type", "expression"],
                    extra=True,
                ),
            ],
        },
        "Schedule": {
            "oneOf": [
                _obj(
                    {
                        "type": {"type": "string", "enum": ["interval"]},
                        "value": {"type": "string", "enum": interval_names},
                        "description": {"type": "string"},
                    },
                    ["type", "value", "description"],
                ),
                _obj(
                    {
                        "type": {"type": "string", "enum": ["cron"]},
                        "expression": {"type": "string"},
                        "description": {"type": "string", "example": "At 08:00"},
                    },
                    ["type", "expression", "description"],
                ),
            ],
        },
        "Job": _obj(
            {
                "id": {"type": "string", "pattern": "^job_", "example": "job_01JT…"},
                "name": {"type": "string"},
                "prompt": {"type": "string"},
                "sources": {"type": "array", "items": _ref("SourceConfig")},
                "schedule": _ref("Schedule"),
                "timezone": {"type": "string", "example": "UTC"},
                "date_range": _nullable(_ref("DateRange")),
                "limit": {"type": "integer"},
                "state": {"type": "string", "enum": list(JOB_STATES)},
                "next_run_at": _NULLABLE_TIMESTAMP,
                "last_sync_at": _NULLABLE_TIMESTAMP,
                "last_run": _nullable(_ref("Run")),
                "last_error": {"type": "string", "nullable": True},
                "webhook_url": {"type": "string", "nullable": True},
                "overdue": {
                    "type": "boolean",
                    "description": "An active job whose slot passed more than the grace period "
                    "(BYTESTACK_OVERDUE_GRACE_SECONDS) ago without a run.",
                },
                "created_at": _TIMESTAMP,
                "updated_at": _TIMESTAMP,
            },
            [
                "id",
                "name",
                "prompt",
                "sources",
                "schedule",
                "timezone",
                "date_range",
                "limit",
                "state",
                "next_run_at",
                "last_sync_at",
                "last_run",
                "last_error",
                "webhook_url",
                "overdue",
                "created_at",
                "updated_at",
            ],
        ),
        "JobCreate": _obj(
            {
                "name": _text_field(NAME_MAX),
                **_query_fields(),
                "schedule": _ref("ScheduleInput"),
                "timezone": {
                    "type": "string",
                    "nullable": True,
                    "description": 'IANA name; default `"UTC"`.',
                    "example": "Europe/Berlin",
                },
                "webhook_url": {
                    "type": "string",
                    "nullable": True,
                    "maxLength": URL_MAX,
                    "description": "An http(s) URL that receives each run's payload.",
                },
            },
            ["name", "prompt", "sources", "schedule"],
            extra=True,
            description="Fields the server does not know are ignored.",
        ),
        "JobUpdate": _obj(
            {
                "name": _text_field(NAME_MAX),
                **_query_fields(),
                "schedule": _ref("ScheduleInput"),
                "timezone": {"type": "string", "nullable": True},
                "webhook_url": {"type": "string", "nullable": True, "maxLength": URL_MAX},
                "state": {
                    "type": "string",
                    "nullable": True,
                    "enum": ["paused", "active", None],
                    "description": '"paused" pauses the job, "active" resumes it.',
                },
            },
            description="Any writable field; any other field is refused with 422.",
        ),
        "Run": _obj(
            {
                "id": {"type": "string", "example": "run_01JT…"},
                "job_id": {
                    "type": "string",
                    "nullable": True,
                    "description": "Null only for a one-off query (trigger `query`).",
                },
                "trigger": {"type": "string", "enum": list(RUN_TRIGGERS)},
                "status": {"type": "string", "enum": list(RUN_STATUSES)},
                "scheduled_for": _TIMESTAMP,
                "started_at": _NULLABLE_TIMESTAMP,
                "finished_at": _NULLABLE_TIMESTAMP,
                "duration_ms": {"type": "integer", "nullable": True},
                "record_count": {"type": "integer", "minimum": 0},
                "new_count": {"type": "integer", "minimum": 0},
                "error": {"type": "string", "nullable": True},
                "result_url": {
                    "type": "string",
                    "nullable": True,
                    "description": "The run's records (set once the run has completed).",
                },
            },
            [
                "id",
                "job_id",
                "trigger",
                "status",
                "scheduled_for",
                "started_at",
                "finished_at",
                "duration_ms",
                "record_count",
                "new_count",
                "error",
                "result_url",
            ],
        ),
        "Record": _obj(
            {
                "id": {"type": "string", "example": "rec_01JT…"},
                "source": {"type": "string"},
                "url": {"type": "string", "nullable": True},
                "title": {"type": "string", "nullable": True},
                "text": {"type": "string", "nullable": True},
                "author": {"type": "string", "nullable": True},
                "published_at": _NULLABLE_TIMESTAMP,
                "metrics": {"type": "object", "additionalProperties": True},
                "is_new": {"type": "boolean"},
            },
            ["id", "source", "url", "title", "text", "author", "published_at", "metrics", "is_new"],
        ),
        "QueryCreate": _obj(
            _query_fields(),
            ["prompt", "sources"],
            extra=True,
            description="Fields the server does not know are ignored.",
        ),
        "QueryAccepted": _obj(
            {
                "id": {"type": "string", "pattern": "^qry_"},
                "status": {
                    "type": "string",
                    "enum": list(QUERY_STATUSES),
                    "description": "`queued`; `failed` when the queue could not take it.",
                },
                "created_at": _TIMESTAMP,
            },
            ["id", "status", "created_at"],
        ),
        "Query": _obj(
            {
                "id": {"type": "string", "pattern": "^qry_"},
                "status": {"type": "string", "enum": list(QUERY_STATUSES)},
                "prompt": {"type": "string", "nullable": True},
                "created_at": _TIMESTAMP,
                "started_at": _NULLABLE_TIMESTAMP,
                "finished_at": _NULLABLE_TIMESTAMP,
                "record_count": {"type": "integer", "minimum": 0},
                "results": {
                    "type": "array",
                    "items": _ref("Record"),
                    "description": "Only when completed.",
                },
                "warnings": {
                    "type": "string",
                    "nullable": True,
                    "description": "When completed while some sources failed.",
                },
                "error": {
                    "type": "string",
                    "nullable": True,
                    "description": "Only when failed.",
                },
            },
            ["id", "status", "prompt", "created_at", "started_at", "finished_at", "record_count"],
        ),
        "SchedulePreviewRequest": _obj(
            {
                "schedule": _ref("ScheduleInput"),
                "timezone": {"type": "string", "nullable": True},
                "count": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": PREVIEW_COUNT_MAX,
                    "default": 5,
                },
            },
            ["schedule"],
            extra=True,
        ),
        "SchedulePreview": _obj(
            {
                "description": {"type": "string"},
                "next_runs": {"type": "array", "items": _TIMESTAMP},
            },
            ["description", "next_runs"],
        ),
        "SourceStatus": {"type": "string", "enum": list(SOURCE_STATUSES)},
        "Source": _obj(
            {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "status": _ref("SourceStatus"),
                "detail": {"type": "string"},
            },
            ["id", "name", "status", "detail"],
        ),
        "StorageFile": {
            **_obj(
                {
                    "key": {
                        "type": "string",
                        "example": "run_01JT…_2026-04-30T08-00-00Z.json",
                    },
                    "job_id": {"type": "string", "nullable": True},
                    "run_id": {"type": "string"},
                    "query_id": {"type": "string"},
                    "created_at": _TIMESTAMP,
                    "record_count": {"type": "integer", "minimum": 0},
                },
                ["key", "job_id", "created_at", "record_count"],
            ),
            "description": "A result file: `run_id` for a job's run, `query_id` for a query.",
            "oneOf": [{"required": ["run_id"]}, {"required": ["query_id"]}],
        },
        "ExportRecord": {
            "allOf": [_ref("Record")],
            "description": "A record of a result file (its run is the file's).",
        },
        "ResultFile": _obj(
            {
                "key": {"type": "string"},
                "job_id": {"type": "string", "nullable": True},
                "run_id": {"type": "string"},
                "query_id": {"type": "string"},
                "created_at": _TIMESTAMP,
                "record_count": {"type": "integer", "minimum": 0},
                "job_name": {"type": "string", "nullable": True},
                "prompt": {"type": "string", "nullable": True},
                "trigger": {"type": "string", "enum": list(RUN_TRIGGERS)},
                "status": {"type": "string", "enum": list(RUN_STATUSES)},
                "scheduled_for": _TIMESTAMP,
                "started_at": _NULLABLE_TIMESTAMP,
                "finished_at": _NULLABLE_TIMESTAMP,
                "new_count": {"type": "integer", "minimum": 0},
                "error": {"type": "string", "nullable": True},
                "records": {"type": "array", "items": _ref("Record")},
            },
            ["key", "job_id", "created_at", "record_count", "trigger", "status", "records"],
        ),
        "Webhook": _obj(_webhook_fields(), ["id", "url", "events", "created_at"]),
        "WebhookCreate": _obj(
            {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": URL_MAX,
                    "description": "An http(s) URL with a host.",
                },
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)},
                },
            },
            ["url", "events"],
            extra=True,
        ),
        "WebhookCreated": _obj(
            {**_webhook_fields(), "secret": {"type": "string", "description": "Shown once."}},
            ["id", "url", "events", "created_at", "secret"],
        ),
        "WebhookSecret": _obj(
            {"id": {"type": "string"}, "secret": {"type": "string"}}, ["id", "secret"]
        ),
        "ApiKey": _obj(_key_fields(), list(_key_fields())),
        "ApiKeyCreate": _obj(
            {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "description": "What uses the key, e.g. “CI export”.",
                },
                "scope": {"type": "string", "enum": list(KEY_SCOPES)},
            },
            ["name", "scope"],
            extra=True,
        ),
        "ApiKeyCreated": _obj(
            {**_key_fields(), "key": {"type": "string", "description": "The key; shown once."}},
            [*_key_fields(), "key"],
        ),
    }


def _webhook_fields() -> dict:
    return {
        "id": {"type": "string"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(WEBHOOK_EVENTS)}},
        "created_at": _TIMESTAMP,
    }


def _key_fields() -> dict:
    return {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "scope": {"type": "string", "enum": list(KEY_SCOPES)},
        "prefix": {"type": "string"},
        "created_at": _TIMESTAMP,
        "last_used_at": _NULLABLE_TIMESTAMP,
        "revoked_at": _NULLABLE_TIMESTAMP,
    }


def _query_fields() -> dict:
    """prompt, sources, date_range and limit: shared by queries and jobs."""
    return {
        "prompt": _text_field(PROMPT_MAX),
        "sources": {
            "type": "array",
            "minItems": 1,
            "maxItems": SOURCES_MAX,
            "items": _ref("SourceSpec"),
        },
        "date_range": _nullable(_ref("DateRange")),
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": RESULT_LIMIT_MAX,
            "default": 100,
            "nullable": True,
            "description": "The newest records first, across all sources.",
        },
    }


def _responses_components() -> dict:
    responses = {}
    for status, codes in _ERROR_CODES.items():
        schema = {
            "allOf": [
                _ref("Error"),
                {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {"code": {"type": "string", "enum": list(codes)}},
                        }
                    },
                },
            ]
        }
        response: dict[str, Any] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"schema": schema}},
        }
        if status == "429":
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = response
    return {f"Error{status}": response for status, response in responses.items()}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema_name: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _param(name: str, where: str, schema: dict, description: str = "", required=None) -> dict:
    param = {"name": name, "in": where, "schema": schema, "required": where == "path"}
    if required is not None:
        param["required"] = required
    if description:
        param["description"] = description
    return param


def _path_id(name: str, description: str) -> dict:
    return _param(name, "path", {"type": "string"}, description)


def _cursor() -> dict:
    return _param("cursor", "query", {"type": "string"}, "The `next_cursor` of the previous page.")


def _limit(default: int, maximum: int) -> dict:
    return _param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
        f"Items per page, 1–{maximum}.",
    )


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    scope: str | None,
    ok: dict[str, dict],
    errors: tuple[str, ...],
    parameters: list[dict] | None = None,
    body: str | None = None,
) -> dict:
    """One operation; `errors` lists the statuses besides 401/403/429 that it can answer."""
    statuses = set(errors) | {"429"}
    if scope is not None:
        statuses.add("401")
        # A read key is the lowest scope: read operations can never answer 403.
        if scope != "read":
            statuses.add("403")
    if body is not None:
        statuses |= {"400", "413"}
    responses = dict(ok)
    for status in sorted(statuses):
        responses[status] = {"$ref": f"#/components/responses/Error{status}"}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    if scope is None:
        operation["security"] = []
    else:
        operation["description"] = f"Needs a key with scope `{scope}` or higher."
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = _body(body)
    return operation


_NO_CONTENT = {"204": {"description": "Deleted."}}


def _paths() -> dict:
    job_id = _path_id("job_id", "A job id (`job_…`).")
    run_id = _path_id("run_id", "A run id (`run_…`).")
    job_returned = {"200": _json(_ref("Job"), "The job.")}
    return {
        "/v1/openapi.json": {
            "get": _operation(
                "getOpenAPI",
                "This document.",
                "meta",
                None,
                {"200": _json({"type": "object"}, "The OpenAPI document.")},
                (),
            )
        },
        "/v1/jobs": {
            "get": _operation(
                "listJobs",
                "Jobs of the key's project, newest first.",
                "jobs",
                "read",
                {"200": _json(_page_of(_ref("Job")), "A page of jobs.")},
                ("400", "422"),
                [
                    _param(
                        "state",
                        "query",
                        {"type": "string", "enum": list(JOB_STATES)},
                        "Only jobs in this state.",
                    ),
                    _cursor(),
                    _limit(PAGE_DEFAULT, PAGE_MAX),
                ],
            ),
            "post": _operation(
                "createJob",
                "Create a job.",
                "jobs",
                "write",
                {"201": _json(_ref("Job"), "The new job.")},
                ("422",),
                body="JobCreate",
            ),
        },
        "/v1/jobs/{job_id}": {
            "get": _operation(
                "getJob", "One job.", "jobs", "read", job_returned, ("404",), [job_id]
            ),
            "patch": _operation(
                "updateJob",
                'Change any writable field; "state" pauses or resumes.',
                "jobs",
                "write",
                job_returned,
                ("404", "422"),
                [job_id],
                body="JobUpdate",
            ),
            "delete": _operation(
                "deleteJob",
                "Delete a job with its runs and records.",
                "jobs",
                "write",
                _NO_CONTENT,
                ("404",),
                [job_id],
            ),
        },
        "/v1/jobs/{job_id}/pause": {
            "post": _operation(
                "pauseJob", "Pause a job.", "jobs", "write", job_returned, ("404",), [job_id]
            )
        },
        "/v1/jobs/{job_id}/resume": {
            "post": _operation(
                "resumeJob",
                "Resume a paused or failed job from now.",
                "jobs",
                "write",
                job_returned,
                ("404",),
                [job_id],
            )
        },
        "/v1/jobs/{job_id}/run": {
            "post": _operation(
                "runJob",
                "Run a job now (409 while it runs).",
                "jobs",
                "write",
                {"202": _json(_ref("Run"), "The queued run.")},
                ("404", "409"),
                [job_id],
            )
        },
        "/v1/jobs/{job_id}/runs": {
            "get": _operation(
                "listJobRuns",
                "A job's runs, newest first.",
                "runs",
                "read",
                {"200": _json(_page_of(_ref("Run")), "A page of runs.")},
                ("400", "404", "422"),
                [job_id, _cursor(), _limit(PAGE_DEFAULT, PAGE_MAX)],
            )
        },
        "/v1/runs/{run_id}": {
            "get": _operation(
                "getRun",
                "One run.",
                "runs",
                "read",
                {"200": _json(_ref("Run"), "The run.")},
                ("404",),
                [run_id],
            )
        },
        "/v1/runs/{run_id}/records": {
            "get": _operation(
                "listRunRecords",
                "A run's records in result order; new=true keeps only records new to the job.",
                "runs",
                "read",
                {"200": _json(_page_of(_ref("Record")), "A page of records.")},
                ("400", "404", "422"),
                [
                    run_id,
                    _cursor(),
                    _limit(RECORDS_PAGE_DEFAULT, RECORDS_PAGE_MAX),
                    _param(
                        "new",
                        "query",
                        {"type": "string", "enum": ["true", "false"]},
                        "true: only records new to the job; false: only ones seen before.",
                    ),
                ],
            )
        },
        "/v1/queries": {
            "post": _operation(
                "createQuery",
                "Queue a one-off query.",
                "queries",
                "write",
                {"202": _json(_ref("QueryAccepted"), "The query is queued.")},
                ("422",),
                body="QueryCreate",
            )
        },
        "/v1/queries/{query_id}": {
            "get": _operation(
                "getQuery",
                "A one-off query's status, and its results once completed.",
                "queries",
                "read",
                {"200": _json(_ref("Query"), "The query.")},
                ("404",),
                [_path_id("query_id", "A query id (`qry_…`).")],
            )
        },
        "/v1/storage": {
            "get": _operation(
                "listStorage",
                "Result files of the key's project, newest first.",
                "storage",
                "read",
                {"200": _json(_page_of(_ref("StorageFile")), "A page of result files.")},
                ("400", "404", "422"),
                [
                    _param(
                        "job_id",
                        "query",
                        {"type": "string"},
                        "Only this job's files (404 when the project has no such job).",
                    ),
                    _cursor(),
                    _limit(PAGE_DEFAULT, PAGE_MAX),
                ],
            )
        },
        "/v1/storage/{key}": {
            "get": _operation(
                "getStorageFile",
                "One result file: JSON with the run's metadata and records, or CSV / NDJSON "
                "records.",
                "storage",
                "read",
                {
                    "200": {
                        "description": "The file, sent as an attachment.",
                        "headers": {
                            "Content-Disposition": {
                                "description": 'attachment; filename="<key, or its .csv or '
                                '.ndjson name>"',
                                "required": True,
                                "schema": {"type": "string", "pattern": "^attachment; "},
                            }
                        },
                        "content": {
                            "application/json": {"schema": _ref("ResultFile")},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    }
                },
                ("404", "422"),
                [
                    _path_id("key", "A result file key, `run_…_2026-04-30T08-00-00Z.json`."),
                    _param(
                        "format",
                        "query",
                        {"type": "string", "enum": list(EXPORT_FORMATS), "default": "json"},
                    ),
                ],
            )
        },
        "/v1/schedules/preview": {
            "post": _operation(
                "previewSchedule",
                "Describe a schedule and list its next run times from now.",
                "schedules",
                "read",
                {"200": _json(_ref("SchedulePreview"), "The description and next runs.")},
                ("422",),
                body="SchedulePreviewRequest",
            )
        },
        "/v1/sources": {
            "get": _operation(
                "listSources",
                "Every source with its status and why.",
                "sources",
                "read",
                {"200": _json({"type": "array", "items": _ref("Source")}, "The sources.")},
                (),
            )
        },
        "/v1/webhooks": {
            "get": _operation(
                "listWebhooks",
                "The project's webhooks.",
                "webhooks",
                "admin",
                {"200": _json(_list_of(_ref("Webhook")), "The webhooks, oldest first.")},
                (),
            ),
            "post": _operation(
                "createWebhook",
                "Add a webhook; its secret is shown once.",
                "webhooks",
                "admin",
                {"201": _json(_ref("WebhookCreated"), "The webhook with its secret.")},
                ("422",),
                body="WebhookCreate",
            ),
        },
        "/v1/webhooks/{webhook_id}": {
            "delete": _operation(
                "deleteWebhook",
                "Delete a webhook.",
                "webhooks",
                "admin",
                _NO_CONTENT,
                ("404",),
                [_path_id("webhook_id", "A webhook id.")],
            )
        },
        "/v1/webhooks/{webhook_id}/rotate": {
            "post": _operation(
                "rotateWebhookSecret",
                "Give a webhook a new secret (shown once).",
                "webhooks",
                "admin",
                {"200": _json(_ref("WebhookSecret"), "The new secret.")},
                ("404",),
                [_path_id("webhook_id", "A webhook id.")],
            )
        },
        "/v1/api-keys": {
            "get": _operation(
                "listApiKeys",
                "The project's API keys (never their secrets).",
                "api-keys",
                "admin",
                {
                    "200": _json(
                        _list_of(_ref("ApiKey")), "The keys, newest first, revoked ones too."
                    )
                },
                (),
            ),
            "post": _operation(
                "createApiKey",
                "Create a key; the key itself is shown once.",
                "api-keys",
                "admin",
                {"201": _json(_ref("ApiKeyCreated"), "The key with its secret.")},
                ("422",),
                body="ApiKeyCreate",
            ),
        },
        "/v1/api-keys/{key_id}": {
            "delete": _operation(
                "revokeApiKey",
                "Revoke a key.",
                "api-keys",
                "admin",
                _NO_CONTENT,
                ("404",),
                [_path_id("key_id", "An API key id.")],
            )
        },
    }


def build_document() -> dict:
    """The whole OpenAPI document, as plain JSON-ready data."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ByteStack Jobs API",
            "version": API_VERSION,
            "description": "Scheduled queries over many sources. JSON in and out; timestamps "
            'are ISO 8601 in UTC with `Z`. Every error is `{"error": {"code", "message", '
            '"field"?}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": name}
            for name in (
                "jobs",
                "runs",
                "queries",
                "storage",
                "schedules",
                "sources",
                "webhooks",
                "api-keys",
                "meta",
            )
        ],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <api key>`; a key has one scope: "
                    "read, write or admin.",
                }
            },
            "schemas": _schemas(),
            "responses": _responses_components(),
        },
    }


_DOCUMENT: dict | None = None


def openapi_document() -> dict:
    """The document, built once; callers get their own copy to change."""
    global _DOCUMENT
    if _DOCUMENT is None:
        _DOCUMENT = build_document()
    return copy.deepcopy(_DOCUMENT)


@bp.get("/openapi.json")
def openapi_json():
    """This API's OpenAPI 3 document (no key needed)."""
    return jsonify(openapi_document())
