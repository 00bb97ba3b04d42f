"""The OpenAPI document at /v1/openapi.json: valid, complete, and true to what the server does.

The last test lets schemathesis generate requests from the document for every operation and
send them to the app in-process (WSGI, no network): no answer may be a 5xx, and every answer
must be one the document lists, in the shape it gives.
"""

from __future__ import annotations

import os
import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from conftest import make_job
from s3 import shared_s3
from sqlalchemy import select

from webapp.extensions import db
from webapp.ids import new_public_id
from webapp.models import Project, Record, Run

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DOC_PATH = "/v1/openapi.json"


@pytest.fixture
def document(app):
    response = app.test_client().get(DOC_PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_document_is_served_without_a_key_and_is_valid_openapi(app, document):
    assert document["openapi"].startswith("3.")
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()
    # Its own operation describes it (schemathesis does not call that one below).
    schema[DOC_PATH]["GET"].validate_response(app.test_client().get(DOC_PATH))
    # The validator does refuse a broken document (so the check above means something).
    broken = {**document, "paths": {"/v1/jobs": {"get": {"summary": "no responses"}}}}
    with pytest.raises(Exception, match="responses"):
        schemathesis.openapi.from_dict(broken).validate()


def test_every_reference_resolves(document):
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    refs = set(walk(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            assert part in node, f"{ref} does not resolve"
            node = node[part]


def _shape(path: str) -> str:
    """A path with its parameters unnamed: `{job_id}` and `<job_id>` name the same slot."""
    return re.sub(r"{[^}]+}", "{}", path)


def _flask_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule == "/v1" or rule.rule.startswith("/v1/")):
            continue
        path = _shape(re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method.lower(), path))
    return found


def _document_operations(document) -> set[tuple[str, str]]:
    return {
        (method, _shape(path))
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_route_under_v1_is_documented_and_every_documented_one_exists(app, document):
    served = _flask_operations(app)
    documented = _document_operations(document)
    assert served - documented == set(), "routes missing from the document"
    assert documented - served == set(), "documented operations the server does not have"
    assert ("get", "/v1/openapi.json") in documented
    assert ("delete", "/v1/jobs/{}") in documented


def test_path_parameters_match_the_routes(document):
    for path, item in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}"


def test_every_operation_documents_its_errors_with_the_error_shape(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "429" in responses, f"{method.upper()} {path}"
            secured = operation.get("security") != []
            if secured:
                assert "401" in responses, f"{method.upper()} {path}"
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(responses), f"{method.upper()} {path}"
            if "{" in path:
                assert "404" in responses, f"{method.upper()} {path}"
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["$ref"] == f"#/components/responses/Error{status}"
    for name, response in document["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}, name


def test_documented_limits_are_the_servers(document, client, api_key):
    """Spot checks that a bound in the document is where the server draws it."""
    schemas = document["components"]["schemas"]
    prompt = schemas["QueryCreate"]["properties"]["prompt"]
    assert (prompt["minLength"], prompt["maxLength"]) == (1, 2000)
    limit = schemas["QueryCreate"]["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    count = schemas["SchedulePreviewRequest"]["properties"]["count"]
    assert (count["minimum"], count["maximum"]) == (1, 50)
    headers = api_key("read")
    preview = "/v1/schedules/preview"
    ok = client.post(preview, json={"schedule": "daily", "count": 50}, headers=headers)
    assert ok.status_code == 200 and len(ok.get_json()["next_runs"]) == 50
    too_many = client.post(preview, json={"schedule": "daily", "count": 51}, headers=headers)
    assert too_many.status_code == 422
    pages = {
        p["name"]: p["schema"]
        for p in document["paths"]["/v1/runs/{run_id}/records"]["get"]["parameters"]
    }
    assert pages["limit"]["maximum"] == 1000
    jobs_limit = next(
        p["schema"]
        for p in document["paths"]["/v1/jobs"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert client.get("/v1/jobs?limit=200", headers=headers).status_code == 200
    assert client.get("/v1/jobs?limit=201", headers=headers).status_code == 422
    assert jobs_limit["maximum"] == 200


def test_objects_and_bodies_are_the_schemas_models(document):
    """The document is generated: each object lists the response model's fields, each body
    the request model's, so the field lists are written once (in webapp.schemas)."""
    from webapp import schemas

    components = document["components"]["schemas"]
    for name in ("Job", "Run", "Record", "Query", "Webhook", "ApiKey", "StorageFile", "Source"):
        model = getattr(schemas, name)
        assert set(components[name]["properties"]) == set(model.model_fields), name
    job = components["Job"]
    assert set(job["required"]) == set(schemas.Job.model_fields)
    assert job["properties"]["overdue"]["type"] == "boolean"
    assert set(components["JobCreate"]["properties"]) == set(schemas.JobCreate.model_fields)
    assert set(components["JobUpdate"]["properties"]) == set(schemas.JobCreate.model_fields) | {
        "state"
    }
    assert components["JobUpdate"]["additionalProperties"] is False
    assert components["JobCreate"]["additionalProperties"] is True


def test_a_route_under_v1_without_its_record_breaks_the_document(app):
    from webapp.api.openapi import build_document

    app.add_url_rule("/v1/undocumented", "undocumented", lambda: "")
    with pytest.raises(LookupError, match="/v1/undocumented"):
        build_document(app)


# --- inputs that once made the server answer 500 ---------------------------------------------


def _assert_documented(document, method: str, path: str, response, status: int, field=None):
    """The answer has `status`, the Error shape, and is one the document gives."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if field is not None:
        assert body["error"].get("field") == field, body
    assert str(status) in document["paths"][path][method]["responses"]
    operation = schemathesis.openapi.from_dict(document)[path][method.upper()]
    operation.validate_response(response)


@pytest.mark.parametrize(
    ("method", "path", "url"),
    [
        ("get", "/v1/jobs/{job_id}", "/v1/jobs/job_%00"),
        ("patch", "/v1/jobs/{job_id}", "/v1/jobs/%00"),
        ("delete", "/v1/jobs/{job_id}", "/v1/jobs/%00"),
        ("post", "/v1/jobs/{job_id}/run", "/v1/jobs/a%00b/run"),
        ("get", "/v1/jobs/{job_id}/runs", "/v1/jobs/%00/runs"),
        ("get", "/v1/runs/{run_id}", "/v1/runs/run_%00"),
        ("get", "/v1/runs/{run_id}/records", "/v1/runs/%00/records"),
        ("get", "/v1/queries/{query_id}", "/v1/queries/qry_%00"),
        ("get", "/v1/storage/{key}", "/v1/storage/%00.json"),
        ("delete", "/v1/webhooks/{webhook_id}", "/v1/webhooks/wh_%00"),
        ("post", "/v1/webhooks/{webhook_id}/rotate", "/v1/webhooks/%00/rotate"),
        ("delete", "/v1/api-keys/{key_id}", "/v1/api-keys/key_%00"),
    ],
)
def test_an_id_with_nul_is_not_found(app, document, api_key, method, path, url):
    """PostgreSQL refuses NUL in text with an error; such an id names nothing: 404."""
    client = app.test_client()
    kwargs = {"json": {"name": "x"}} if method == "patch" else {}
    response = client.open(url, method=method.upper(), headers=api_key("admin"), **kwargs)
    _assert_documented(document, method, path, response, 404)
    # Authentication still comes first.
    anonymous = client.open(url, method=method.upper(), **kwargs)
    assert anonymous.status_code == 401


JOB = {"name": "Acme", "prompt": "acme", "sources": ["hackernews"], "schedule": "daily"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/v1/jobs", {**JOB, "name": "a\x00b"}, "name"),
        ("post", "/v1/jobs", {**JOB, "prompt": "acme \x00"}, "prompt"),
        ("post", "/v1/jobs", {**JOB, "webhook_url": "https://example.com/\x00"}, "webhook_url"),
        (
            "post",
            "/v1/jobs",
            {**JOB, "sources": [{"type": "rss", "url": "https://e.com/\x00"}]},
            "sources",
        ),
        ("patch", "/v1/jobs/{job_id}", {"name": "\x00"}, "name"),
        ("post", "/v1/queries", {"prompt": "acme\x00", "sources": ["hackernews"]}, "prompt"),
        ("post", "/v1/schedules/preview", {"schedule": "daily", "timezone": "UTC\x00"}, "timezone"),
        ("post", "/v1/api-keys", {"name": "CI\x00", "scope": "read"}, "name"),
        ("post", "/v1/webhooks", {"url": "https://e.com/\x00", "events": ["job.failed"]}, "url"),
    ],
)
def test_text_with_nul_is_an_invalid_field(
    app, project, document, api_key, method, path, body, field
):
    url = path.replace("{job_id}", make_job(project).public_id)
    response = app.test_client().open(
        url, method=method.upper(), json=body, headers=api_key("admin")
    )
    _assert_documented(document, method, path, response, 422, field)


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        (
            "/v1/jobs",
            ('{"name": "a\\ud800", "prompt": "p", "sources": ["hackernews"], "schedule": "daily"}'),
            "name",
        ),
        (
            "/v1/jobs",
            (
                '{"name": "a", "prompt": "p", "sources": ["hackernews"], '
                '"schedule": "daily", "webhook_url": "https://e.com/\\udfff"}'
            ),
            "webhook_url",
        ),
        ("/v1/api-keys", '{"name": "\\ud800", "scope": "read"}', "name"),
        ("/v1/webhooks", '{"url": "https://e.com/\\ud800", "events": ["job.failed"]}', "url"),
        ("/v1/queries", '{"prompt": "p", "sources": ["hackernews"], "\\ud800": 1}', None),
    ],
)
def test_an_unpaired_surrogate_is_an_invalid_field(app, document, api_key, path, raw, field):
    """Valid JSON, but not text UTF-8 (and so SQLite or PostgreSQL) can store."""
    headers = {**api_key("admin"), "Content-Type": "application/json"}
    response = app.test_client().post(path, data=raw, headers=headers)
    _assert_documented(document, "post", path, response, 422, field)


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_json_nested_past_the_parser_is_malformed(app, document, api_key, raw):
    headers = {**api_key("admin"), "Content-Type": "application/json"}
    response = app.test_client().post("/v1/jobs", data=raw, headers=headers)
    _assert_documented(document, "post", "/v1/jobs", response, 400)
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_a_cron_longer_than_its_column_is_an_invalid_schedule(app, project, document, api_key):
    long_cron = ",".join(map(str, range(60))) + " " + ",".join(map(str, range(24))) + " * * *"
    assert len(long_cron) > 200
    client, headers = app.test_client(), api_key("admin")
    response = client.post("/v1/jobs", json={**JOB, "schedule": long_cron}, headers=headers)
    _assert_documented(document, "post", "/v1/jobs", response, 422, "schedule")
    job_url = f"/v1/jobs/{make_job(project).public_id}"
    response = client.patch(
        job_url, json={"schedule": {"type": "cron", "expression": long_cron}}, headers=headers
    )
    _assert_documented(document, "patch", "/v1/jobs/{job_id}", response, 422, "schedule")
    # A preview stores nothing, so it may describe such a schedule.
    preview = client.post("/v1/schedules/preview", json={"schedule": long_cron}, headers=headers)
    assert preview.status_code == 200


# --- schemathesis ---------------------------------------------------------------------------
#
# schemathesis' pytest plugin (`from_fixture` / `parametrize`) does not run on pytest 9.2 (it
# reads `Function._nodeid`, which pytest 9.2 dropped), so the test drives schemathesis' engine
# itself - the one its CLI uses, with the same phases - on the app in-process (WSGI).

# Fuzzed examples per operation; OPENAPI_MAX_EXAMPLES=500 makes a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "25"))
# Checks every response must pass (schemathesis' names).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "unsupported_method",  # a method the path lacks: 405 with Allow
)


@pytest.fixture
def seeded(app, db, project):
    """Real ids for the paths that take one: jobs, a completed and a failed run (with
    records), completed, failed and queued queries, a webhook and a spare API key."""
    from webapp.settings.keys import create_key
    from webapp.settings.webhooks import create_webhook
    from webapp.storage.service import result_key

    job = make_job(project, name="Seeded job", date_range={"last": "7d"})
    other = make_job(project, name="Paused job", schedule="0 8 * * *", timezone="Europe/Berlin")
    other.state, other.enabled, other.next_run_at = "paused", False, None
    at = datetime(2026, 4, 30, 8, 0, 3, tzinfo=UTC)
    completed = Run(
        project_id=project.id,
        job_id=job.id,
        trigger="schedule",
        status="completed",
        scheduled_for=at - timedelta(seconds=3),
        started_at=at - timedelta(seconds=2),
        finished_at=at,
        record_count=3,
        new_count=2,
    )
    failed = Run(
        project_id=project.id,
        job_id=job.id,
        trigger="manual",
        status="failed",
        scheduled_for=at + timedelta(hours=1),
        started_at=at + timedelta(hours=1),
        finished_at=at + timedelta(hours=1, seconds=1),
        error="Every source failed.",
    )
    params = {"prompt": "acme", "sources": [{"type": "hackernews"}], "limit": 10}
    queries = [
        Run(
            public_id=new_public_id("qry"),
            project_id=project.id,
            job_id=None,
            trigger="query",
            status=status,
            scheduled_for=at,
            params=params,
            error=error,
            started_at=at if status != "queued" else None,
            finished_at=at + timedelta(seconds=1) if status != "queued" else None,
            record_count=1 if status == "completed" else 0,
        )
        for status, error in (
            ("completed", "Some sources failed: x."),
            ("failed", "Every source failed."),
            ("queued", None),
        )
    ]
    db.session.add_all([completed, failed, *queries])
    db.session.flush()
    for position in range(3):
        db.session.add(
            Record(
                run_id=completed.id,
                job_id=job.id,
                project_id=project.id,
                position=position,
                source="rss",
                fingerprint=f"fp{position}",
                url=f"https://news.example.com/{position}",
                title=f"Story {position}",
                text="Body",
                author="Reporter" if position else None,
                published_at=at if position else None,
                metrics={"score": position},
                is_new=position != 1,
            )
        )
    db.session.add(
        Record(
            run_id=queries[0].id,
            job_id=None,
            project_id=project.id,
            position=0,
            source="hackernews",
            fingerprint="fq",
            url=None,
            title="Query story",
            text=None,
            author=None,
            published_at=None,
            metrics={},
            is_new=True,
        )
    )
    db.session.commit()
    webhook, _ = create_webhook(project, "https://hooks.example.com/in", ["job.completed"])
    spare_key, _ = create_key(project, "Spare", "read")
    _connect_bucket(project.id)
    return {
        "job_id": [job.public_id, other.public_id],
        "run_id": [completed.public_id, failed.public_id],
        "query_id": [query.public_id for query in queries],
        "key": [result_key(completed), result_key(queries[0])],
        "webhook_id": [webhook.public_id],
        "key_id": [spare_key.public_id],
        "bucket": shared_s3().fresh().as_body(),
    }


def _connect_bucket(project_id: int) -> None:
    """The project's bucket, as the seed has it (no test write: only PUT connects for real)."""
    from webapp.settings.models import Bucket

    if db.session.scalar(select(Bucket.id).where(Bucket.project_id == project_id)) is None:
        bucket = Bucket(project_id=project_id, bucket="results", access_key="AKIASEED")
        bucket.secret_key = "seeded-secret"
        db.session.add(bucket)
        db.session.commit()


def _schemathesis_config(headers: dict) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "headers": headers,
            "workers": 1,
            "seed": 20260430,
            "continue-on-failure": True,
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def _crc(value) -> int:
    return zlib.crc32(repr(value).encode())


def _real_ids_hook(app, seeded: dict, project_id: int):
    """A before_call hook: half the generated ids (chosen by their value, so a replay picks
    the same) become seeded ones, since a random string only ever reaches the 404 branch."""

    def before_call(context, case, kwargs):
        with app.app_context():  # the engine calls from a thread of its own
            _swap_ids(case)

    def _swap_ids(case):
        for name, value in list((case.path_parameters or {}).items()):
            choices = seeded.get(name)
            if choices and _crc(value) % 2 == 0:
                case.path_parameters[name] = choices[_crc(value) // 2 % len(choices)]
        if case.operation.path == "/v1/storage" and isinstance(case.query, dict):
            value = case.query.get("job_id")
            if value is not None and _crc(value) % 2 == 0:
                case.query["job_id"] = seeded["job_id"][0]
        if case.operation.path == "/v1/storage/bucket":
            if case.method.upper() == "PUT" and isinstance(case.body, dict) and _crc(case.body) % 2:
                case.body.update(seeded["bucket"])  # a real S3 server: the test write succeeds
            elif case.method.upper() != "PUT":
                _connect_bucket(project_id)  # DELETE disconnects it: each call finds one
        if case.method.upper() != "DELETE":
            return
        # Deleting a seeded job or webhook would leave the later operations only 404s.
        project = db.session.get(Project, project_id)
        if case.path_parameters.get("job_id") in seeded["job_id"]:
            case.path_parameters["job_id"] = make_job(project, name="Spare").public_id
        if case.path_parameters.get("webhook_id") in seeded["webhook_id"]:
            from webapp.settings.webhooks import create_webhook

            spare, _ = create_webhook(project, "https://hooks.example.com/spare", ["job.failed"])
            case.path_parameters["webhook_id"] = spare.public_id

    before_call.__name__ = "before_call"
    return before_call


def _describe(label: str, recorder, case_id: str, check) -> str:
    """One failed check, with the request and the start of the answer."""
    text = f"[{label}] {check.name}"
    if check.failure_info is not None:
        failure = check.failure_info.failure
        text += f": {failure.title} {failure.message.split(chr(10) * 2)[0][:300]}"
    interaction = recorder.interactions.get(case_id)
    if interaction is not None:
        request = interaction.request
        text += f"\n    {request.method} {request.uri}"
        if request.body:
            text += f" body={request.body[:300]!r}"
        if interaction.response is not None:
            answer = (interaction.response.content or b"")[:300]
            text += f" -> {interaction.response.status_code} {answer!r}"
    return text


def test_api_matches_its_openapi_document(app, seeded, api_key, project):
    """schemathesis' examples, coverage and fuzzing phases on every operation: no 5xx, and
    every answer a status, content type, headers and body that the document gives."""
    from schemathesis.engine import Status, events, from_schema

    # Some thousand requests with one key: the real limit would answer 429 to most of them.
    app.config["API_RATE_LIMIT"] = "100000 per minute"
    schema = schemathesis.openapi.from_wsgi(
        DOC_PATH, app, config=_schemathesis_config(api_key("admin"))
    )
    hook = _real_ids_hook(app, seeded, project.id)
    schemathesis.hook(hook)  # registered by its name, before_call
    problems: list[str] = []
    answered: dict[str, set[int]] = {}
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                recorder = event.recorder
                for case_id, checks in recorder.checks.items():
                    problems += [
                        _describe(recorder.label, recorder, case_id, check)
                        for check in checks
                        if check.status == Status.FAILURE
                    ]
                for interaction in recorder.interactions.values():
                    if interaction.response is not None:
                        answered.setdefault(recorder.label, set()).add(
                            interaction.response.status_code
                        )
            elif isinstance(event, (events.NonFatalError, events.FatalError)):
                problems.append(f"schemathesis error: {event!r}")
    finally:
        schemathesis.hooks.unregister(hook)
    problems = list(dict.fromkeys(problems))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:30])
    # Every operation was tested (schemathesis leaves out the one serving the document itself:
    # the first test covers it), and reached its success branch at least once.
    document = app.test_client().get(DOC_PATH).get_json()
    operations = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert set(answered) == operations - {f"GET {DOC_PATH}"}
    no_success = {label for label, codes in answered.items() if not codes & set(range(200, 300))}
    assert not no_success, answered


def test_the_dashboard_job_page_with_nul_in_its_id_is_not_found(client):
    """The same lookup (jobs.service.get_job) serves the dashboard."""
    assert client.get("/jobs/job_%00").status_code == 404
    assert client.get("/jobs/job_%00/edit").status_code == 404
