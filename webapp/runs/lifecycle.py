"""The run lifecycle: claim, complete, fail, skip, hand back, and the reaper.

Every state change is a conditional UPDATE on the status it expects (compare-and-set), so
whoever gets there second changes nothing: a late worker never overwrites a run that the
reaper has failed, and the reaper never fails a run that completed meanwhile. A job's state
is written from the row's own current values (`enabled` in SQL, never a cached object), so
a pause or a resume that lands during a run is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import String, any_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from ..extensions import db
from ..ids import new_public_id
from ..models import IN_PROGRESS, Job, Record, Run
from ..queueing import (
    LIVE_RQ_STATUSES,
    QueuedRun,
    delete_rq_jobs,
    enqueue_notifications,
    enqueue_runs,
    fresh_beats,
    get_redis,
    rq_holders,
    rq_statuses,
)
from ..schedules import Schedule
from ..timeutil import isoformat, now
from . import rollups
from .worker import MONITORING_INTERVAL

log = logging.getLogger("bytestack.runs")
# A run handed to the queue this many times without starting is failed with a reason.
MAX_ATTEMPTS = 5
# A queued run younger than this is not checked: its queue message may be on its way.
QUEUED_GRACE = timedelta(seconds=10)
# Fingerprints per "seen before" lookup: few round trips, under SQLite's 32,766 parameters.
SEEN_CHUNK = 5000


def _next_slot(job_pk: int, moment: datetime) -> datetime | None:
    row = db.session.execute(
        select(Job.schedule_type, Job.schedule_value, Job.timezone).where(Job.id == job_pk)
    ).first()
    if row is None:
        return None
    return Schedule(row.schedule_type, row.schedule_value, row.timezone).next_after(moment)


def rest_job(job_pk: int, failed: bool, error: str | None, synced_at: datetime | None = None):
    """Return a job to its resting state after its run: `active`, `failed`, or `paused` when
    it was paused meanwhile. No commit: it joins the run's own transaction."""
    enabled = Job.enabled.is_(True)
    values: dict = {
        "state": case((enabled, "failed" if failed else "active"), else_="paused"),
        "last_error": error,
    }
    if failed:
        # A failing job waits for a person instead of failing again every slot.
        values["next_run_at"] = None
    else:
        following = _next_slot(job_pk, now())
        values["next_run_at"] = case(
            (enabled, func.coalesce(Job.next_run_at, following)), else_=None
        )
    if synced_at is not None:
        values["last_sync_at"] = synced_at
    db.session.execute(update(Job).where(Job.id == job_pk).values(**values))


def claim_run(run_id: int) -> bool:
    """queued → running, and the job with it; False when someone else got there first."""
    started = now()
    claimed = db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "queued")
        .values(status="running", started_at=started, heartbeat_at=started)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return False
    job_pk = _job_of(run_id)
    if job_pk is not None:
        db.session.execute(update(Job).where(Job.id == job_pk).values(state="running"))
    db.session.commit()
    return True


def _job_of(run_id: int) -> int | None:
    return db.session.scalar(select(Run.job_id).where(Run.id == run_id))


def skip_run(run_id: int, reason: str) -> bool:
    """queued → skipped (a scheduled run of a job paused before it started)."""
    moment = now()
    skipped = db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "queued")
        .values(status="skipped", finished_at=moment, error=reason)
    ).rowcount
    if not skipped:
        db.session.rollback()
        return False
    job_pk = _job_of(run_id)
    if job_pk is not None:
        # The job may be `running` after a handed-back run; leave it resting (paused).
        db.session.execute(
            update(Job)
            .where(Job.id == job_pk, Job.state == "running")
            .values(state=case((Job.enabled.is_(True), "active"), else_="paused"))
        )
    db.session.commit()
    return True


def complete_run(run_id: int, records: list[dict], partial_errors: list[str]) -> bool:
    """Store the records with the run's completion in one transaction; False (and nothing
    stored) when the run is no longer running, e.g. the reaper failed it meanwhile."""
    run = db.session.execute(
        select(Run.id, Run.public_id, Run.job_id, Run.project_id, Run.started_at).where(
            Run.id == run_id
        )
    ).first()
    if run is None:  # deleted with its job while running
        db.session.rollback()
        return False
    seen = _seen_fingerprints(run.job_id, run.id, [r["fingerprint"] for r in records])
    flags = [r["fingerprint"] not in seen for r in records]
    finished = now()
    error = ("Some sources failed: " + " ".join(partial_errors)) if partial_errors else None
    completed = db.session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status == "running")
        .values(
            status="completed",
            finished_at=finished,
            record_count=len(records),
            new_count=sum(flags),
            error=error,
        )
    ).rowcount
    if not completed:
        db.session.rollback()
        log.warning("run %s was no longer running when it finished; its records are dropped",
                    run.public_id)
        return False
    if records:
        # One bulk INSERT (insertmanyvalues), not an ORM object per record.
        db.session.execute(
            insert(Record),
            [
                {
                    **data,
                    "public_id": new_public_id("rec"),
                    "run_id": run.id,
                    "job_id": run.job_id,
                    "project_id": run.project_id,
                    "position": position,
                    "is_new": is_new,
                }
                for position, (data, is_new) in enumerate(zip(records, flags, strict=True))
            ],
        )
    if run.job_id is not None:
        rollups.add_run(run.project_id, run.started_at or finished, records, flags)
        rest_job(run.job_id, failed=False, error=error, synced_at=finished)
    db.session.commit()
    announce(run.public_id, run.project_id)
    log.info("run completed run=%s records=%d new=%d", run.public_id, len(records), sum(flags))
    return True


def announce(run_public_id: str, project_id: int) -> None:
    """Hand a finished run to the notifications queue (webhooks, alerts, pushes), with a prune
    of its project (retention), which never touches the run's outcome. Best effort: with
    Redis away, the scheduler's sweep plans the run's deliveries within seconds, and its
    hourly pass prunes."""
    try:
        enqueue_notifications(get_redis(), [("notify", run_public_id), ("prune", project_id)])
    except Exception as exc:
        log.warning("run %s: notifications left to the sweep (%s)", run_public_id, exc)


def _seen_fingerprints(job_pk: int | None, run_id: int, fingerprints: list[str]) -> set[str]:
    if job_pk is None:
        return set()
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    seen: set[str] = set()
    for start in range(0, len(fingerprints), SEEN_CHUNK):
        chunk = fingerprints[start : start + SEEN_CHUNK]
        # PostgreSQL takes the chunk as one array parameter (= ANY), not 5,000 of them.
        matches = (
            Record.fingerprint == any_(bindparam("fingerprints", chunk, type_=ARRAY(String)))
            if postgresql
            else Record.fingerprint.in_(chunk)
        )
        seen.update(
            db.session.scalars(
                select(Record.fingerprint).where(
                    Record.job_id == job_pk, Record.run_id != run_id, matches
                )
            )
        )
    return seen


def fail_run(run_id: int, reason: str, from_statuses: tuple[str, ...] = IN_PROGRESS) -> bool:
    """Mark the run failed (if still in one of `from_statuses`) and its job with it, in one
    transaction, so nobody reads a failed run of a `running` job. Stores no records."""
    db.session.rollback()
    failed = db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(from_statuses))
        .values(status="failed", error=reason, finished_at=now())
    ).rowcount
    if not failed:
        db.session.rollback()
        return False
    job_pk = _job_of(run_id)
    if job_pk is not None:
        rest_job(job_pk, failed=True, error=reason)
    public_id, project_id = db.session.execute(
        select(Run.public_id, Run.project_id).where(Run.id == run_id)
    ).one()
    db.session.commit()
    announce(public_id, project_id)
    log.warning("run failed run_id=%s: %s", run_id, reason)
    return True


def hand_back_run(run_id: int) -> bool:
    """running → queued, for a worker that must stop before its run could finish. The job
    stays `running` (its run is still in progress); the reaper queues the run again."""
    handed = db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "running")
        # Past the reaper's grace at once: it requeues the run on its next pass, as soon as
        # the queue says this worker's message has ended.
        .values(status="queued", started_at=None, heartbeat_at=now() - QUEUED_GRACE)
    ).rowcount
    db.session.commit()
    if handed:
        log.info("run handed back to the queue run_id=%s", run_id)
    return bool(handed)


@dataclass
class ReapResult:
    failed: list[str]
    requeued: list[str]


def reap(connection: Redis, stale_seconds: float, timeout_seconds: float,
         queue_timeout: int) -> ReapResult:
    """Fail runs whose worker died or that ran past their timeout; queue again the queued
    runs whose queue message was lost (a Redis flush) or ended before the run started (a
    database blip in the worker, an out-of-memory kill, a worker handing its run back)."""
    result = ReapResult([], [])
    moment = now()
    stale = timedelta(seconds=stale_seconds)
    timeout = timedelta(seconds=timeout_seconds)
    silent = []
    for run in db.session.execute(
        select(Run.id, Run.public_id, Run.started_at, Run.heartbeat_at, Run.scheduled_for,
               Job.public_id.label("job"))
        .outerjoin(Job, Job.id == Run.job_id)
        .where(Run.status == "running")
    ).all():
        if run.started_at is not None and moment - run.started_at > timeout + stale:
            _reap(run, f"The run exceeded its timeout of {int(timeout.total_seconds())} s "
                       f"and was stopped.", result)
        elif run.heartbeat_at is None or moment - run.heartbeat_at > stale:
            silent.append(run)
    db.session.rollback()
    if silent:
        # The run's own heartbeat goes through the database; when the database itself was
        # out, it is stale without the worker being dead. The queue has the other half: a
        # message still `started` by a worker that beats in Redis is a run that is alive.
        alive = _held_by_live_workers(connection, silent, stale_seconds)
        for run in silent:
            if run.id in alive:
                continue
            since = isoformat(run.heartbeat_at or run.started_at)
            _reap(run, f"The worker running this run stopped responding (last heartbeat "
                       f"{since}); it was probably killed or its machine was lost.", result)
    _requeue_lost(connection, moment, queue_timeout, result)
    return result


def _reap(run, reason: str, result: ReapResult) -> None:
    if fail_run(run.id, reason, ("running",)):
        result.failed.append(run.public_id)
        log.warning("reaped run=%s: %s", run.public_id, reason)


def _message_of(run) -> QueuedRun:
    if run.job:
        return QueuedRun.of_job(run.job, run.scheduled_for, isoformat(run.scheduled_for))
    return QueuedRun.of_query(run.public_id)


def _held_by_live_workers(connection: Redis, runs: list, stale_seconds: float) -> set[int]:
    holders = rq_holders(connection, [_message_of(run).rq_id for run in runs])
    workers = fresh_beats(connection, "worker", stale_seconds + MONITORING_INTERVAL + 1)
    return {
        run.id for run in runs if holders.get(_message_of(run).rq_id) in workers
    }


def _requeue_lost(connection: Redis, moment: datetime, queue_timeout: int,
                  result: ReapResult) -> None:
    touched = func.coalesce(Run.heartbeat_at, Run.created_at)
    rows = db.session.execute(
        select(Run.id, Run.public_id, Run.scheduled_for, Run.attempts, Job.public_id.label("job"))
        .outerjoin(Job, Job.id == Run.job_id)
        .where(Run.status == "queued", touched < moment - QUEUED_GRACE)
        .order_by(Run.id)
        .limit(1000)
    ).all()
    db.session.rollback()
    if not rows:
        return
    messages = {row.id: _message_of(row) for row in rows}
    statuses = rq_statuses(connection, [m.rq_id for m in messages.values()])
    again: list[QueuedRun] = []
    for row in rows:
        message = messages[row.id]
        status = statuses[message.rq_id]
        if status in LIVE_RQ_STATUSES:
            continue
        if row.attempts >= MAX_ATTEMPTS:
            fail_run(
                row.id,
                f"The run could not start: it was handed to the queue {row.attempts} times "
                f"and its queue message was lost or ended each time (see the worker log).",
                ("queued",),
            )
            result.failed.append(row.public_id)
            continue
        bumped = db.session.execute(
            update(Run)
            .where(Run.id == row.id, Run.status == "queued", Run.attempts == row.attempts)
            .values(attempts=row.attempts + 1, heartbeat_at=moment)
        ).rowcount
        db.session.commit()
        if bumped:
            again.append(message)
            result.requeued.append(row.public_id)
            log.info("requeued run=%s (queue message %s)", row.public_id, status or "missing")
    if again:
        delete_rq_jobs(connection, [m.rq_id for m in again])
        enqueue_runs(connection, again, queue_timeout)

