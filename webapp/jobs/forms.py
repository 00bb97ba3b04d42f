"""The New Job / Edit form: request.form to the service's fields and back."""

from __future__ import annotations

import json
import re

from ..models import Job
from ..schedules import INTERVALS
from ..schemas import (
    AFTER_FAILURES_MAX,
    BUCKET_ACCESS_KEY_MAX,
    BUCKET_PREFIX_MAX,
    BUCKET_REGION_MAX,
    BUCKET_SECRET_MAX,
    JOB_NAME_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    LIMIT_MIN,
    PROMPT_MAX,
    RETENTION_DAYS_MAX,
    RETENTION_RUNS_MAX,
)

PRESETS = [
    ("every_hour", "Every hour"),
    ("every_6_hours", "Every 6 hours"),
    ("every_12_hours", "Every 12 hours"),
    ("daily", "Daily at 00:00"),
    ("daily_at", "Daily at…"),
    ("cron", "Custom cron"),
]
DATE_RANGES = [
    ("", "Since the previous run"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("2w", "Last 2 weeks"),
    ("30d", "Last 30 days"),
]
_DAILY = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \*$")
# The maxlength/min/max attributes of the New Job and Query forms: the schemas' limits.
FORM_LIMITS = {
    "name": JOB_NAME_MAX,
    "prompt": PROMPT_MAX,
    "limit_min": LIMIT_MIN,
    "limit_max": LIMIT_MAX,
    "after_failures_max": AFTER_FAILURES_MAX,
    "bucket_region": BUCKET_REGION_MAX,
    "bucket_prefix": BUCKET_PREFIX_MAX,
    "bucket_access_key": BUCKET_ACCESS_KEY_MAX,
    "bucket_secret": BUCKET_SECRET_MAX,
    "retention_days": RETENTION_DAYS_MAX,
    "retention_runs": RETENTION_RUNS_MAX,
}
# Sources that need parameters (a URL, selectors) are written in the text box, not picked.
CONFIGURED_SOURCES = frozenset(("rss", "web", "json"))
DIGEST_CHOICES = [
    ("immediate", "At once, after each run"),
    ("hourly", "Hourly digest"),
    ("daily", "Daily digest (at midnight in the job's timezone)"),
]
ALERT_FLAGS = ("on_new_records", "on_failure", "on_recovery")


def source_lines(text: str) -> list:
    """One source a line: an id, a feed URL, or a JSON object for a configured source."""
    sources: list = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        if line.startswith("{"):
            try:
                sources.append(json.loads(line))
                continue
            except ValueError:
                pass  # kept as text: the service explains what is wrong with it
        sources.append(line)
    return sources


def source_choices(listed: list[dict]) -> list[dict]:
    """The sources offered as checkboxes: no parameters needed, and a public API exists."""
    return [s for s in listed if s["id"] not in CONFIGURED_SOURCES and s["status"] != "unavailable"]


def schedule_from_form(form) -> str:
    kind = form.get("schedule_kind", "every_hour")
    if kind == "daily_at":
        return f"daily at {form.get('daily_at', '').strip()}"
    if kind == "cron":
        return form.get("cron", "")
    return kind


def picked_sources(form) -> list[str]:
    return form.getlist("source_ids") if hasattr(form, "getlist") else list(form.get("source_ids", []))


def query_data_from_form(form) -> dict:
    """The Query page's fields (and the New Job form's query part) as the schemas take them:
    the schemas parse the digits of `limit` and explain anything else."""
    last = form.get("date_range", "")
    return {
        "prompt": form.get("prompt", ""),
        "sources": picked_sources(form) + source_lines(form.get("sources", "")),
        "limit": form.get("limit", "").strip() or None,
        "date_range": {"last": last} if last else None,
    }


def job_data_from_form(form) -> dict:
    return {
        "name": form.get("name", ""),
        **query_data_from_form(form),
        "schedule": schedule_from_form(form),
        "timezone": form.get("timezone", "UTC").strip() or "UTC",
        "alerts": alerts_from_form(form),
    }


def _list(form, name: str) -> list[str]:
    return form.getlist(name) if hasattr(form, "getlist") else list(form.get(name, []))


def alerts_from_form(form) -> dict | None:
    """The Alerts section as the schemas take it: no channel chosen is no alerts."""
    channels = _list(form, "alert_channels")
    if not channels:
        return None
    return {
        "channels": channels,
        **{flag: bool(form.get(f"alert_{flag}")) for flag in ALERT_FLAGS},
        "after_failures": form.get("alert_after_failures", "").strip() or 1,
        "digest": form.get("alert_digest", "immediate"),
    }


def alert_values(form) -> dict:
    """The Alerts section's values as posted, to show the form again (an unticked box is
    absent from the post, so the defaults of a new form must not fill it back in)."""
    return {
        "alert_channels": _list(form, "alert_channels"),
        **{f"alert_{flag}": bool(form.get(f"alert_{flag}")) for flag in ALERT_FLAGS},
        "alert_after_failures": form.get("alert_after_failures", "1"),
        "alert_digest": form.get("alert_digest", "immediate"),
    }


def _alert_values_of(rules: dict | None) -> dict:
    if not rules:
        return {key: EMPTY_FORM[key] for key in EMPTY_FORM if key.startswith("alert_")}
    return {
        "alert_channels": list(rules["channels"]),
        **{f"alert_{flag}": bool(rules[flag]) for flag in ALERT_FLAGS},
        "alert_after_failures": str(rules["after_failures"]),
        "alert_digest": rules["digest"],
    }


def form_from_job(job: Job) -> dict:
    """The form's values for an existing job."""
    kind, daily_at, cron = "cron", "08:00", ""
    if job.schedule_type == "interval" and job.schedule_value in INTERVALS:
        kind = job.schedule_value
    else:
        match = _DAILY.match(job.schedule_value)
        if match:
            kind, daily_at = "daily_at", f"{int(match.group(2)):02d}:{int(match.group(1)):02d}"
        else:
            cron = job.schedule_value
    return {
        "name": job.name,
        "prompt": job.prompt,
        "source_ids": [s["type"] for s in job.sources if _pickable(s)],
        "sources": "\n".join(source_line(s) for s in job.sources if not _pickable(s)),
        "limit": str(job.limit),
        "date_range": (job.date_range or {}).get("last", ""),
        "schedule_kind": kind,
        "daily_at": daily_at,
        "cron": cron,
        "timezone": job.timezone,
        **_alert_values_of(job.alerts),
    }


def _pickable(source: dict) -> bool:
    return set(source) == {"type"} and source["type"] not in CONFIGURED_SOURCES


def source_line(source: dict) -> str:
    """A stored source as the text box takes it back: its id, a feed URL, or its JSON."""
    if source["type"] == "rss" and set(source) == {"type", "url"}:
        return source["url"]
    if set(source) == {"type"}:
        return source["type"]
    return json.dumps(source, ensure_ascii=False)


EMPTY_FORM = {
    "name": "",
    "prompt": "",
    "source_ids": [],
    "sources": "",
    "limit": str(LIMIT_DEFAULT),
    "date_range": "",
    "schedule_kind": "every_hour",
    "daily_at": "08:00",
    "cron": "",
    "timezone": "UTC",
    "alert_channels": [],
    "alert_on_new_records": True,
    "alert_on_failure": True,
    "alert_on_recovery": True,
    "alert_after_failures": "1",
    "alert_digest": "immediate",
}
