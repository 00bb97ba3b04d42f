"""Objects as the API contract shows them."""

from __future__ import annotations

import base64

from datetime import timedelta

from flask import current_app, request, url_for

from ..models import Job, Record, Run
from ..timeutil import isoformat, now
from .errors import ApiError


def job_to_api(job: Job) -> dict:
    last = job.last_run()
    return {
        "id": job.public_id,
        "name": job.name,
        "prompt": job.prompt,
        "sources": job.sources,
        "schedule": job.schedule.to_api(),
        "timezone": job.timezone,
        "date_range": job.date_range,
        "limit": job.limit,
        "state": job.state,
        "next_run_at": isoformat(job.next_run_at),
        "last_sync_at": isoformat(job.last_sync_at),
        "last_run": run_to_api(last, job) if last else None,
        "last_error": job.last_error,
        "webhook_url": job.webhook_url,
        "overdue": job.is_overdue(
            now(), timedelta(seconds=current_app.config["OVERDUE_GRACE_SECONDS"])
        ),
        "created_at": isoformat(job.created_at),
        "updated_at": isoformat(job.updated_at),
    }


def run_to_api(run: Run, job: Job | None = None) -> dict:
    job = job or run.job
    return {
        "id": run.public_id,
        "job_id": job.public_id if job else None,
        "trigger": run.trigger,
        "status": run.status,
        "scheduled_for": isoformat(run.scheduled_for),
        "started_at": isoformat(run.started_at),
        "finished_at": isoformat(run.finished_at),
        "duration_ms": run.duration_ms,
        "record_count": run.record_count,
        "new_count": run.new_count,
        "error": run.error,
        "result_url": url_for("api.run_records", run_id=run.public_id, _external=True)
        if run.status == "completed"
        else None,
    }


def record_to_api(record: Record) -> dict:
    return {
        "id": record.public_id,
        "source": record.source,
        "url": record.url,
        "title": record.title,
        "text": record.text,
        "author": record.author,
        "published_at": isoformat(record.published_at),
        "metrics": record.metrics or {},
        "is_new": record.is_new,
    }


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        padded = text + "=" * (-len(text) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        value = 0
    # Cursors are row ids; a forged one past 64 bits would overflow the database driver.
    if not 0 < value < 2**63:
        raise ApiError(400, "The cursor is not valid; use next_cursor from a previous page.",
                       field="cursor")
    return value


def page_limit(default: int = 50, maximum: int = 200) -> int:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return default
    # ASCII digits only: int() refuses "²" and digit strings past 4300 characters.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= maximum:
        raise ApiError(422, f"limit must be a whole number from 1 to {maximum}.", field="limit")
    return int(raw)
