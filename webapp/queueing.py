"""Redis, the runs queue and the scheduler's due-time entries.

Redis holds only these; everything in it can be rebuilt from the database by reconcile.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from redis import Redis
from rq import Queue

log = logging.getLogger(__name__)

RUNS_QUEUE = "runs"
NOTIFICATIONS_QUEUE = "notifications"
SCHEDULER_QUEUE = RUNS_QUEUE
SCHEDULED_JOBS_KEY = "rq:scheduler:scheduled_jobs"  # rq-scheduler's sorted set
RUN_TASK = "webapp.runs.executor.run_job"
SLOT_MARKER_TASK = "webapp.runs.executor.slot_marker"


def get_redis() -> Redis:
    redis = current_app.extensions.get("bytestack_redis")
    if redis is None:
        url = current_app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set: start the app with `make run` or set it.")
        redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        current_app.extensions["bytestack_redis"] = redis
    return redis


def runs_queue(connection: Redis | None = None) -> Queue:
    return Queue(RUNS_QUEUE, connection=connection or get_redis())


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def slot_entry_id(job_public_id: str, slot: datetime) -> str:
    return f"slot-{job_public_id}-{epoch(slot)}"


def run_rq_id(job_public_id: str, scheduled_for: datetime) -> str:
    # Deterministic per slot, so enqueueing the same slot twice is one RQ job.
    return f"run-{job_public_id}-{int(scheduled_for.timestamp() * 1_000_000)}"


def enqueue_run(
    job_public_id: str, scheduled_for: datetime, timeout: int, connection: Redis | None = None
) -> None:
    from .timeutil import isoformat

    queue = runs_queue(connection)
    queue.enqueue(
        RUN_TASK,
        job_public_id,
        isoformat(scheduled_for),
        job_id=run_rq_id(job_public_id, scheduled_for),
        job_timeout=timeout,
        result_ttl=3600,
        failure_ttl=86400,
    )


def sync_schedule_entry(job) -> None:
    """Best effort from the web process: the scheduler's reconcile pass repairs any miss."""
    try:
        from .scheduling import set_schedule_entry

        set_schedule_entry(get_redis(), job)
    except Exception as exc:  # Redis down must not stop a person saving a job
        log.warning("could not update the schedule entry of %s: %s", job.public_id, exc)


QUERY_TASK = "webapp.runs.executor.run_query"


def enqueue_query(run_public_id: str, timeout: int, connection: Redis | None = None) -> None:
    runs_queue(connection).enqueue(
        QUERY_TASK,
        run_public_id,
        job_id=f"query-{run_public_id}",
        job_timeout=timeout,
        result_ttl=3600,
        failure_ttl=86400,
    )
