"""The field types the models are made of: each one's rules, bounds, sentences and the way
the OpenAPI document shows it, in one Annotated definition."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
)
from typing_extensions import TypeAliasType

from ..dates import RELATIVE, clean_date_range
from ..schedules import INTERVALS, Schedule, ScheduleError, parse_schedule, validate_timezone
from ..settings.models import WEBHOOK_EVENTS
from ..sources import SourceError, normalise_sources
from ..storage.search_syntax import SearchSyntaxError, parse_search
from ..timeutil import isoformat, parse_timestamp
from .limits import CRON_MAX, SEARCH_MAX, SEARCH_WORDS_MAX, SOURCES_MAX, URL_MAX
from .validation import Messages, invalid

_DIGITS = re.compile(r"\s*[0-9]{1,9}\s*")  # ASCII only: int() would take "²" and 5000 digits


class Spelling(BaseModel):
    """A shape an input may take, for the document: the rules that check it are elsewhere
    (webapp.schedules, webapp.sources, webapp.dates), and unknown keys are let through."""

    model_config = ConfigDict(extra="allow")


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _digits(value: Any) -> Any:
    """A whole number written in digits ("25", as forms and query strings send it)."""
    return int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else value


def text(maximum: int, messages: Messages, description: str = "") -> Any:
    """Text that is not only whitespace, at most `maximum` characters once trimmed (and kept
    trimmed)."""
    rule = f"Not only whitespace; at most {maximum} characters."
    return Annotated[
        str,
        Field(
            strict=True,
            min_length=1,
            max_length=maximum,
            description=f"{description} {rule}" if description else rule,
            json_schema_extra={"pattern": r"\S"},
        ),
        BeforeValidator(_strip),
        messages,
    ]


def whole_number(minimum: int, maximum: int, description: str = "", digits: bool = False) -> Any:
    """An integer from `minimum` to `maximum` (never a boolean or 2.0); `digits` also takes
    it written as a string of digits."""
    return Annotated[
        int,
        Field(strict=True, ge=minimum, le=maximum, description=description or None),
        *([BeforeValidator(_digits)] if digits else []),
        Messages(f"{{field}} must be a whole number from {minimum} to {maximum}."),
    ]


Count = Annotated[int, Field(ge=0)]

Timestamp = Annotated[
    datetime,
    PlainSerializer(isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2026-04-30T08:00:00Z"}),
]


def choice(values: tuple[str, ...], description: str = "", message: str = "") -> Any:
    """One of `values`; `message` says so (by default, "<field> must be one of …")."""
    return Annotated[
        Literal[values],
        Field(description=description or None),
        Messages(message or f"{{field}} must be one of {', '.join(values)}."),
    ]


def _instant(value: Any) -> datetime:
    """A date (its first instant, UTC) or an ISO 8601 timestamp (UTC when it has no offset)."""
    try:
        if isinstance(value, str) and len(value.strip()) == 10:
            return datetime.combine(date.fromisoformat(value.strip()), time(), tzinfo=UTC)
        if isinstance(value, str):
            return parse_timestamp(value)
    except (ValueError, OverflowError):  # overflow: an offset past year 1 or 9999
        pass
    raise invalid("Use a date or an ISO 8601 time, like 2026-04-30 or 2026-04-30T08:00:00Z.")


def instant(description: str) -> Any:
    return Annotated[
        Any,
        PlainValidator(_instant, json_schema_input_type=str),
        Field(description=description, json_schema_extra={"example": "2026-04-30T08:00:00Z"}),
    ]


def _search(value: Any) -> Any:
    if not isinstance(value, str):
        raise invalid("q must be text.")
    if len(value) > SEARCH_MAX:
        raise invalid(
            f"A search can be at most {SEARCH_MAX} characters (this one has {len(value)})."
        )
    try:
        return parse_search(value, SEARCH_WORDS_MAX)
    except SearchSyntaxError as exc:
        raise invalid(exc.message) from None


# Validated into a webapp.storage.search_syntax.SearchQuery (None when blank).
SearchInput = Annotated[
    Any,
    PlainValidator(_search, json_schema_input_type=Annotated[str, Field(max_length=SEARCH_MAX)]),
    Field(
        description="Full-text search of title, text and author: every word must match, "
        '`"a phrase"` in this order, `OR` between alternatives, `-word` leaves out records '
        f"with it. Case and accents do not matter; at most {SEARCH_WORDS_MAX} words.",
        json_schema_extra={"example": '"acme corp" OR acmecorp -jobs'},
    ),
]


# --- URLs that will receive events -----------------------------------------------------------


def _web_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        raise invalid("That is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise invalid("Use an http:// or https:// URL with a host.")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise invalid("A URL cannot contain spaces or control characters.")
    return url


WebUrl = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=URL_MAX, description="An http(s) URL with a host."),
    BeforeValidator(_strip),
    AfterValidator(_web_url),
    Messages(
        "Enter the URL that receives the events.",
        string_too_long=f"A URL can be at most {URL_MAX} characters.",
    ),
]

_EVENTS = ", ".join(WEBHOOK_EVENTS)
Events = Annotated[
    list[Literal[WEBHOOK_EVENTS]],
    Field(min_length=1),
    AfterValidator(lambda events: [e for e in WEBHOOK_EVENTS if e in events]),  # no repeats
    Messages(
        f"Choose at least one event: {_EVENTS}.",
        literal_error=f"Unknown event {{input!r}}: use {_EVENTS}.",
    ),
]


# --- sources ---------------------------------------------------------------------------------


class SourceObject(Spelling):
    """A configurable source: its type and its options, e.g. `{"type": "rss", "url": …}`."""

    type: str = Field(min_length=1)


SourceSpec = TypeAliasType(
    "SourceSpec",
    Annotated[
        Annotated[str, Field(min_length=1, json_schema_extra={"example": "hackernews"})]
        | SourceObject,
        Field(
            description='A source id (`"reddit"`; a URL is taken as an RSS feed) or an object '
            'for configurable sources, e.g. `{"type": "rss", "url": "https://…"}`.'
        ),
    ],
)


def _sources(value: Any) -> list[dict]:
    if isinstance(value, list) and len(value) > SOURCES_MAX:
        raise invalid(f"A job can have at most {SOURCES_MAX} sources.")
    try:
        return normalise_sources(value)
    except SourceError as exc:
        raise invalid(str(exc)) from None


Sources = Annotated[
    list[dict],
    PlainValidator(_sources, json_schema_input_type=list[SourceSpec]),
    Field(json_schema_extra={"minItems": 1, "maxItems": SOURCES_MAX}),
]


# --- date ranges -----------------------------------------------------------------------------


class RelativeRange(BaseModel):
    """The time before the run's start."""

    model_config = ConfigDict(extra="forbid")
    last: str = Field(pattern=RELATIVE.pattern, json_schema_extra={"example": "24h"})


class AbsoluteRange(BaseModel):
    """From `start` to `end`, either side optional."""

    model_config = ConfigDict(extra="forbid")
    start: Timestamp | None = None
    end: Timestamp | None = None


DateRange = TypeAliasType(
    "DateRange",
    Annotated[
        RelativeRange | AbsoluteRange,
        Field(
            description='Absolute (`{"start", "end"}`, either side optional) or relative to '
            'the run\'s start (`{"last": "24h" | "7d" | "2w"}`).'
        ),
    ],
)


def _date_range(value: Any) -> dict | None:
    try:
        return clean_date_range(value)
    except ValueError as exc:
        raise invalid(str(exc)) from None


DateRangeInput = Annotated[
    dict | None, PlainValidator(_date_range, json_schema_input_type=DateRange | None)
]


# --- schedules -------------------------------------------------------------------------------


class IntervalSpelling(Spelling):
    type: Literal["interval"]
    value: Literal[tuple(INTERVALS)]


class CronSpelling(Spelling):
    type: Literal["cron"]
    expression: str = Field(min_length=1, json_schema_extra={"example": "0 8 * * *"})


ScheduleInput = TypeAliasType(
    "ScheduleInput",
    Annotated[
        Annotated[str, Field(min_length=1, json_schema_extra={"example": "every_6_hours"})]
        | IntervalSpelling
        | CronSpelling,
        Field(
            description='An interval name (`"every_6_hours"`), a 5-field cron expression '
            '(`"0 8 * * *"`), `{"type": "interval", "value": …}` or `{"type": "cron", '
            '"expression": …}`.'
        ),
    ],
)


def _timezone(value: Any) -> str:
    try:
        return validate_timezone(value)
    except ScheduleError as exc:
        raise invalid(exc.message) from None


Timezone = Annotated[
    str,
    PlainValidator(_timezone, json_schema_input_type=str | None),
    Field(
        description='IANA name; default `"UTC"`.', json_schema_extra={"example": "Europe/Berlin"}
    ),
]


def _schedule(value: Any, info: ValidationInfo) -> Schedule:
    # The model's timezone field comes first; when it was refused, its own error says so
    # and the schedule is still checked, in UTC.
    try:
        return parse_schedule(value, info.data.get("timezone", "UTC"))
    except ScheduleError as exc:
        raise invalid(exc.message) from None


def _stored_schedule(value: Any, info: ValidationInfo) -> Schedule:
    schedule = _schedule(value, info)
    if len(schedule.value) > CRON_MAX:
        raise invalid(f"A cron expression can be at most {CRON_MAX} characters.")
    return schedule


# Validated into a webapp.schedules.Schedule; `Any` keeps that dataclass out of the
# document, where the name Schedule is the answer's spelling.
PreviewSchedule = Annotated[Any, PlainValidator(_schedule, json_schema_input_type=ScheduleInput)]
JobSchedule = Annotated[
    Any,
    PlainValidator(_stored_schedule, json_schema_input_type=ScheduleInput),
    Field(description=f"A cron expression can be at most {CRON_MAX} characters."),
]
