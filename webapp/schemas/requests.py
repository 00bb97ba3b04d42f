"""What clients send: request bodies (also filled from the dashboard's forms) and the API's
query strings. Services validate through these with `validate`."""

from __future__ import annotations

from copy import copy
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from ..models import JOB_STATES, KEY_SCOPES
from ..prompt import parse_prompt
from .channels import AlertsInput, ChannelUrl
from .fields import (
    DateRangeInput,
    Events,
    JobSchedule,
    PreviewSchedule,
    SearchInput,
    Sources,
    Timezone,
    WebUrl,
    choice,
    instant,
    text,
    whole_number,
)
from .limits import (
    CHANNEL_NAME_MAX,
    JOB_NAME_MAX,
    KEY_NAME_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    PAGE_DEFAULT,
    PAGE_MAX,
    PREVIEW_COUNT_DEFAULT,
    PREVIEW_COUNT_MAX,
    PROMPT_MAX,
    RECORDS_PAGE_DEFAULT,
    RECORDS_PAGE_MAX,
)
from .validation import Messages, invalid

__all__ = [
    "EXPORT_FORMATS",
    "ApiKeyCreate",
    "Body",
    "ChannelCreate",
    "JobCreate",
    "JobListParams",
    "JobUpdate",
    "PageParams",
    "Params",
    "QueryCreate",
    "RecordPageParams",
    "RecordSearchParams",
    "SchedulePreviewRequest",
    "SearchParams",
    "StorageFileParams",
    "StorageListParams",
    "WebhookCreate",
]

EXPORT_FORMATS = ("json", "csv", "ndjson")


class Body(BaseModel):
    """A request body: fields the server does not know are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"additionalProperties": True})

    def given(self) -> dict[str, Any]:
        """The fields the caller sent, validated: what a change changes."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def values(self) -> dict[str, Any]:
        """Every field, validated, with the defaults of those not sent."""
        return {name: getattr(self, name) for name in type(self).model_fields}


Prompt = text(
    PROMPT_MAX,
    Messages(
        "Write a prompt: what should be looked for?",
        string_too_long=f"The prompt can be at most {PROMPT_MAX} characters (it has {{length}}).",
    ),
)
ResultLimit = Annotated[
    whole_number(LIMIT_MIN, LIMIT_MAX, digits=True) | None,
    Field(description="The newest records first, across all sources."),
]


class QueryCreate(Body):
    """A one-off query: a prompt and its parameters, run once. Fields the server does not
    know are ignored."""

    prompt: Prompt
    sources: Sources
    date_range: DateRangeInput = None
    limit: ResultLimit = LIMIT_DEFAULT

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "limit" in data and data["limit"] is None:  # null: the default, or unchanged
            del data["limit"]
        prompt = data.get("prompt")
        if not data.get("sources") and isinstance(prompt, str):
            prompt = prompt.strip()
            # "… on Reddit" names the source when none is given.
            named = parse_prompt(prompt).sources if 0 < len(prompt) <= PROMPT_MAX else []
            if named:
                data["sources"] = named
        return data


def _empty_taken(schema: dict) -> None:
    """An empty webhook_url is taken (it clears the URL): the document says so."""
    for part in (schema, *schema.get("anyOf", ())):
        part.pop("minLength", None)


JobName = text(
    JOB_NAME_MAX,
    Messages(
        "Give the job a name.",
        string_too_long=f"The name can be at most {JOB_NAME_MAX} characters.",
    ),
)


class JobCreate(QueryCreate):
    """A job: a query that runs on a schedule, in its timezone. Fields the server does not
    know are ignored."""

    name: JobName
    timezone: Timezone = "UTC"  # before schedule: the schedule is checked in it
    schedule: JobSchedule
    webhook_url: Annotated[
        WebUrl | None,
        BeforeValidator(lambda url: None if url == "" else url),  # an emptied field clears it
        Field(
            description="An http(s) URL that receives each run's payload.",
            json_schema_extra=_empty_taken,
        ),
    ] = None
    alerts: AlertsInput = None


class _JobPatch(JobCreate):
    """Any writable field of a job; any other field is refused with 422."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=None)


def _optional(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s fields, each optional (a field not sent is left as it is)."""
    fields = {}
    for name, info in model.model_fields.items():
        optional = copy(info)
        optional.default = None
        fields[name] = (info.annotation, optional)
    return fields


JobUpdate = create_model(
    "JobUpdate",
    __base__=_JobPatch,
    __doc__=_JobPatch.__doc__,
    __module__=__name__,
    state=(
        Annotated[
            Literal["paused", "active"] | None,
            Field(description='"paused" pauses the job, "active" resumes it.'),
            Messages('state can be set to "paused" or "active".'),
        ],
        None,
    ),
    **_optional(JobCreate),
)


class SchedulePreviewRequest(Body):
    """A schedule to describe, with its next run times from now."""

    timezone: Timezone = "UTC"
    schedule: PreviewSchedule
    count: whole_number(1, PREVIEW_COUNT_MAX) = PREVIEW_COUNT_DEFAULT


class WebhookCreate(Body):
    """A URL that receives the chosen events, signed with a secret shown once."""

    url: WebUrl
    events: Events


class ChannelCreate(Body):
    """Where alerts go: a name and an Apprise URL, stored encrypted and never shown whole."""

    name: text(
        CHANNEL_NAME_MAX,
        Messages(
            "Name the channel after who reads it, e.g. “Team Slack”.",
            string_too_long=f"A channel name can be at most {CHANNEL_NAME_MAX} characters.",
        ),
    )
    url: ChannelUrl


class ApiKeyCreate(Body):
    """A key for one scope; the key itself is shown once."""

    name: text(
        KEY_NAME_MAX,
        Messages(
            "Name the key after what uses it, e.g. “CI export”.",
            string_too_long=f"A key name can be at most {KEY_NAME_MAX} characters.",
        ),
        "What uses the key, e.g. “CI export”.",
    )
    scope: choice(KEY_SCOPES, message=f"Choose a scope: {', '.join(KEY_SCOPES)}.")


# --- query strings ---------------------------------------------------------------------------


class Params(BaseModel):
    """A query string: parameters the server does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


Cursor = Annotated[str | None, Field(description="The `next_cursor` of the previous page.")]


class PageParams(Params):
    cursor: Cursor = None
    limit: whole_number(1, PAGE_MAX, f"Items per page, 1–{PAGE_MAX}.", digits=True) = PAGE_DEFAULT


class JobListParams(PageParams):
    state: choice(JOB_STATES, "Only jobs in this state.") | None = None


RecordsLimit = whole_number(
    1, RECORDS_PAGE_MAX, f"Items per page, 1–{RECORDS_PAGE_MAX}.", digits=True
)
NewRecords = (
    choice(
        ("true", "false"),
        "true: only records new to the job; false: only ones seen before.",
        "new must be true or false.",
    )
    | None
)


class RecordPageParams(Params):
    cursor: Cursor = None
    limit: RecordsLimit = RECORDS_PAGE_DEFAULT
    new: NewRecords = None


class SearchParams(Params):
    """A full-text search on its own: the Storage page's search box is checked by it too."""

    q: SearchInput = None


class RecordSearchParams(SearchParams):
    job_id: Annotated[
        str | None,
        Field(description="Only this job's records (404 when the project has no such job)."),
    ] = None
    run_id: Annotated[
        str | None,
        Field(
            description="Only the records of this run (`run_…`) or one-off query (`qry_…`); "
            "404 when the project has none such."
        ),
    ] = None
    source: Annotated[
        str | None, Field(description="Only records from this source (`rss`, `reddit`, …).")
    ] = None
    since: instant("Only records published at or after this time (a date: its start, UTC).") = None
    until: instant("Only records published before this time (a date: its start, UTC).") = None
    new: NewRecords = None
    cursor: Cursor = None
    limit: RecordsLimit = RECORDS_PAGE_DEFAULT

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: Any, info: ValidationInfo) -> Any:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise invalid("until must be later than since.")
        return until


class StorageListParams(PageParams):
    job_id: Annotated[
        str | None,
        Field(description="Only this job's files (404 when the project has no such job)."),
    ] = None


class StorageFileParams(Params):
    format: choice(
        EXPORT_FORMATS,
        message=f"format must be {', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}.",
    ) = "json"
