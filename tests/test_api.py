"""The HTTP API v1 against API.md: every endpoint, authentication, and the one error shape."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from conftest import make_job
from redis import Redis
from rq import Queue
from sqlalchemy import func, select

from webapp import schemas
from webapp.models import ApiKey, Job, Project, Record, Run
from webapp.queueing import RUNS_QUEUE, run_rq_id
from webapp.timeutil import now

T0 = datetime(2026, 5, 1, 3, 17, tzinfo=UTC)
ANY = object()  # "the error may or may not name a field"
# The contract's fields are the response models' (webapp.schemas), listed nowhere else.
JOB_KEYS = set(schemas.Job.model_fields)
RUN_KEYS = set(schemas.Run.model_fields)
RECORD_KEYS = set(schemas.Record.model_fields)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def job_body(**overrides) -> dict:
    body = {
        "name": "Acme mentions",
        "prompt": '"acme corp" OR acmecorp -jobs',
        "sources": [{"type": "rss", "url": "https://news.example.com/feed.xml"}],
        "schedule": "every_hour",
    }
    body.update(overrides)
    return body


def assert_error(response, status: int, code: str | None = None, field=ANY) -> dict:
    """The API's one error shape: {"error": {"code", "message", "field"?}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "field"}
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error["code"]), error
    assert isinstance(error["message"], str) and len(error["message"]) > 5
    if code is not None:
        assert error["code"] == code, error
    if field is None:
        assert "field" not in error, error
    elif field is not ANY:
        assert error.get("field") == field, error
    return error


def fresh_job(db, public_id: str) -> Job:
    db.session.expire_all()
    return db.session.scalar(select(Job).where(Job.public_id == public_id))


def add_run(db, job: Job, status: str = "completed", **values) -> Run:
    """A run row as a worker leaves it (the API only reads runs)."""
    started = values.pop("started_at", now() - timedelta(minutes=5))
    run = Run(
        project_id=job.project_id,
        job_id=job.id,
        trigger=values.pop("trigger", "schedule"),
        scheduled_for=values.pop("scheduled_for", started),
        status=status,
        started_at=started if status != "queued" else None,
        finished_at=started + timedelta(seconds=2, milliseconds=500)
        if status in ("completed", "failed")
        else None,
        **values,
    )
    db.session.add(run)
    db.session.commit()
    return run


def add_records(db, run: Run, count: int, new_every: int = 2) -> list[Record]:
    records = [
        Record(
            run_id=run.id,
            job_id=run.job_id,
            project_id=run.project_id,
            position=i,
            source="rss",
            fingerprint=f"fp-{run.id}-{i}",
            url=f"https://news.example.com/a/{i}",
            title=f"Acme story {i}",
            text=f"Body {i}",
            author="Reporter",
            published_at=datetime(2026, 4, 30, 8, i, tzinfo=UTC),
            metrics={"score": i},
            is_new=i % new_every == 0,
        )
        for i in range(count)
    ]
    db.session.add_all(records)
    db.session.commit()
    return records


@pytest.fixture
def write(api_key):
    return api_key("write")


@pytest.fixture
def created(client, write):
    """A job created through the API; returns its JSON."""
    response = client.post("/v1/jobs", json=job_body(), headers=write)
    assert response.status_code == 201
    return response.get_json()


@pytest.fixture
def other_project(app):
    from webapp.jobs.service import ensure_project

    return ensure_project("Other")


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bsk_notbearer", "Bearer bsk_unknown"],
)
def test_missing_malformed_or_unknown_key_is_401(client, created, header):
    headers = {"Authorization": header} if header is not None else {}
    assert_error(client.get("/v1/jobs", headers=headers), 401, "unauthorized", field=None)
    assert_error(client.get(f"/v1/jobs/{created['id']}", headers=headers), 401, "unauthorized")
    assert_error(client.post("/v1/jobs", json=job_body(), headers=headers), 401, "unauthorized")


def test_revoked_key_is_401_although_it_worked_before(client, db, api_key):
    headers = api_key("read")
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    key = db.session.scalars(select(ApiKey)).one()
    key.revoked_at = now()
    db.session.commit()
    assert_error(client.get("/v1/jobs", headers=headers), 401, "unauthorized")


def test_key_is_stored_only_as_a_hash_and_use_is_recorded(client, db, api_key):
    headers = api_key("read")
    secret = headers["Authorization"].split(" ", 1)[1]
    key = db.session.scalars(select(ApiKey)).one()
    assert key.last_used_at is None
    assert secret not in (key.key_hash, key.prefix) and secret.startswith(key.prefix)
    client.get("/v1/jobs", headers=headers)
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).last_used_at is not None


def test_read_key_can_read_but_not_write(client, db, api_key, created):
    read = api_key("read")
    job_id = created["id"]
    assert client.get("/v1/jobs", headers=read).status_code == 200
    assert client.get(f"/v1/jobs/{job_id}", headers=read).status_code == 200
    assert client.get(f"/v1/jobs/{job_id}/runs", headers=read).status_code == 200
    preview = client.post("/v1/schedules/preview", json={"schedule": "daily"}, headers=read)
    assert preview.status_code == 200
    forbidden = [
        client.post("/v1/jobs", json=job_body(), headers=read),
        client.patch(f"/v1/jobs/{job_id}", json={"name": "x"}, headers=read),
        client.delete(f"/v1/jobs/{job_id}", headers=read),
        client.post(f"/v1/jobs/{job_id}/pause", headers=read),
        client.post(f"/v1/jobs/{job_id}/resume", headers=read),
        client.post(f"/v1/jobs/{job_id}/run", headers=read),
    ]
    for response in forbidden:
        assert_error(response, 403, "forbidden", field=None)
    job = fresh_job(db, job_id)
    assert (job.name, job.state) == ("Acme mentions", "active")
    assert db.session.scalar(select(func.count(Job.id))) == 1
    assert db.session.scalar(select(func.count(Run.id))) == 0


def test_admin_key_can_do_what_write_can(client, api_key):
    response = client.post("/v1/jobs", json=job_body(), headers=api_key("admin"))
    assert response.status_code == 201


def test_a_job_of_another_project_answers_404_never_403(client, db, api_key, other_project):
    theirs = make_job(other_project, name="Their job")
    their_run = add_run(db, theirs)
    add_records(db, their_run, 2)
    mine = api_key("admin")
    responses = [
        client.get(f"/v1/jobs/{theirs.public_id}", headers=mine),
        client.patch(f"/v1/jobs/{theirs.public_id}", json={"name": "Mine now"}, headers=mine),
        client.delete(f"/v1/jobs/{theirs.public_id}", headers=mine),
        client.post(f"/v1/jobs/{theirs.public_id}/pause", headers=mine),
        client.post(f"/v1/jobs/{theirs.public_id}/resume", headers=mine),
        client.post(f"/v1/jobs/{theirs.public_id}/run", headers=mine),
        client.get(f"/v1/jobs/{theirs.public_id}/runs", headers=mine),
        client.get(f"/v1/runs/{their_run.public_id}", headers=mine),
        client.get(f"/v1/runs/{their_run.public_id}/records", headers=mine),
    ]
    for response in responses:
        assert_error(response, 404, "not_found", field=None)
    assert client.get("/v1/jobs", headers=mine).get_json()["data"] == []
    job = fresh_job(db, theirs.public_id)
    assert (job.name, job.state) == ("Their job", "active")
    assert db.session.scalar(select(func.count(Run.id)).where(Run.job_id == job.id)) == 1
    # The owner's key sees it.
    theirs_key = api_key("read", target=other_project)
    listed = client.get("/v1/jobs", headers=theirs_key).get_json()["data"]
    assert [j["id"] for j in listed] == [theirs.public_id]


# --- jobs: create ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "stored"),
    [
        (
            "every_6_hours",
            {"type": "interval", "value": "every_6_hours", "description": "Every 6 hours"},
        ),
        ("0 8 * * *", {"type": "cron", "expression": "0 8 * * *", "description": "At 08:00"}),
        (
            {"type": "interval", "value": "every_6_hours"},
            {"type": "interval", "value": "every_6_hours", "description": "Every 6 hours"},
        ),
        (
            {"type": "cron", "expression": "0 8 * * *"},
            {"type": "cron", "expression": "0 8 * * *", "description": "At 08:00"},
        ),
    ],
)
def test_create_accepts_every_schedule_spelling_and_stores_it_one_way(
    client, write, spelling, stored
):
    with time_machine.travel(T0, tick=False):
        response = client.post("/v1/jobs", json=job_body(schedule=spelling), headers=write)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert job["schedule"] == stored
    expected_next = (
        "2026-05-01T06:00:00Z" if stored["type"] == "interval" else "2026-05-01T08:00:00Z"
    )
    assert job["next_run_at"] == expected_next


def test_created_job_has_the_contract_shape_and_defaults(client, write):
    with time_machine.travel(T0, tick=False):
        response = client.post("/v1/jobs", json=job_body(), headers=write)
    assert response.status_code == 201
    job = response.get_json()
    assert set(job) == JOB_KEYS
    assert re.fullmatch(r"job_[0-9A-HJKMNP-TV-Z]{26}", job["id"])
    assert (job["name"], job["prompt"]) == ("Acme mentions", '"acme corp" OR acmecorp -jobs')
    assert job["schedule"] == {
        "type": "interval",
        "value": "every_hour",
        "description": "Every hour",
    }
    assert job["overdue"] is False
    assert job["state"] == "active"
    assert job["timezone"] == "UTC"
    assert job["limit"] == 100
    assert job["date_range"] is None
    assert job["last_run"] is None and job["last_sync_at"] is None and job["last_error"] is None
    assert job["webhook_url"] is None
    assert job["sources"] == [{"type": "rss", "url": "https://news.example.com/feed.xml"}]
    assert job["created_at"] == job["updated_at"] == "2026-05-01T03:17:00Z"
    assert job["next_run_at"] == "2026-05-01T04:00:00Z"


def test_create_with_every_optional_field(client, write):
    body = job_body(
        schedule={"type": "cron", "expression": "0 8 * * *"},
        timezone="Europe/Berlin",
        date_range={"last": "7d"},
        limit=25,
        webhook_url="https://hooks.example.com/bytestack",
        sources=[
            "https://news.example.com/a.xml",
            {"type": "rss", "url": "https://b.example.org/feed"},
        ],
    )
    with time_machine.travel(T0, tick=False):
        response = client.post("/v1/jobs", json=body, headers=write)
    assert response.status_code == 201, response.get_json()
    job = response.get_json()
    assert job["timezone"] == "Europe/Berlin"
    assert job["schedule"]["description"] == "At 08:00 (Europe/Berlin)"
    assert job["next_run_at"] == "2026-05-01T06:00:00Z"  # 08:00 CEST
    assert job["date_range"] == {"last": "7d"}
    assert job["limit"] == 25
    assert job["webhook_url"] == "https://hooks.example.com/bytestack"
    assert job["sources"] == [
        {"type": "rss", "url": "https://news.example.com/a.xml"},
        {"type": "rss", "url": "https://b.example.org/feed"},
    ]


def test_absolute_date_range_is_normalised_to_utc(client, write):
    body = job_body(date_range={"start": "2026-04-01T10:00:00+02:00", "end": "2026-04-30"})
    response = client.post("/v1/jobs", json=body, headers=write)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["date_range"] == {
        "start": "2026-04-01T08:00:00Z",
        "end": "2026-04-30T00:00:00Z",
    }


def test_a_date_range_with_one_side_is_answered_with_that_side_only(client, write):
    body = job_body(date_range={"end": "2026-04-30T00:00:00Z"})
    response = client.post("/v1/jobs", json=body, headers=write)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["date_range"] == {"end": "2026-04-30T00:00:00Z"}


def test_date_range_start_just_before_its_end_is_accepted(client, write):
    # Sub-second precision must be compared as time, not as text.
    body = job_body(date_range={"start": "2026-04-01T00:00:00Z", "end": "2026-04-01T00:00:00.5Z"})
    response = client.post("/v1/jobs", json=body, headers=write)
    assert response.status_code == 201, response.get_json()


def test_limits_at_the_edges_are_accepted(client, write):
    for limit in (1, 1000):
        response = client.post("/v1/jobs", json=job_body(limit=limit), headers=write)
        assert response.status_code == 201
        assert response.get_json()["limit"] == limit
    prompt = "acme " * 399 + "acme"  # 1999 characters
    long_prompt = client.post("/v1/jobs", json=job_body(prompt=prompt + "!"), headers=write)
    assert long_prompt.status_code == 201
    assert len(long_prompt.get_json()["prompt"]) == 2000


# --- jobs: list ------------------------------------------------------------------------------


def test_list_pages_with_a_cursor_over_more_jobs_than_the_limit(client, project, api_key):
    jobs = [make_job(project, name=f"job {i}") for i in range(7)]
    headers = api_key("read")
    seen, cursor, pages = [], None, 0
    while True:
        url = "/v1/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        assert set(body) == {"data", "next_cursor"}
        assert len(body["data"]) <= 3
        seen += [job["id"] for job in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [job.public_id for job in reversed(jobs)]  # newest first, no repeats


def test_list_with_exactly_limit_jobs_has_no_next_cursor(client, project, api_key):
    for i in range(3):
        make_job(project, name=f"job {i}")
    body = client.get("/v1/jobs?limit=3", headers=api_key("read")).get_json()
    assert len(body["data"]) == 3
    assert body["next_cursor"] is None


def test_list_filters_by_state(client, db, project, api_key):
    from webapp.jobs.service import pause_job

    active = make_job(project, name="active")
    paused = pause_job(make_job(project, name="paused"))
    failed = make_job(project, name="failed")
    failed.state, failed.next_run_at = "failed", None
    db.session.commit()
    headers = api_key("read")

    def ids(query: str) -> list[str]:
        response = client.get(f"/v1/jobs{query}", headers=headers)
        assert response.status_code == 200
        return [job["id"] for job in response.get_json()["data"]]

    assert ids("?state=active") == [active.public_id]
    assert ids("?state=paused") == [paused.public_id]
    assert ids("?state=failed") == [failed.public_id]
    assert ids("?state=running") == []
    assert set(ids("")) == {active.public_id, paused.public_id, failed.public_id}
    assert_error(client.get("/v1/jobs?state=sleeping", headers=headers), 422, field="state")


def test_an_empty_query_parameter_counts_as_absent(client, project, api_key):
    make_job(project)
    response = client.get("/v1/jobs?state=&limit=&cursor=", headers=api_key("read"))
    assert response.status_code == 200
    assert len(response.get_json()["data"]) == 1


@pytest.mark.parametrize("limit", ["0", "201", "-1", "abc", "true", "1.5", "²", "9" * 5000])
def test_list_rejects_a_bad_page_limit(client, api_key, limit):
    response = client.get("/v1/jobs", query_string={"limit": limit}, headers=api_key("read"))
    assert_error(response, 422, "invalid_field", field="limit")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "not-a-cursor",
        base64.urlsafe_b64encode(b"abc").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(str(10**30).encode()).decode(),
        base64.urlsafe_b64encode(b"-5").decode(),
    ],
)
def test_list_rejects_a_forged_cursor_without_a_500(client, project, api_key, cursor):
    make_job(project)
    response = client.get("/v1/jobs", query_string={"cursor": cursor}, headers=api_key("read"))
    assert_error(response, 400, field="cursor")


# --- jobs: get, patch, delete ----------------------------------------------------------------


def test_get_returns_the_job_with_its_last_run(client, db, api_key, created):
    job = fresh_job(db, created["id"])
    add_run(db, job, "completed", record_count=4, new_count=1)
    add_run(db, job, "skipped", error="Skipped: still running")  # skips are not "last run"
    body = client.get(f"/v1/jobs/{created['id']}", headers=api_key("read")).get_json()
    assert set(body) == JOB_KEYS
    assert body["id"] == created["id"]
    assert body["last_run"]["status"] == "completed"
    assert (body["last_run"]["record_count"], body["last_run"]["new_count"]) == (4, 1)


def test_get_unknown_job_is_404(client, api_key):
    assert_error(client.get("/v1/jobs/job_nope", headers=api_key("read")), 404, "not_found")


def test_patch_changes_fields_and_keeps_the_rest(client, db, write, created):
    before = fresh_job(db, created["id"]).next_run_at
    response = client.patch(
        f"/v1/jobs/{created['id']}",
        json={
            "name": "Renamed",
            "prompt": "rocket",
            "limit": 10,
            "sources": ["https://other.example.com/rss"],
            "date_range": {"last": "24h"},
            "webhook_url": "https://hooks.example.com/x",
        },
        headers=write,
    )
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert (job["name"], job["prompt"], job["limit"]) == ("Renamed", "rocket", 10)
    assert job["sources"] == [{"type": "rss", "url": "https://other.example.com/rss"}]
    assert job["date_range"] == {"last": "24h"}
    assert job["webhook_url"] == "https://hooks.example.com/x"
    assert job["schedule"] == created["schedule"]
    assert fresh_job(db, created["id"]).next_run_at == before  # schedule untouched
    again = client.get(f"/v1/jobs/{created['id']}", headers=write).get_json()
    assert again["name"] == "Renamed"
    cleared = client.patch(
        f"/v1/jobs/{created['id']}", json={"date_range": None, "webhook_url": None}, headers=write
    ).get_json()
    assert cleared["date_range"] is None and cleared["webhook_url"] is None


def test_patch_with_a_null_limit_leaves_the_limit(client, write, created):
    response = client.patch(
        f"/v1/jobs/{created['id']}", json={"limit": None, "name": "Same limit"}, headers=write
    )
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["limit"], response.get_json()["name"]) == (100, "Same limit")


def test_patch_schedule_recomputes_next_run_at_from_now(client, write):
    with time_machine.travel(T0, tick=False):
        job = client.post("/v1/jobs", json=job_body(), headers=write).get_json()
    assert job["next_run_at"] == "2026-05-01T04:00:00Z"
    with time_machine.travel(T0 + timedelta(hours=30), tick=False):  # 2026-05-02 09:17
        patched = client.patch(
            f"/v1/jobs/{job['id']}", json={"schedule": "0 8 * * *"}, headers=write
        ).get_json()
        assert patched["schedule"]["expression"] == "0 8 * * *"
        assert patched["next_run_at"] == "2026-05-03T08:00:00Z"
        zoned = client.patch(
            f"/v1/jobs/{job['id']}", json={"timezone": "America/New_York"}, headers=write
        ).get_json()
    assert zoned["timezone"] == "America/New_York"
    assert zoned["next_run_at"] == "2026-05-02T12:00:00Z"  # 08:00 EDT, later the same day


def test_patch_schedule_of_a_paused_job_keeps_it_paused(client, write, created):
    client.post(f"/v1/jobs/{created['id']}/pause", headers=write)
    job = client.patch(f"/v1/jobs/{created['id']}", json={"schedule": "daily"}, headers=write)
    body = job.get_json()
    assert body["state"] == "paused"
    assert body["next_run_at"] is None
    assert body["schedule"]["value"] == "daily"


def test_patch_state_pauses_and_resumes(client, write):
    with time_machine.travel(T0, tick=False):
        job = client.post("/v1/jobs", json=job_body(schedule="every_6_hours"), headers=write)
        job_id = job.get_json()["id"]
        paused = client.patch(f"/v1/jobs/{job_id}", json={"state": "paused"}, headers=write)
    assert paused.status_code == 200
    assert (paused.get_json()["state"], paused.get_json()["next_run_at"]) == ("paused", None)
    with time_machine.travel(T0 + timedelta(days=3), tick=False):  # 2026-05-04 03:17
        resumed = client.patch(f"/v1/jobs/{job_id}", json={"state": "active"}, headers=write)
    assert resumed.get_json()["state"] == "active"
    assert resumed.get_json()["next_run_at"] == "2026-05-04T06:00:00Z"


def test_patch_state_active_undoes_a_pause_made_while_running(client, db, write, created):
    from webapp.runs.executor import complete_run

    job = fresh_job(db, created["id"])
    run = add_run(db, job, "running")
    job.state = "running"
    db.session.commit()
    client.patch(f"/v1/jobs/{created['id']}", json={"state": "paused"}, headers=write)
    body = client.patch(f"/v1/jobs/{created['id']}", json={"state": "active"}, headers=write)
    assert body.status_code == 200
    complete_run(run.id, [], [])
    job = fresh_job(db, created["id"])
    assert job.state == "active"  # not "paused": the pause was taken back
    assert job.next_run_at is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "running"}, "state"),
        ({"state": "failed"}, "state"),
        ({"state": 1}, "state"),
        ({"id": "job_other"}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"name": ""}, "name"),
        ({"limit": 0}, "limit"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"timezone": "Nope/Zone"}, "timezone"),
        ({"sources": []}, "sources"),
    ],
)
def test_patch_rejects_bad_fields_and_changes_nothing(client, db, write, created, body, field):
    response = client.patch(f"/v1/jobs/{created['id']}", json=body, headers=write)
    assert_error(response, 422, "invalid_field", field=field)
    after = client.get(f"/v1/jobs/{created['id']}", headers=write).get_json()
    assert {k: after[k] for k in after if k != "updated_at"} == {
        k: created[k] for k in created if k != "updated_at"
    }


def test_delete_answers_204_then_404_and_removes_runs_and_records(client, db, write, created):
    job = fresh_job(db, created["id"])
    run_id = add_run(db, job).public_id
    add_records(db, db.session.scalar(select(Run)), 3)
    response = client.delete(f"/v1/jobs/{created['id']}", headers=write)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_error(client.get(f"/v1/jobs/{created['id']}", headers=write), 404, "not_found")
    assert_error(client.get(f"/v1/runs/{run_id}", headers=write), 404, "not_found")
    assert_error(client.delete(f"/v1/jobs/{created['id']}", headers=write), 404, "not_found")
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Run.id))) == 0
    assert db.session.scalar(select(func.count(Record.id))) == 0


# --- jobs: pause, resume, run ----------------------------------------------------------------


def test_pause_and_resume_endpoints(client, write):
    with time_machine.travel(T0, tick=False):
        job_id = client.post("/v1/jobs", json=job_body(), headers=write).get_json()["id"]
        paused = client.post(f"/v1/jobs/{job_id}/pause", headers=write)
    assert paused.status_code == 200
    assert set(paused.get_json()) == JOB_KEYS
    assert (paused.get_json()["state"], paused.get_json()["next_run_at"]) == ("paused", None)
    assert client.post(f"/v1/jobs/{job_id}/pause", headers=write).get_json()["state"] == "paused"
    later = T0 + timedelta(days=2, hours=5, minutes=10)  # 2026-05-03 08:27
    with time_machine.travel(later, tick=False):
        resumed = client.post(f"/v1/jobs/{job_id}/resume", headers=write)
    assert resumed.status_code == 200
    # From now: the next top of the hour, not the slots missed while paused.
    assert resumed.get_json()["next_run_at"] == "2026-05-03T09:00:00Z"
    assert resumed.get_json()["state"] == "active"


def test_resume_of_an_active_job_leaves_its_next_run(client, write):
    with time_machine.travel(T0, tick=False):
        job = client.post("/v1/jobs", json=job_body(), headers=write).get_json()
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        resumed = client.post(f"/v1/jobs/{job['id']}/resume", headers=write).get_json()
    assert resumed["state"] == "active"
    assert resumed["next_run_at"] == job["next_run_at"]


def test_resume_of_a_failed_job_makes_it_active(client, db, write, created):
    job = fresh_job(db, created["id"])
    job.state, job.next_run_at, job.last_error = "failed", None, "Every source failed."
    db.session.commit()
    body = client.post(f"/v1/jobs/{created['id']}/resume", headers=write).get_json()
    assert body["state"] == "active"
    assert body["next_run_at"] is not None


def test_run_now_answers_202_with_a_queued_run_on_the_queue(client, db, redis_url, write, created):
    response = client.post(f"/v1/jobs/{created['id']}/run", headers=write)
    assert response.status_code == 202, response.get_json()
    run = response.get_json()
    assert set(run) == RUN_KEYS
    assert re.fullmatch(r"run_[0-9A-Z]{26}", run["id"])
    assert (run["job_id"], run["trigger"], run["status"]) == (created["id"], "api", "queued")
    assert run["result_url"] is None and run["finished_at"] is None
    assert ISO_Z.match(run["scheduled_for"])
    row = db.session.scalar(select(Run).where(Run.public_id == run["id"]))
    queue = Queue(RUNS_QUEUE, connection=Redis.from_url(redis_url))
    assert run_rq_id(created["id"], row.scheduled_for) in queue.job_ids


def test_run_now_is_409_while_a_run_is_queued_or_running(client, db, write, created):
    first = client.post(f"/v1/jobs/{created['id']}/run", headers=write)
    assert first.status_code == 202
    assert_error(client.post(f"/v1/jobs/{created['id']}/run", headers=write), 409, "conflict")
    run = db.session.scalar(select(Run).where(Run.public_id == first.get_json()["id"]))
    run.status, run.started_at = "running", now()
    job = fresh_job(db, created["id"])
    job.state = "running"
    db.session.commit()
    assert_error(client.post(f"/v1/jobs/{created['id']}/run", headers=write), 409, "conflict")
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Run.id))) == 1


def test_run_now_is_allowed_for_a_paused_job(client, write, created):
    client.post(f"/v1/jobs/{created['id']}/pause", headers=write)
    response = client.post(f"/v1/jobs/{created['id']}/run", headers=write)
    assert response.status_code == 202
    assert client.get(f"/v1/jobs/{created['id']}", headers=write).get_json()["state"] == "paused"


# --- runs and records ------------------------------------------------------------------------


def test_runs_are_listed_newest_first_with_a_cursor(client, db, api_key, created):
    job = fresh_job(db, created["id"])
    base = now() - timedelta(days=1)
    runs = [add_run(db, job, scheduled_for=base + timedelta(hours=i)) for i in range(5)]
    headers = api_key("read")
    first = client.get(f"/v1/jobs/{created['id']}/runs?limit=2", headers=headers).get_json()
    assert [r["id"] for r in first["data"]] == [runs[4].public_id, runs[3].public_id]
    assert all(set(r) == RUN_KEYS for r in first["data"])
    second = client.get(
        f"/v1/jobs/{created['id']}/runs?limit=2&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    assert [r["id"] for r in second["data"]] == [runs[2].public_id, runs[1].public_id]
    third = client.get(
        f"/v1/jobs/{created['id']}/runs?limit=2&cursor={second['next_cursor']}", headers=headers
    ).get_json()
    assert [r["id"] for r in third["data"]] == [runs[0].public_id]
    assert third["next_cursor"] is None


def test_get_run_has_the_contract_fields(client, db, api_key, created):
    job = fresh_job(db, created["id"])
    started = datetime(2026, 4, 30, 8, 0, 1, tzinfo=UTC)
    run = add_run(
        db,
        job,
        "completed",
        started_at=started,
        scheduled_for=started - timedelta(seconds=1),
        record_count=3,
        new_count=2,
    )
    failed = add_run(db, job, "failed", error="Every source failed. x: HTTP 500")
    headers = api_key("read")
    body = client.get(f"/v1/runs/{run.public_id}", headers=headers).get_json()
    assert set(body) == RUN_KEYS
    assert body["job_id"] == created["id"]
    assert body["status"] == "completed" and body["trigger"] == "schedule"
    assert body["scheduled_for"] == "2026-04-30T08:00:00Z"
    assert body["started_at"] == "2026-04-30T08:00:01Z"
    assert body["finished_at"] == "2026-04-30T08:00:03.500000Z"
    assert body["duration_ms"] == 2500
    assert (body["record_count"], body["new_count"]) == (3, 2)
    assert body["error"] is None
    assert body["result_url"].endswith(f"/v1/runs/{run.public_id}/records")
    failure = client.get(f"/v1/runs/{failed.public_id}", headers=headers).get_json()
    assert failure["status"] == "failed"
    assert failure["error"] == "Every source failed. x: HTTP 500"
    assert failure["result_url"] is None
    assert_error(client.get("/v1/runs/run_nope", headers=headers), 404, "not_found")


def test_run_records_in_result_order_with_new_filter_and_cursor(client, db, api_key, created):
    job = fresh_job(db, created["id"])
    run = add_run(db, job, record_count=5, new_count=3)
    other = add_run(db, job)
    records = add_records(db, run, 5)
    add_records(db, other, 2)
    headers = api_key("read")
    url = f"/v1/runs/{run.public_id}/records"

    everything = client.get(url, headers=headers).get_json()
    assert [r["id"] for r in everything["data"]] == [r.public_id for r in records]
    assert everything["next_cursor"] is None
    first = everything["data"][0]
    assert set(first) == RECORD_KEYS
    assert first == {
        "id": records[0].public_id,
        "source": "rss",
        "url": "https://news.example.com/a/0",
        "title": "Acme story 0",
        "text": "Body 0",
        "author": "Reporter",
        "published_at": "2026-04-30T08:00:00Z",
        "metrics": {"score": 0},
        "is_new": True,
    }
    new = client.get(url + "?new=true", headers=headers).get_json()["data"]
    assert [r["title"] for r in new] == ["Acme story 0", "Acme story 2", "Acme story 4"]
    old = client.get(url + "?new=false", headers=headers).get_json()["data"]
    assert [r["title"] for r in old] == ["Acme story 1", "Acme story 3"]

    page1 = client.get(url + "?limit=2", headers=headers).get_json()
    page2 = client.get(url + f"?limit=2&cursor={page1['next_cursor']}", headers=headers).get_json()
    page3 = client.get(url + f"?limit=2&cursor={page2['next_cursor']}", headers=headers).get_json()
    titles = [r["title"] for page in (page1, page2, page3) for r in page["data"]]
    assert titles == [f"Acme story {i}" for i in range(5)]
    assert page3["next_cursor"] is None
    new_page = client.get(url + "?new=true&limit=2", headers=headers).get_json()
    rest = client.get(
        url + f"?new=true&limit=2&cursor={new_page['next_cursor']}", headers=headers
    ).get_json()
    assert [r["title"] for r in new_page["data"] + rest["data"]] == [
        "Acme story 0",
        "Acme story 2",
        "Acme story 4",
    ]
    assert_error(client.get(url + "?new=yes", headers=headers), 422, field="new")
    assert_error(client.get(url + "?limit=1001", headers=headers), 422, field="limit")


# --- schedule preview ------------------------------------------------------------------------


def test_preview_describes_and_lists_times_from_now(client, api_key):
    headers = api_key("read")
    with time_machine.travel(T0, tick=False):
        response = client.post(
            "/v1/schedules/preview",
            json={"schedule": "0 8 * * *", "timezone": "Europe/Berlin", "count": 3},
            headers=headers,
        )
        default = client.post(
            "/v1/schedules/preview",
            json={"schedule": {"type": "interval", "value": "every_6_hours"}},
            headers=headers,
        )
    assert response.status_code == 200
    assert response.get_json() == {
        "description": "At 08:00 (Europe/Berlin)",
        "next_runs": ["2026-05-01T06:00:00Z", "2026-05-02T06:00:00Z", "2026-05-03T06:00:00Z"],
    }
    assert default.get_json()["description"] == "Every 6 hours"
    assert default.get_json()["next_runs"] == [
        "2026-05-01T06:00:00Z",
        "2026-05-01T12:00:00Z",
        "2026-05-01T18:00:00Z",
        "2026-05-02T00:00:00Z",
        "2026-05-02T06:00:00Z",
    ]


@pytest.mark.parametrize("count", [1, 50])
def test_preview_count_bounds_are_inclusive(client, api_key, count):
    response = client.post(
        "/v1/schedules/preview",
        json={"schedule": "every_hour", "count": count},
        headers=api_key("read"),
    )
    assert response.status_code == 200
    assert len(response.get_json()["next_runs"]) == count


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule": "every_hour", "count": 0}, "count"),
        ({"schedule": "every_hour", "count": 51}, "count"),
        ({"schedule": "every_hour", "count": True}, "count"),
        ({"schedule": "every_hour", "count": "5"}, "count"),
        ({"schedule": "every_hour", "count": 2.5}, "count"),
        ({}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "0 0 30 2 *"}, "schedule"),
        ({"schedule": "every_fortnight"}, "schedule"),
        ({"schedule": {"type": "interval", "value": ["daily"]}}, "schedule"),
        ({"schedule": {"type": "cron", "expression": {"x": 1}}}, "schedule"),
        ({"schedule": 42}, "schedule"),
        ({"schedule": "daily", "timezone": "Nope/Zone"}, "timezone"),
        ({"schedule": "daily", "timezone": 7}, "timezone"),
    ],
)
def test_preview_rejects_bad_input_with_the_field(client, api_key, body, field):
    response = client.post("/v1/schedules/preview", json=body, headers=api_key("read"))
    assert_error(response, 422, "invalid_field", field=field)


def test_preview_error_names_the_bad_cron_field(client, api_key):
    response = client.post(
        "/v1/schedules/preview", json={"schedule": "61 * * * *"}, headers=api_key("read")
    )
    assert "minute" in assert_error(response, 422, field="schedule")["message"]


# --- the error shape everywhere --------------------------------------------------------------


def test_malformed_json_is_400(client, write):
    for data in ("{not json", '{"name": ', "", "nul"):
        response = client.post(
            "/v1/jobs", data=data, content_type="application/json", headers=write
        )
        assert_error(response, 400, field=None)


@pytest.mark.parametrize("payload", [[job_body()], [], "a string", 42, None, True])
def test_a_json_body_that_is_not_an_object_is_400(client, db, write, payload):
    response = client.post(
        "/v1/jobs", data=json.dumps(payload), content_type="application/json", headers=write
    )
    assert_error(response, 400, field=None)
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_patch_and_preview_refuse_non_object_bodies_too(client, write, created):
    patch = client.patch(
        f"/v1/jobs/{created['id']}", data="[1]", content_type="application/json", headers=write
    )
    assert_error(patch, 400)
    preview = client.post(
        "/v1/schedules/preview", data="{", content_type="application/json", headers=write
    )
    assert_error(preview, 400)


def test_a_body_over_the_size_cap_is_413(client, app, write):
    huge = json.dumps(job_body(prompt="a" * (app.config["MAX_CONTENT_LENGTH"] + 10)))
    response = client.post("/v1/jobs", data=huge, content_type="application/json", headers=write)
    assert_error(response, 413, "payload_too_large")


def test_unknown_path_is_a_json_404(client, write):
    for path in ("/v1/nope", "/v1/jobs/job_x/nothing", "/v1/"):
        assert_error(client.get(path, headers=write), 404, "not_found", field=None)


def test_wrong_method_is_a_json_405(client, write, created):
    for response in (
        client.put(f"/v1/jobs/{created['id']}", json={}, headers=write),
        client.delete("/v1/jobs", headers=write),
        client.get(f"/v1/jobs/{created['id']}/run", headers=write),
        client.get("/v1/schedules/preview", headers=write),
    ):
        assert_error(response, 405, "method_not_allowed", field=None)


HOSTILE = [
    # name
    ({"name": 42}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": None}, "name"),
    ({"name": ["x"]}, "name"),
    ({"name": "n" * 201}, "name"),
    # prompt
    ({"prompt": 42}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": {"q": "acme"}}, "prompt"),
    ({"prompt": "p" * 2001}, "prompt"),
    ({"prompt": "acme " * 5000}, "prompt"),
    # sources
    ({"sources": []}, "sources"),
    ({"sources": [{}]}, "sources"),
    ({"sources": [42]}, "sources"),
    ({"sources": [None]}, "sources"),
    ({"sources": "https://news.example.com/feed.xml"}, "sources"),
    ({"sources": {"type": "rss"}}, "sources"),
    ({"sources": None}, "sources"),
    ({"sources": [{"type": "rss"}]}, "sources"),
    ({"sources": [{"type": "rss", "url": 42}]}, "sources"),
    ({"sources": [{"type": "rss", "url": "ftp://x.example.com/f"}]}, "sources"),
    ({"sources": [{"type": ["rss"]}]}, "sources"),
    ({"sources": [{"type": "nope"}]}, "sources"),
    ({"sources": ["http://"]}, "sources"),
    ({"sources": ["http://[::1"]}, "sources"),
    ({"sources": ["https://news.example.com/f"] * 51}, "sources"),
    # limit
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": -5}, "limit"),
    ({"limit": True}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": 2.5}, "limit"),
    ({"limit": [10]}, "limit"),
    ({"limit": "²"}, "limit"),
    ({"limit": "9" * 5000}, "limit"),
    # schedule
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"schedule": "* * * *"}, "schedule"),
    ({"schedule": ""}, "schedule"),
    ({"schedule": None}, "schedule"),
    ({"schedule": 42}, "schedule"),
    ({"schedule": []}, "schedule"),
    ({"schedule": {}}, "schedule"),
    ({"schedule": "weekly"}, "schedule"),
    ({"schedule": "0 0 30 2 *"}, "schedule"),
    ({"schedule": {"type": "interval", "value": "weekly"}}, "schedule"),
    ({"schedule": {"type": "interval", "value": ["daily"]}}, "schedule"),
    ({"schedule": {"type": "interval", "value": {"a": 1}}}, "schedule"),
    ({"schedule": {"type": "cron"}}, "schedule"),
    ({"schedule": {"type": "cron", "expression": 5}}, "schedule"),
    ({"schedule": {"type": ["cron"], "expression": "* * * * *"}}, "schedule"),
    # timezone
    ({"timezone": "Nope/Zone"}, "timezone"),
    ({"timezone": 5}, "timezone"),
    ({"timezone": ["UTC"]}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    # date_range
    ({"date_range": "24h"}, "date_range"),
    ({"date_range": ["24h"]}, "date_range"),
    ({"date_range": {"last": "0h"}}, "date_range"),
    ({"date_range": {"last": 24}}, "date_range"),
    ({"date_range": {"last": "24 hours"}}, "date_range"),
    ({"date_range": {"last": "24h", "start": "2026-01-01T00:00:00Z"}}, "date_range"),
    ({"date_range": {"start": "yesterday"}}, "date_range"),
    ({"date_range": {"start": 1714000000}}, "date_range"),
    (
        {"date_range": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
        "date_range",
    ),
    ({"date_range": {"since": "2026-01-01"}}, "date_range"),
    ({"date_range": {"start": "0001-01-01T00:00:00+01:00"}}, "date_range"),
    ({"date_range": {"end": "9999-12-31T23:59:59-01:00"}}, "date_range"),
    # webhook_url
    ({"webhook_url": "ftp://hooks.example.com"}, "webhook_url"),
    ({"webhook_url": "javascript:alert(1)"}, "webhook_url"),
    ({"webhook_url": 5}, "webhook_url"),
    ({"webhook_url": "http://"}, "webhook_url"),
    ({"webhook_url": "http://[::1"}, "webhook_url"),
]


@pytest.mark.parametrize(("override", "field"), HOSTILE, ids=[repr(o)[:60] for o, _ in HOSTILE])
def test_hostile_create_bodies_are_422_with_the_field(client, db, write, override, field):
    response = client.post("/v1/jobs", json=job_body(**override), headers=write)
    assert_error(response, 422, "invalid_field", field=field)
    assert db.session.scalar(select(func.count(Job.id))) == 0


@pytest.mark.parametrize("missing", ["name", "prompt", "sources", "schedule"])
def test_each_required_field_is_named_when_missing(client, write, missing):
    body = job_body()
    del body[missing]
    assert_error(client.post("/v1/jobs", json=body, headers=write), 422, field=missing)


@pytest.mark.parametrize(
    ("override", "field"), HOSTILE[::3], ids=[repr(o)[:60] for o, _ in HOSTILE[::3]]
)
def test_hostile_patch_bodies_are_422_with_the_field(client, write, created, override, field):
    response = client.patch(f"/v1/jobs/{created['id']}", json=override, headers=write)
    assert_error(response, 422, "invalid_field", field=field)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_creates_a_read_key_printed_alone_on_the_last_line(app, client, db):
    result = app.test_cli_runner().invoke(
        args=["create-api-key", "--scope", "read", "--project", "Team"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    secret = lines[-1]
    assert re.fullmatch(r"bsk_[A-Za-z0-9_-]{40,}", secret), result.stdout
    assert "shown only once" in result.stderr
    db.session.expire_all()
    team = db.session.scalar(select(Project).where(Project.name == "Team"))
    assert team is not None
    key = db.session.scalar(select(ApiKey).where(ApiKey.project_id == team.id))
    assert key.scope == "read"
    headers = {"Authorization": f"Bearer {secret}"}
    listed = client.get("/v1/jobs", headers=headers)
    assert listed.status_code == 200 and listed.get_json()["data"] == []
    assert_error(client.post("/v1/jobs", json=job_body(), headers=headers), 403, "forbidden")


def test_cli_refuses_an_unknown_scope(app, db):
    result = app.test_cli_runner().invoke(args=["create-api-key", "--scope", "root"])
    assert result.exit_code != 0
    assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_listing_jobs_costs_the_same_queries_for_few_or_many(client, project, db, api_key):
    from sqlalchemy import event

    from webapp.jobs.service import run_now

    headers = api_key("read")

    def statements() -> int:
        executed = []
        listener = lambda *_args: executed.append(1)  # noqa: E731
        db.session.expire_all()  # as a fresh request would: nothing cached from the last one
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            response = client.get("/v1/jobs?limit=100", headers=headers)
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        assert response.status_code == 200
        return len(executed)

    for n in range(3):
        run_now(make_job(project, name=f"job {n}"))
    statements()  # the key's first use also records when it was used
    few = statements()
    for n in range(3, 30):
        run_now(make_job(project, name=f"job {n}"))
    assert statements() == few  # each job's last run comes from one query for the page
    data = client.get("/v1/jobs?limit=100", headers=headers).get_json()["data"]
    assert all(job["last_run"]["status"] == "queued" for job in data)
