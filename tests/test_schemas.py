"""webapp.schemas: one model per input and output owns each rule and limit, and one formatter
turns pydantic's errors into a sentence per field. All but the last test need no app."""

from __future__ import annotations

import pytest

from webapp import schemas
from webapp.errors import ValidationError
from webapp.jobs.forms import FORM_LIMITS, job_data_from_form, query_data_from_form

JOB = {"name": "Acme", "prompt": "acme", "sources": ["hackernews"], "schedule": "daily"}


def refused(model, data) -> dict:
    with pytest.raises(ValidationError) as caught:
        schemas.validate(model, data)
    return caught.value.errors


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"name": ""}, "name", "Give the job a name."),
        ({"name": "   "}, "name", "Give the job a name."),
        ({"name": 42}, "name", "Give the job a name."),
        ({"name": "n" * 201}, "name", "The name can be at most 200 characters."),
        ({"prompt": " "}, "prompt", "Write a prompt: what should be looked for?"),
        ({"prompt": ["acme"]}, "prompt", "Write a prompt: what should be looked for?"),
        (
            {"prompt": "p" * 2001},
            "prompt",
            "The prompt can be at most 2000 characters (it has 2001).",
        ),
        ({"sources": []}, "sources", "Add at least one source, for example an RSS feed URL."),
        ({"sources": ["hackernews"] * 51}, "sources", "A job can have at most 50 sources."),
        ({"limit": 0}, "limit", "limit must be a whole number from 1 to 1000."),
        ({"limit": True}, "limit", "limit must be a whole number from 1 to 1000."),
        ({"limit": 2.0}, "limit", "limit must be a whole number from 1 to 1000."),
        ({"limit": "1e3"}, "limit", "limit must be a whole number from 1 to 1000."),
        (
            {"date_range": {"last": "0h"}},
            "date_range",
            'date_range "last" must be longer than zero.',
        ),
        (
            {"webhook_url": "ftp://h.example.com"},
            "webhook_url",
            "Use an http:// or https:// URL with a host.",
        ),
        (
            {"webhook_url": "https://" + "a" * 2000},
            "webhook_url",
            "A URL can be at most 2000 characters.",
        ),
        (
            {"schedule": "weekly"},
            "schedule",
            "Unknown preset 'weekly': use every_hour, every_6_hours, every_12_hours, daily or a 5-field cron expression.",
        ),
        ({"timezone": 5}, "timezone", "Timezone must be an IANA name such as Europe/Berlin."),
        (
            {"name": "a\x00b"},
            "name",
            "name: Text cannot contain NUL characters or unpaired surrogates.",
        ),
    ],
)
def test_each_refusal_reads_as_before_next_to_its_field(override, field, message):
    assert refused(schemas.JobCreate, {**JOB, **override}) == {field: message}


@pytest.mark.parametrize("missing", ["name", "prompt", "sources", "schedule"])
def test_a_missing_required_field_is_named(missing):
    data = {name: value for name, value in JOB.items() if name != missing}
    assert refused(schemas.JobCreate, data) == {missing: f"{missing} is required."}


def test_every_bad_field_is_reported_at_once_each_with_its_own_message():
    errors = refused(schemas.JobCreate, {**JOB, "name": "", "limit": 0, "schedule": "61 * * * *"})
    assert set(errors) == {"name", "limit", "schedule"}
    assert "minute" in errors["schedule"]


def test_a_valid_job_comes_back_cleaned_with_its_defaults():
    values = schemas.validate(
        schemas.JobCreate, {**JOB, "name": "  Acme  ", "limit": " 25 ", "webhook_url": ""}
    ).values()
    assert values["name"] == "Acme"
    assert values["limit"] == 25  # digits, as a form sends them
    assert values["sources"] == [{"type": "hackernews"}]
    assert (values["schedule"].value, values["schedule"].timezone) == ("daily", "UTC")
    assert values["webhook_url"] is None and values["date_range"] is None
    defaulted = schemas.validate(schemas.JobCreate, {**JOB, "limit": None}).values()
    assert defaulted["limit"] == schemas.LIMIT_DEFAULT


def test_the_schedule_is_read_in_the_jobs_timezone():
    values = schemas.validate(
        schemas.JobCreate, {**JOB, "schedule": "0 8 * * *", "timezone": "Europe/Berlin"}
    ).values()
    assert values["schedule"].timezone == "Europe/Berlin"
    bad_zone = refused(schemas.JobCreate, {**JOB, "timezone": "Nope/Zone"})
    assert set(bad_zone) == {"timezone"}  # the schedule itself is fine


def test_a_prompt_naming_its_source_fills_in_missing_sources():
    data = {"name": "x", "prompt": "mentions of acme on reddit", "schedule": "daily"}
    assert schemas.validate(schemas.JobCreate, data).values()["sources"] == [{"type": "reddit"}]


def test_a_patch_carries_only_what_was_sent_and_refuses_the_rest():
    patch = schemas.validate(schemas.JobUpdate, {"name": "Renamed", "limit": None})
    assert patch.given() == {"name": "Renamed"}  # null limit: unchanged
    assert refused(schemas.JobUpdate, {"id": "job_x"}) == {"id": "id is not a writable field."}
    assert refused(schemas.JobUpdate, {"state": "running"}) == {
        "state": 'state can be set to "paused" or "active".'
    }
    assert refused(schemas.JobUpdate, {"name": None}) == {"name": "Give the job a name."}


def test_preview_count_is_a_strict_whole_number():
    base = {"schedule": "daily"}
    assert schemas.validate(schemas.SchedulePreviewRequest, base).count == 5
    for count in (0, 51, True, "5", 2.5):
        assert refused(schemas.SchedulePreviewRequest, {**base, "count": count}) == {
            "count": "count must be a whole number from 1 to 50."
        }


def test_webhook_and_key_rules():
    webhook = schemas.validate(
        schemas.WebhookCreate,
        {
            "url": " https://h.example.com/in ",
            "events": ["job.failed", "job.completed", "job.failed"],
        },
    )
    assert (webhook.url, webhook.events) == (
        "https://h.example.com/in",
        ["job.completed", "job.failed"],
    )
    assert refused(schemas.WebhookCreate, {"url": None, "events": ["job.lost"]}) == {
        "url": "Enter the URL that receives the events.",
        "events": "Unknown event 'job.lost': use job.completed, job.failed, query.completed.",
    }
    assert refused(schemas.WebhookCreate, {"url": "https://h.example.com", "events": []}) == {
        "events": "Choose at least one event: job.completed, job.failed, query.completed."
    }
    assert refused(schemas.ApiKeyCreate, {"name": "k" * 101, "scope": "root"}) == {
        "name": "A key name can be at most 100 characters.",
        "scope": "Choose a scope: read, write, admin.",
    }


def test_query_strings_take_digits_and_name_the_parameter():
    params = schemas.validate(schemas.JobListParams, {"limit": "200", "state": "paused"})
    assert (params.limit, params.state, params.cursor) == (200, "paused", None)
    assert schemas.validate(schemas.RecordPageParams, {}).limit == schemas.RECORDS_PAGE_DEFAULT
    assert refused(schemas.JobListParams, {"limit": "201", "state": "asleep"}) == {
        "limit": "limit must be a whole number from 1 to 200.",
        "state": "state must be one of active, running, paused, failed.",
    }
    assert refused(schemas.StorageFileParams, {"format": "xml"}) == {
        "format": "format must be json, csv or ndjson."
    }


def test_an_unstorable_key_of_the_body_is_refused_without_a_field():
    assert refused(schemas.QueryCreate, {"prompt": "a", "sources": ["x"], "\ud800": 1}) == {
        None: "Text cannot contain NUL characters or unpaired surrogates."
    }


def test_form_data_goes_into_the_same_models():
    """The New Job and Query forms send text; the models take it and word their refusals."""
    form = {
        "name": "Acme",
        "prompt": "acme",
        "sources": 'https://e.com/f.xml\n{"type": "json", "url": "https://e.com/api", "items": "[]"}',
        "limit": "40",
        "date_range": "7d",
        "schedule_kind": "daily_at",
        "daily_at": "08:30",
        "timezone": "Europe/Berlin",
    }
    job = schemas.validate(schemas.JobCreate, job_data_from_form(form)).values()
    assert job["limit"] == 40 and job["date_range"] == {"last": "7d"}
    assert job["sources"][1] == {"type": "json", "url": "https://e.com/api", "items": "[]"}
    assert job["schedule"].value == "30 8 * * *"
    query = schemas.validate(schemas.QueryCreate, query_data_from_form(form)).values()
    assert query["sources"] == job["sources"]
    assert refused(schemas.JobCreate, job_data_from_form({**form, "limit": "abc", "name": ""})) == {
        "limit": "limit must be a whole number from 1 to 1000.",
        "name": "Give the job a name.",
    }


def test_the_json_schema_carries_the_limits_the_rules_check():
    query = schemas.QueryCreate.model_json_schema()["properties"]
    assert query["prompt"]["maxLength"] == schemas.PROMPT_MAX
    limit = next(s for s in query["limit"]["anyOf"] if s.get("type") == "integer")
    assert (limit["minimum"], limit["maximum"]) == (schemas.LIMIT_MIN, schemas.LIMIT_MAX)
    assert query["sources"]["maxItems"] == schemas.SOURCES_MAX
    job = schemas.JobCreate.model_json_schema()["properties"]
    assert job["name"]["maxLength"] == schemas.JOB_NAME_MAX


def test_the_forms_limits_are_the_schemas(client, monkeypatch):
    """maxlength, min and max of the forms are the schemas' limits, not literals."""
    assert FORM_LIMITS == {
        "name": schemas.JOB_NAME_MAX,
        "prompt": schemas.PROMPT_MAX,
        "limit_min": schemas.LIMIT_MIN,
        "limit_max": schemas.LIMIT_MAX,
        "after_failures_max": schemas.AFTER_FAILURES_MAX,
        "bucket_region": schemas.BUCKET_REGION_MAX,
        "bucket_prefix": schemas.BUCKET_PREFIX_MAX,
        "bucket_access_key": schemas.BUCKET_ACCESS_KEY_MAX,
        "bucket_secret": schemas.BUCKET_SECRET_MAX,
        "retention_days": schemas.RETENTION_DAYS_MAX,
        "retention_runs": schemas.RETENTION_RUNS_MAX,
    }
    # Other numbers, so that a literal in a template cannot pass for the limit.
    for name, value in (("name", 77), ("prompt", 777), ("limit_min", 7), ("limit_max", 7777)):
        monkeypatch.setitem(FORM_LIMITS, name, value)
    for url in ("/jobs/new", "/query"):
        page = client.get(url).text
        prompt = page.split('id="prompt"', 1)[1].split(">", 1)[0]
        assert 'maxlength="777"' in prompt, url
        limit = page.split('id="limit"', 1)[1].split(">", 1)[0]
        assert 'min="7"' in limit and 'max="7777"' in limit, url
    name = client.get("/jobs/new").text.split('id="name"', 1)[1].split(">", 1)[0]
    assert 'maxlength="77"' in name
