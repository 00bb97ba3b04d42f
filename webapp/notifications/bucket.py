"""The "bucket" kind: each completed run's (or query's) result file, pushed to its project's
own bucket under its storage key.

One delivery per run, planned while a bucket is connected. A failed push is retried with
backoff by the outbox; it never touches the run, which completed before it was planned.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import Job, Run
from ..settings.models import Bucket
from ..storage import bucket as buckets
from .models import Delivery
from .outbox import Kind, Outcome, Planned, register

EVENT = "push"
TARGET = "bucket"
# With the default 30 s, eight attempts span about an hour (30 s … 32 min between them).
MAX_ATTEMPTS = 8


def plan(run: Run, job: Job | None) -> list[Planned]:
    if run.status != "completed":
        return []
    bucket = db.session.scalar(select(Bucket).where(Bucket.project_id == run.project_id))
    if bucket is None:
        return []
    return [Planned(TARGET, EVENT, {"key": buckets.object_key(bucket, run)})]


def send(delivery: Delivery) -> Outcome:
    run = db.session.get(Run, delivery.run_id) if delivery.run_id is not None else None
    if run is None or run.status != "completed":
        return Outcome(
            False, error="The run was deleted before its results were pushed.", retry=False
        )
    try:
        buckets.push_run(run)
    except buckets.PushError as exc:
        return Outcome(False, status_code=exc.status, error=exc.message, retry=exc.retry)
    return Outcome(True, status_code=200)


def backoff(attempt: int) -> float:
    return current_app.config["BUCKET_BACKOFF_SECONDS"] * 2 ** (attempt - 1)


register(Kind(name="bucket", plan=plan, send=send, backoff=backoff, max_attempts=MAX_ATTEMPTS))
