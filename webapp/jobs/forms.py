"""The New Job / Edit form: request.form to the service's fields and back."""

from __future__ import annotations

import re

from ..models import Job
from ..schedules import INTERVALS

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


def schedule_from_form(form) -> str:
    kind = form.get("schedule_kind", "every_hour")
    if kind == "daily_at":
        return f"daily at {form.get('daily_at', '').strip()}"
    if kind == "cron":
        return form.get("cron", "")
    return kind


def job_data_from_form(form) -> dict:
    sources = [line.strip() for line in form.get("sources", "").splitlines() if line.strip()]
    limit = form.get("limit", "").strip()
    last = form.get("date_range", "")
    return {
        "name": form.get("name", ""),
        "prompt": form.get("prompt", ""),
        "sources": sources,
        "limit": limit or None,  # the service parses digits and explains anything else
        "date_range": {"last": last} if last else None,
        "schedule": schedule_from_form(form),
        "timezone": form.get("timezone", "UTC").strip() or "UTC",
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
        "sources": "\n".join(s.get("url") or s["type"] for s in job.sources),
        "limit": str(job.limit),
        "date_range": (job.date_range or {}).get("last", ""),
        "schedule_kind": kind,
        "daily_at": daily_at,
        "cron": cron,
        "timezone": job.timezone,
    }


EMPTY_FORM = {
    "name": "",
    "prompt": "",
    "sources": "",
    "limit": "100",
    "date_range": "",
    "schedule_kind": "every_hour",
    "daily_at": "08:00",
    "cron": "",
    "timezone": "UTC",
}
