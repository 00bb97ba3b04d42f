"""The field types of alert channels and a job's alert rules: an Apprise URL, and the rules
object (API.md "Channels and alerts"), each with its limits and sentences."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator

from ..channel_urls import EXAMPLES, ChannelUrlError, load
from .fields import _digits, _strip
from .limits import AFTER_FAILURES_MAX, ALERT_CHANNELS_MAX, URL_MAX
from .validation import Messages, field_errors, invalid

DIGESTS = ("immediate", "hourly", "daily")


def _apprise_url(url: str) -> str:
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise invalid("A channel URL cannot contain spaces or control characters.")
    try:
        load(url)
    except ChannelUrlError as exc:
        raise invalid(exc.message) from None
    return url


ChannelUrl = Annotated[
    str,
    Field(
        strict=True,
        min_length=1,
        max_length=URL_MAX,
        description=f"An Apprise URL ({EXAMPLES}); stored encrypted, never returned whole.",
    ),
    BeforeValidator(_strip),
    AfterValidator(_apprise_url),
    Messages(
        f"Enter the channel's Apprise URL, such as {EXAMPLES}.",
        string_too_long=f"A channel URL can be at most {URL_MAX} characters.",
    ),
]


def _unique(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _flag(name: str) -> Any:
    return Annotated[bool, Field(strict=True), Messages(f"alerts.{name} must be true or false.")]


class AlertRules(BaseModel):
    """When a job's runs send a message, and to which of the project's channels."""

    model_config = ConfigDict(extra="forbid")

    channels: Annotated[
        list[Annotated[str, Field(strict=True, pattern=r"^chn_[0-9A-Za-z]{1,36}$")]],
        Field(
            max_length=ALERT_CHANNELS_MAX, description="Channel ids (`chn_…`) of the job's project."
        ),
        AfterValidator(_unique),
        Messages(
            f'alerts.channels must be a list of at most {ALERT_CHANNELS_MAX} channel ids ("chn_…").'
        ),
    ]
    on_new_records: _flag("on_new_records") = True
    on_failure: _flag("on_failure") = True
    after_failures: Annotated[
        int,
        Field(
            strict=True,
            ge=1,
            le=AFTER_FAILURES_MAX,
            description="Consecutive failed runs before a failure alert (once per streak).",
        ),
        BeforeValidator(_digits),
        Messages(f"alerts.after_failures must be a whole number from 1 to {AFTER_FAILURES_MAX}."),
    ] = 1
    on_recovery: _flag("on_recovery") = True
    digest: Annotated[
        Literal[DIGESTS],
        Field(
            description="`hourly` or `daily` (at midnight in the job's timezone) gathers "
            "new-record alerts into one message per period; failures go at once."
        ),
        Messages(f"alerts.digest must be one of {', '.join(DIGESTS)}."),
    ] = "immediate"


_RULES = ", ".join(AlertRules.model_fields)


def _alert_rules(value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(
            'alerts must be an object such as {"channels": ["chn_…"], "on_new_records": true}, '
            "or null."
        )
    try:
        rules = AlertRules.model_validate(value)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            raise invalid(f"alerts.{name} is not an alert rule: use {_RULES}.") from None
        if error["type"] == "missing":
            raise invalid(f"alerts.{name} is required.") from None
        raise invalid(next(iter(field_errors(AlertRules, exc).values()))) from None
    return rules.model_dump()


AlertsInput = Annotated[
    dict | None,
    PlainValidator(_alert_rules, json_schema_input_type=AlertRules | None),
    Field(description="The job's alert rules, or null for none."),
]
