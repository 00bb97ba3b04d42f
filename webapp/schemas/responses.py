"""What the API answers: each object's fields, written once. webapp.api builds these from
rows and serialises them; the OpenAPI document shows them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from typing_extensions import TypeAliasType

from ..models import JOB_STATES, KEY_SCOPES, RUN_STATUSES, RUN_TRIGGERS
from ..schedules import INTERVALS
from ..settings.models import WEBHOOK_EVENTS
from .channels import DIGESTS
from .fields import Count, DateRange, Timestamp

__all__ = [
    "QUERY_STATUSES",
    "SOURCE_STATUSES",
    "ApiKey",
    "ApiKeyCreated",
    "ApiKeyList",
    "AlertRulesOut",
    "Channel",
    "ChannelList",
    "ChannelTested",
    "Error",
    "ErrorDetail",
    "ExportRecord",
    "Job",
    "JobPage",
    "Out",
    "Query",
    "QueryAccepted",
    "Record",
    "RecordPage",
    "ResultFile",
    "Run",
    "RunPage",
    "SchedulePreview",
    "Source",
    "SourceConfig",
    "StorageFile",
    "StorageFilePage",
    "StoredRecord",
    "StoredRecordPage",
    "Webhook",
    "WebhookCreated",
    "WebhookList",
    "WebhookSecret",
    "json_of",
]

QUERY_STATUSES = ("queued", "running", "completed", "failed")
SOURCE_STATUSES = ("ready", "needs_credentials", "unavailable")


class Out(BaseModel):
    """An object the API answers with: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


def json_of(model: BaseModel) -> dict[str, Any]:
    """The JSON an answer carries: the fields that were given (an optional one left out is
    absent, not null)."""
    return model.model_dump(mode="json", exclude_unset=True)


class ErrorDetail(Out):
    code: str = Field(pattern="^[a-z][a-z0-9_]*$")
    message: str = Field(min_length=1)
    field: str = Field(None, description="The field at fault.")


class Error(Out):
    """Every error the API answers: `field` when one field is at fault."""

    error: ErrorDetail


class SourceConfig(Out):
    """A source as stored: its type and its options (e.g. `url`)."""

    model_config = ConfigDict(extra="allow")
    type: str


class IntervalSchedule(Out):
    type: Literal["interval"]
    value: Literal[tuple(INTERVALS)]
    description: str


class CronSchedule(Out):
    type: Literal["cron"]
    expression: str
    description: str = Field(json_schema_extra={"example": "At 08:00"})


ScheduleOut = TypeAliasType("Schedule", IntervalSchedule | CronSchedule)


class Run(Out):
    """One run of a job (or of a one-off query)."""

    id: str = Field(json_schema_extra={"example": "run_01JT…"})
    job_id: str | None = Field(description="Null only for a one-off query (trigger `query`).")
    trigger: Literal[RUN_TRIGGERS]
    status: Literal[RUN_STATUSES]
    scheduled_for: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_ms: int | None
    record_count: Count
    new_count: Count
    error: str | None
    result_url: str | None = Field(
        description="The run's records (set once the run has completed)."
    )


class AlertRulesOut(Out):
    """A job's alert rules."""

    channels: list[str]
    on_new_records: bool
    on_failure: bool
    after_failures: int
    on_recovery: bool
    digest: Literal[DIGESTS]


class Job(Out):
    """A saved query that runs on a schedule."""

    id: str = Field(pattern="^job_", json_schema_extra={"example": "job_01JT…"})
    name: str
    prompt: str
    sources: list[SourceConfig]
    schedule: ScheduleOut
    timezone: str = Field(json_schema_extra={"example": "UTC"})
    date_range: DateRange | None
    limit: int
    state: Literal[JOB_STATES]
    next_run_at: Timestamp | None
    last_sync_at: Timestamp | None
    last_run: Run | None
    last_error: str | None
    webhook_url: str | None
    alerts: AlertRulesOut | None = Field(description="The job's alert rules; null: none.")
    overdue: bool = Field(
        description="An active job whose slot passed more than the grace period "
        "(BYTESTACK_OVERDUE_GRACE_SECONDS) ago without a run."
    )
    created_at: Timestamp
    updated_at: Timestamp


class Record(Out):
    """One record a run found."""

    id: str = Field(json_schema_extra={"example": "rec_01JT…"})
    source: str
    url: str | None
    title: str | None
    text: str | None
    author: str | None
    published_at: Timestamp | None
    metrics: dict[str, Any]
    is_new: bool


class StoredRecord(Record):
    """A stored record of the project, with the job and the run that found it."""

    job_id: str | None = Field(description="The job (`job_…`); null for a one-off query's.")
    run_id: str = Field(description="The run (`run_…`) or one-off query (`qry_…`) that stored it.")


class ExportRecord(Record):
    """A record of a result file (its run is the file's)."""


class QueryAccepted(Out):
    """A one-off query, queued."""

    id: str = Field(pattern="^qry_")
    status: Literal[QUERY_STATUSES] = Field(
        description="`queued`; `failed` when the queue could not take it."
    )
    created_at: Timestamp


class Query(Out):
    """A one-off query's status, and its results once completed."""

    id: str = Field(pattern="^qry_")
    status: Literal[QUERY_STATUSES]
    prompt: str | None
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    record_count: Count
    results: list[Record] = Field(None, description="Only when completed.")
    warnings: str | None = Field(None, description="When completed while some sources failed.")
    error: str | None = Field(None, description="Only when failed.")


class SchedulePreview(Out):
    """A schedule in words and its next run times."""

    description: str
    next_runs: list[Timestamp]


SourceStatus = TypeAliasType("SourceStatus", Literal[SOURCE_STATUSES])


class Source(Out):
    """A source and whether it can run here."""

    id: str
    name: str
    status: SourceStatus
    detail: str


class StorageFile(Out):
    """A result file: `run_id` for a job's run, `query_id` for a query."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["run_id"]}, {"required": ["query_id"]}]}
    )
    key: str = Field(json_schema_extra={"example": "run_01JT…_2026-04-30T08-00-00Z.json"})
    job_id: str | None
    run_id: str = None
    query_id: str = None
    created_at: Timestamp
    record_count: Count


class ResultFile(StorageFile):
    """A result file's content: what ran, when, and every record it kept."""

    model_config = ConfigDict(json_schema_extra=None)
    job_name: str | None = None
    prompt: str | None = None
    trigger: Literal[RUN_TRIGGERS]
    status: Literal[RUN_STATUSES]
    scheduled_for: Timestamp = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    new_count: Count = None
    error: str | None = None
    records: list[Record]


class Webhook(Out):
    """A URL that receives events; its secret is never listed."""

    id: str
    url: str
    events: list[Literal[WEBHOOK_EVENTS]]
    created_at: Timestamp


class WebhookCreated(Webhook):
    """A new webhook with its signing secret."""

    secret: str = Field(description="Shown once.")


class WebhookSecret(Out):
    """A webhook's new signing secret."""

    id: str
    secret: str


class Channel(Out):
    """Where alerts go; its URL is shown masked (service, host and path, secrets replaced)."""

    id: str = Field(pattern="^chn_", json_schema_extra={"example": "chn_01JT…"})
    name: str
    kind: str = Field(description="The Apprise service, e.g. `slack`, `mailto`, `json`.")
    masked_url: str = Field(json_schema_extra={"example": "slack://T...2/A...D/T...Q"})
    created_at: Timestamp
    last_sent_at: Timestamp | None
    last_error: str | None = Field(description="Why the latest message did not go out.")


class ChannelTested(Out):
    """A test message that the channel's service accepted."""

    id: str
    delivered: Literal[True]
    message: str


class ApiKey(Out):
    """An API key; never its secret or hash."""

    id: str
    name: str
    scope: Literal[KEY_SCOPES]
    prefix: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class ApiKeyCreated(ApiKey):
    """A new API key with the key itself."""

    key: str = Field(description="The key; shown once.")


NEXT_CURSOR = (
    Annotated[
        str | None, Field(description="Pass as `cursor` for the next page; null on the last page.")
    ],
    ...,
)


def _collection(item: type[Out], paged: bool) -> type[Out]:
    """`{"data": [item…]}`, with the next page's cursor when `paged`."""
    more = {"next_cursor": NEXT_CURSOR} if paged else {}
    return create_model(
        f"{item.__name__}{'Page' if paged else 'List'}",
        __base__=Out,
        __doc__=f"{'A page' if paged else 'The whole list'} of {item.__name__} objects.",
        __module__=__name__,
        data=(list[item], ...),
        **more,
    )


JobPage = _collection(Job, paged=True)
RunPage = _collection(Run, paged=True)
RecordPage = _collection(Record, paged=True)
StoredRecordPage = _collection(StoredRecord, paged=True)
StorageFilePage = _collection(StorageFile, paged=True)
WebhookList = _collection(Webhook, paged=False)
ChannelList = _collection(Channel, paged=False)
ApiKeyList = _collection(ApiKey, paged=False)
