"""A project's retention policy and what the project stores (API.md "Project, retention")."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator

from .fields import Count, _digits
from .limits import RETENTION_DAYS_MAX, RETENTION_RUNS_MAX
from .requests import Body
from .responses import Out
from .validation import Messages, invalid

__all__ = ["Project", "ProjectUpdate", "Retention", "RetentionUpdate"]


def _number_or_none(value: Any) -> Any:
    """A whole number, also written in digits; an emptied form field means no limit."""
    if isinstance(value, str) and not value.strip():
        return None
    return _digits(value)


def _limit(maximum: int, description: str, message: str) -> Any:
    return Annotated[
        Annotated[int, Field(strict=True, ge=1, le=maximum)] | None,
        BeforeValidator(_number_or_none),
        Field(description=f"{description} 1–{maximum}; null keeps everything."),
        Messages(message),
    ]


RetentionDays = _limit(
    RETENTION_DAYS_MAX,
    "Runs whose run time is older than this many days are deleted with their records: a "
    "job's runs (skipped ones too) and one-off queries.",
    f"Keep runs for 1 to {RETENTION_DAYS_MAX} days, or leave it empty (null) to keep runs "
    "of any age.",
)
RetentionRuns = _limit(
    RETENTION_RUNS_MAX,
    "Each job keeps its newest this many finished runs (skipped ones count); older ones are "
    "deleted with their records.",
    f"Keep 1 to {RETENTION_RUNS_MAX} runs per job, or leave it empty (null) to keep them all.",
)


class RetentionUpdate(Body):
    """The policy's fields to change; a field not sent stays as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=None)
    days: RetentionDays = None
    runs_per_job: RetentionRuns = None


def _object(value: Any) -> Any:
    # The fields inside are checked by RetentionUpdate, so that each refusal names its field
    # (`retention.days`), which pydantic's error of the whole body would not.
    if not isinstance(value, dict):
        raise invalid('retention must be an object such as {"days": 30, "runs_per_job": null}.')
    return value


class ProjectUpdate(Body):
    """A change to the project: its retention policy."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=None)
    retention: Annotated[
        dict,
        PlainValidator(_object, json_schema_input_type=RetentionUpdate),
        Field(description="Runs are pruned by this policy hourly and after each run."),
    ]


class Retention(Out):
    """How long the project keeps its runs; null keeps everything."""

    days: int | None = Field(description="Runs older than this many days are deleted.")
    runs_per_job: int | None = Field(description="Each job keeps its newest this many runs.")


class Project(Out):
    """The key's project: its retention policy and what it stores."""

    id: str = Field(pattern="^prj_", json_schema_extra={"example": "prj_01JT…"})
    name: str
    retention: Retention
    record_count: Count = Field(description="Records stored by the project's runs and queries.")
    storage_bytes: Count = Field(
        description="The bytes of the project's stored records: each record's text and JSON "
        "(url, title, text, author, source, metrics, raw) as the database keeps them. Result "
        "files are made from these records when downloaded, so this is also what they hold; "
        "indexes and the database's own overhead come on top."
    )
