"""The scheduler's side: one due-time entry per active job, fired into one run per slot.

The database is the source of truth; the entries in Redis (rq-scheduler's sorted set) are a
cache of each job's `next_run_at`, rebuilt by `reconcile` after a flush or a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq_scheduler import Scheduler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import Job, Run
from .queueing import (
    SCHEDULED_JOBS_KEY,
    SCHEDULER_QUEUE,
    SLOT_MARKER_TASK,
    enqueue_run,
    epoch,
    run_rq_id,
    slot_entry_id,
)
from .timeutil import isoformat, now, parse_timestamp

log = logging.getLogger("bytestack.scheduler")
QUEUED_GRACE = timedelta(seconds=10)


def _scheduler(connection: Redis) -> Scheduler:
    return Scheduler(queue_name=SCHEDULER_QUEUE, connection=connection)


def set_schedule_entry(connection: Redis, job: Job) -> None:
    """Make Redis hold exactly the entry for the job's `next_run_at` (or none)."""
    wanted = None
    if job.enabled and job.state in ("active", "running") and job.next_run_at is not None:
        wanted = slot_entry_id(job.public_id, job.next_run_at)
    remove_schedule_entries(connection, job.public_id, keep=wanted)
    if wanted and connection.zscore(SCHEDULED_JOBS_KEY, wanted) is None:
        _scheduler(connection).enqueue_at(
            job.next_run_at.replace(tzinfo=None),  # rq-scheduler reads naive times as UTC
            SLOT_MARKER_TASK,
            job.public_id,
            isoformat(job.next_run_at),
            job_id=wanted,
            meta={"bytestack_job": job.public_id, "slot": isoformat(job.next_run_at)},
        )


def remove_schedule_entries(connection: Redis, job_public_id: str, keep: str | None = None) -> None:
    prefix = f"slot-{job_public_id}-"
    for raw in connection.zrange(SCHEDULED_JOBS_KEY, 0, -1):
        entry = raw.decode()
        if entry.startswith(prefix) and entry != keep:
            _drop_entry(connection, entry)


def _drop_entry(connection: Redis, entry: str) -> None:
    connection.zrem(SCHEDULED_JOBS_KEY, entry)
    try:
        RQJob.fetch(entry, connection=connection).delete()
    except NoSuchJobError:
        pass


@dataclass
class FireResult:
    run: Run | None
    following: datetime | None


def fire_slot(job_public_id: str, slot: datetime, moment: datetime) -> FireResult:
    """Record the run (or the skip) of a due slot and move the job to its following slot."""
    job = db.session.scalar(select(Job).where(Job.public_id == job_public_id))
    if job is None or not job.enabled or job.state not in ("active", "running"):
        return FireResult(None, None)
    if job.next_run_at is None or epoch(job.next_run_at) != epoch(slot):
        return FireResult(None, None)  # a stale entry: the job was edited since
    schedule = job.schedule
    # After downtime every missed slot collapses into one catch-up run for the latest one.
    run_slot = schedule.latest_due(job.next_run_at, moment)
    following = schedule.next_after(moment)
    running = db.session.scalar(
        select(Run)
        .where(Run.job_id == job.id, Run.status.in_(("queued", "running")))
        .order_by(Run.id.desc())
        .limit(1)
    )
    if running is not None:
        run = Run(
            project_id=job.project_id,
            job_id=job.id,
            trigger="schedule",
            scheduled_for=run_slot,
            status="skipped",
            finished_at=moment,
            error=(
                f"Skipped: the previous run {running.public_id} was still "
                f"{running.status} when this slot fell due."
            ),
        )
    else:
        run = Run(
            project_id=job.project_id,
            job_id=job.id,
            trigger="schedule",
            scheduled_for=run_slot,
            status="queued",
        )
    db.session.add(run)
    job.next_run_at = following
    try:
        db.session.commit()
    except IntegrityError:
        # Another scheduler already recorded this slot: it owns the firing.
        db.session.rollback()
        return FireResult(None, None)
    return FireResult(run, following)


class JobScheduler(Scheduler):
    """rq-scheduler whose entries are job slots in each job's own timezone.

    `enqueue_job` is where "this slot fired" and "schedule the following slot" happen
    together, so a backlog of workers never loses future slots.
    """

    def __init__(self, app: Flask, **kwargs):
        kwargs.setdefault("queue_name", SCHEDULER_QUEUE)
        kwargs.setdefault("interval", app.config["SCHEDULER_INTERVAL"])
        super().__init__(**kwargs)
        self.app = app
        self._last_reconcile = 0.0

    def enqueue_job(self, job: RQJob) -> None:
        job_public_id = job.meta.get("bytestack_job")
        slot_text = job.meta.get("slot")
        _drop_entry(self.connection, job.id)
        if not job_public_id or not slot_text:
            return
        with self.app.app_context():
            try:
                result = fire_slot(job_public_id, parse_timestamp(slot_text), now())
                if result.run is not None and result.run.status == "queued":
                    enqueue_run(
                        job_public_id,
                        result.run.scheduled_for,
                        self.app.config["RUN_TIMEOUT_SECONDS"],
                        connection=self.connection,
                    )
                    log.info("slot fired job=%s run=%s", job_public_id, result.run.public_id)
                elif result.run is not None:
                    log.info("slot skipped job=%s run=%s", job_public_id, result.run.public_id)
                if result.following is not None:
                    fresh = db.session.scalar(select(Job).where(Job.public_id == job_public_id))
                    if fresh is not None:
                        set_schedule_entry(self.connection, fresh)
            finally:
                db.session.remove()

    def enqueue_jobs(self):
        jobs = super().enqueue_jobs()
        interval = self.app.config["RECONCILE_SECONDS"]
        if time.monotonic() - self._last_reconcile >= interval:
            self._last_reconcile = time.monotonic()
            with self.app.app_context():
                try:
                    reconcile(self.connection)
                    reap_lost_runs(self.connection)
                except Exception:
                    log.exception("reconcile pass failed; retrying on the next pass")
                finally:
                    db.session.remove()
        return jobs


def reconcile(connection: Redis) -> int:
    """Rebuild every due entry from the database; drop entries no job wants. Returns changes."""
    changes = 0
    wanted: dict[str, Job] = {}
    jobs = db.session.scalars(
        select(Job).where(Job.enabled.is_(True), Job.state.in_(("active", "running")))
    ).all()
    for job in jobs:
        if job.next_run_at is None:
            job.next_run_at = job.schedule.next_after(now())
            db.session.commit()
        wanted[slot_entry_id(job.public_id, job.next_run_at)] = job
    present = {raw.decode() for raw in connection.zrange(SCHEDULED_JOBS_KEY, 0, -1)}
    for entry in present:
        if entry.startswith("slot-") and entry not in wanted:
            _drop_entry(connection, entry)
            changes += 1
    for entry, job in wanted.items():
        if entry not in present or not connection.exists(f"rq:job:{entry}"):
            set_schedule_entry(connection, job)
            changes += 1
    if changes:
        log.info("reconcile repaired %d schedule entries", changes)
    return changes


def reap_lost_runs(connection: Redis) -> list[str]:
    """Fail runs whose worker died or that ran past their timeout; requeue lost queued runs."""
    from flask import current_app

    from .runs.executor import fail_run_in_transaction

    moment = now()
    stale = timedelta(seconds=current_app.config["STALE_RUN_SECONDS"])
    timeout = timedelta(seconds=current_app.config["RUN_TIMEOUT_SECONDS"])
    reaped: list[str] = []
    for run in db.session.scalars(select(Run).where(Run.status == "running")).all():
        if run.started_at is not None and moment - run.started_at > timeout + stale:
            reason = (
                f"The run exceeded its timeout of {int(timeout.total_seconds())} s "
                f"and was stopped."
            )
        elif run.heartbeat_at is None or moment - run.heartbeat_at > stale:
            since = isoformat(run.heartbeat_at or run.started_at)
            reason = (
                f"The worker running this run stopped responding (last heartbeat {since}); "
                f"it was probably killed or its machine was lost."
            )
        else:
            continue
        claimed = fail_run_in_transaction(run.id, reason, ("running",))
        db.session.commit()
        if claimed:
            reaped.append(run.public_id)
            log.warning("reaped run=%s: %s", run.public_id, reason)
    for run in db.session.scalars(select(Run).where(Run.status == "queued")).all():
        if run.job is None or moment - run.created_at < QUEUED_GRACE:
            continue
        if not connection.exists(f"rq:job:{run_rq_id(run.job.public_id, run.scheduled_for)}"):
            enqueue_run(
                run.job.public_id,
                run.scheduled_for,
                current_app.config["RUN_TIMEOUT_SECONDS"],
                connection=connection,
            )
            log.info("requeued lost run=%s", run.public_id)
    return reaped
