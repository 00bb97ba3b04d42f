"""The scheduler's side: one due-time entry per schedulable job, fired into one run per slot.

The database is the source of truth; the entries in Redis (rq-scheduler's sorted set) are a
cache of each job's `next_run_at`. A tick fires every entry due, in batches: one
transaction records the batch's runs (bulk INSERT) and moves each job to its following slot
(compare-and-set on `next_run_at`, so a second scheduler changes nothing), then one
pipeline queues the runs and replaces the fired entries. An entry leaves Redis only after
its run is committed, so an error anywhere leaves it due for the next tick.

Its cost follows the slots due, not the number of jobs: entries are read by score and
removed by id, and reconcile looks at the jobs changed since its last pass (a full pass,
one query and one scan, runs rarely or when the entry count says Redis lost some).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask
from redis import Redis
from rq_scheduler import Scheduler
from sqlalchemy import func, select, update

from .extensions import db, upsert_insert
from .ids import new_public_id
from .models import IN_PROGRESS, Job, Run, schedulable
from .notifications.outbox import sweep
from .queueing import (
    RUNS_QUEUE,
    SCHEDULED_JOBS_KEY,
    Entry,
    QueuedRun,
    all_entries,
    beat,
    due_entries,
    enqueue_notifications,
    enqueue_runs,
    entry_count,
    epoch,
    forget_beat,
    move_entries,
    next_due_time,
)
from .runs.lifecycle import reap
from .schedules import Schedule
from .storage.retention import projects_with_a_policy
from .timeutil import Backoff, isoformat, now

log = logging.getLogger("bytestack.scheduler")
# Every project with a retention policy is pruned this often (besides after each of its runs),
# so runs age out of a project whose jobs stopped running; the first pass prunes at start.
PRUNE_EVERY_SECONDS = 3600
FIRE_BATCH = 500
QUERY_CHUNK = 500
# An entry whose firing raised (a bug, a broken row) waits this long before its next try,
# so one bad job never turns the loop into a crash loop or a log flood.
ENTRY_RETRY_SECONDS = 60.0
# A failed tick is tried again after 0.5 s, doubling up to this: a slot fires within about 5 s
# of the database or Redis coming back, and each try costs one connection attempt.
MAX_BACKOFF_SECONDS = 5.0


def queue_timeout(config) -> int:
    """The RQ timeout of a run: its own budget plus room to fail cleanly by itself first."""
    return int(config["RUN_TIMEOUT_SECONDS"]) + 60


# --- entries of one job (the web process keeps them current; reconcile repairs misses) -------


def sync_job_entry(connection: Redis, job: Job, previous_slot: datetime | None = None) -> None:
    """Make Redis hold the entry of the job's `next_run_at` and not the one of `previous_slot`."""
    wanted = (
        Entry.of(job.public_id, job.next_run_at)
        if job.is_schedulable and job.next_run_at is not None
        else None
    )
    stale = []
    if previous_slot is not None:
        old = Entry.of(job.public_id, previous_slot)
        if old != wanted:
            stale.append(old)
    move_entries(connection, add=[wanted] if wanted else [], remove=stale)


def drop_job_entry(connection: Redis, job_public_id: str, slot: datetime | None) -> None:
    if slot is not None:
        move_entries(connection, remove=[Entry.of(job_public_id, slot)])


# --- firing ----------------------------------------------------------------------------------


@dataclass
class Firing:
    """What one batch did in the database, and what Redis must do about it."""

    queued: list[QueuedRun] = field(default_factory=list)
    add: list[Entry] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)  # the Run rows written
    following: dict[str, datetime] = field(default_factory=dict)  # job -> its next slot
    failed_entries: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return sum(1 for run in self.runs if run["status"] == "skipped")


def _skip_reason(busy: tuple[str, str]) -> str:
    public_id, status = busy
    return (
        f"Skipped: the previous run {public_id} was still {status} when this slot fell due."
    )


def fire_entries(entries: list[Entry], moment: datetime) -> Firing:
    """Record the run (or the skip) of each due entry and move its job to its following slot.

    After downtime every missed slot collapses into one catch-up run for the latest one.
    """
    firing = Firing()
    by_job: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_job[entry.job].append(entry)
    jobs = {}
    public_ids = list(by_job)
    for start in range(0, len(public_ids), QUERY_CHUNK):
        for row in db.session.execute(
            select(
                Job.id, Job.public_id, Job.project_id, Job.schedule_type, Job.schedule_value,
                Job.timezone, Job.next_run_at, Job.enabled, Job.state,
            ).where(Job.public_id.in_(public_ids[start : start + QUERY_CHUNK]))
        ):
            jobs[row.public_id] = row
    busy: dict[int, tuple[str, str]] = {}
    ids = [row.id for row in jobs.values()]
    for start in range(0, len(ids), QUERY_CHUNK):
        for row in db.session.execute(
            select(Run.job_id, Run.public_id, Run.status).where(
                Run.job_id.in_(ids[start : start + QUERY_CHUNK]), Run.status.in_(IN_PROGRESS)
            )
        ):
            busy[row.job_id] = (row.public_id, row.status)
    db.session.rollback()  # end the read: on SQLite the write below must start afresh

    plans: dict[int, tuple] = {}  # job id -> (row, run slot, following)
    slots: dict[tuple, tuple[datetime, datetime]] = {}
    for public_id, job_entries in by_job.items():
        row = jobs.get(public_id)
        if row is None or not schedulable(row.enabled, row.state) or row.next_run_at is None:
            firing.remove.extend(e.id for e in job_entries)  # deleted, paused or failed
            continue
        current = epoch(row.next_run_at)
        for entry in job_entries:
            if entry.slot != current:
                firing.remove.append(entry.id)  # stale: the job was edited since
        if all(entry.slot != current for entry in job_entries):
            # Make sure the entry of its real slot exists (a web save may have raced).
            firing.add.append(Entry(public_id, current))
            continue
        key = (row.schedule_type, row.schedule_value, row.timezone, row.next_run_at)
        try:
            if key not in slots:  # jobs due together mostly share a schedule: compute it once
                schedule = Schedule(row.schedule_type, row.schedule_value, row.timezone)
                slots[key] = schedule.latest_due(row.next_run_at, moment), schedule.next_after(
                    moment
                )
            run_slot, following = slots[key]
        except Exception:
            log.exception("cannot compute the slots of job=%s; retrying later", public_id)
            firing.failed_entries.append(Entry(public_id, current).id)
            continue
        plans[row.id] = (row, run_slot, following)
    if not plans:
        return firing

    # Compare-and-set: only the scheduler that moves `next_run_at` off the slot owns it.
    owned: set[int] = set()
    groups: dict[tuple[datetime, datetime], list[int]] = defaultdict(list)
    for job_id, (row, _, following) in plans.items():
        groups[(row.next_run_at, following)].append(job_id)
    for (slot, following), job_ids in groups.items():
        owned.update(
            db.session.scalars(
                update(Job)
                .where(Job.id.in_(job_ids), Job.next_run_at == slot, Job.schedulable_clause())
                .values(next_run_at=following)
                .returning(Job.id)
            )
        )
    written = now()
    rows = []
    for job_id in owned:
        row, run_slot, _ = plans[job_id]
        values = {
            "public_id": new_public_id("run"),
            "project_id": row.project_id,
            "job_id": job_id,
            "trigger": "schedule",
            "scheduled_for": run_slot,
            "created_at": written,
            "attempts": 1,
            "status": "queued",
            "finished_at": None,
            "error": None,
        }
        if job_id in busy:
            values.update(status="skipped", finished_at=moment, error=_skip_reason(busy[job_id]))
        rows.append(values)
    inserted = _insert_runs(rows)
    missing = [r for r in rows if r["job_id"] not in inserted and r["status"] == "queued"]
    if missing:
        # A run started (Run now) between the read and the insert: this slot is a skip.
        inserted.update(_record_late_skips(missing, moment))
    db.session.commit()

    for job_id in owned:
        row, run_slot, following = plans[job_id]
        firing.remove.append(Entry(row.public_id, epoch(row.next_run_at)).id)
        firing.add.append(Entry(row.public_id, epoch(following)))
        firing.following[row.public_id] = following
        run = inserted.get(job_id)
        if run is None:
            continue  # another scheduler had already recorded this slot
        firing.runs.append({**run, "job": row.public_id})
        if run["status"] == "queued":
            firing.queued.append(QueuedRun.of_job(row.public_id, run_slot, isoformat(run_slot)))
    for plan_id in plans.keys() - owned:
        row = plans[plan_id][0]
        firing.remove.append(Entry(row.public_id, epoch(row.next_run_at)).id)
    return firing


def _insert_runs(rows: list[dict]) -> dict[int, dict]:
    if not rows:
        return {}
    statement = (
        upsert_insert(Run)
        .on_conflict_do_nothing()
        .returning(Run.job_id, Run.public_id, Run.status, Run.scheduled_for)
    )
    result = db.session.execute(statement, rows)
    return {row.job_id: row._asdict() for row in result}


def _record_late_skips(missing: list[dict], moment: datetime) -> dict[int, dict]:
    recorded = {}
    for values in missing:
        duplicate = db.session.scalar(
            select(Run.id).where(
                Run.job_id == values["job_id"], Run.scheduled_for == values["scheduled_for"]
            )
        )
        if duplicate is not None:
            continue
        running = db.session.execute(
            select(Run.public_id, Run.status).where(
                Run.job_id == values["job_id"], Run.status.in_(IN_PROGRESS)
            )
        ).first()
        skipped = {
            **values,
            "status": "skipped",
            "finished_at": moment,
            "error": _skip_reason(tuple(running) if running else ("?", "running")),
        }
        recorded.update(_insert_runs([skipped]))
    return recorded


@dataclass
class FireResult:
    run: Run | None
    following: datetime | None


def fire_slot(job_public_id: str, slot: datetime, moment: datetime) -> FireResult:
    """Fire one entry (the batch path with a batch of one): the run it recorded, if any."""
    firing = fire_entries([Entry.of(job_public_id, slot)], moment)
    if not firing.runs:
        return FireResult(None, None)
    run = db.session.scalar(select(Run).where(Run.public_id == firing.runs[0]["public_id"]))
    return FireResult(run, firing.following.get(job_public_id))


# --- reconcile -------------------------------------------------------------------------------


def _schedulable_jobs(since: datetime | None = None):
    query = select(Job.id, Job.public_id, Job.next_run_at, Job.schedule_type,
                   Job.schedule_value, Job.timezone).where(Job.schedulable_clause())
    if since is not None:
        query = query.where(Job.updated_at >= since)
    return db.session.execute(query).all()


def _fill_missing_next_runs(rows) -> dict[int, datetime]:
    """A schedulable job with no next slot (an old row, a crash) gets one from now."""
    filled = {}
    moment = now()
    for row in rows:
        if row.next_run_at is None:
            following = Schedule(row.schedule_type, row.schedule_value, row.timezone).next_after(
                moment
            )
            db.session.execute(
                update(Job)
                .where(Job.id == row.id, Job.next_run_at.is_(None))
                .values(next_run_at=following)
            )
            filled[row.id] = following
    if filled:
        db.session.commit()
    return filled


def reconcile(connection: Redis, since: datetime | None = None) -> int:
    """Make the entries match the database; returns how many were repaired.

    With `since`, only jobs changed since then are checked (and only missing entries added);
    without it, every job and every entry is compared once (after a flush, at start-up).
    """
    rows = _schedulable_jobs(since)
    filled = _fill_missing_next_runs(rows)
    db.session.rollback()
    wanted = {}
    for row in rows:
        slot = filled.get(row.id, row.next_run_at)
        entry = Entry.of(row.public_id, slot)
        wanted[entry.id] = entry
    if since is not None:
        ids = list(wanted)
        with connection.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.zscore(SCHEDULED_JOBS_KEY, entry_id)
            scores = pipe.execute()
        add = [wanted[i] for i, score in zip(ids, scores, strict=True) if score is None]
        remove: list[str] = []
    else:
        present = all_entries(connection)
        add = [e for i, e in wanted.items() if present.get(i) != e.slot]
        remove = [i for i in present if i not in wanted]
    if add or remove:
        move_entries(connection, add=add, remove=remove)
        log.info("reconcile repaired %d schedule entries (%s pass)", len(add) + len(remove),
                 "incremental" if since is not None else "full")
    return len(add) + len(remove)


def schedulable_count() -> int:
    count = db.session.scalar(select(func.count(Job.id)).where(Job.schedulable_clause()))
    db.session.rollback()
    return count or 0


# --- the scheduler process -------------------------------------------------------------------


class JobScheduler(Scheduler):
    """rq-scheduler whose entries are job slots, each computed in the job's own timezone.

    The loop never dies of a blip: a Redis or database error is logged and retried with
    backoff; the entries it could not fire stay due. It wakes at the next due entry (or
    every `interval`), so a slot fires within milliseconds of its time.
    """

    def __init__(self, app: Flask, **kwargs):
        kwargs.setdefault("queue_name", RUNS_QUEUE)
        kwargs.setdefault("interval", app.config["SCHEDULER_INTERVAL"])
        kwargs.setdefault("name", f"{socket.gethostname()}.{os.getpid()}")
        super().__init__(**kwargs)
        self.app = app
        self._stopping = False
        self._born = False
        self._last_pass = 0.0
        self._last_full = 0.0
        self._changed_since: datetime | None = None
        self._wanted_entries = 0  # how many entries the last full pass left in Redis
        self._last_prune: float | None = None
        self._retry_after: dict[str, float] = {}
        self.fired = 0

    # rq-scheduler's handlers raise SystemExit from inside a Redis call; stop between ticks.
    def _install_signal_handlers(self):
        def stop(signum, _frame):
            log.info("scheduler stopping (signal %s)", signum)
            self._stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def run(self, burst: bool = False) -> None:
        self._install_signal_handlers()
        backoff = Backoff(0.5, MAX_BACKOFF_SECONDS)
        log.info("scheduler %s started, polling every %.2f s", self.name, self._interval)
        try:
            while not self._stopping:
                try:
                    self.tick()
                    backoff.reset()
                except Exception as exc:
                    wait = backoff.next()
                    log.error("scheduler tick failed (%s: %s); retrying in %.1f s",
                              type(exc).__name__, exc, wait)
                    self._sleep(wait)
                    continue
                if burst:
                    break
                self._sleep(self._until_next_due())
        finally:
            self._say_goodbye()

    def tick(self) -> None:
        if not self._born:
            self.register_birth()
            self._born = True
        self.heartbeat()
        beat(self.connection, "scheduler", self.name)
        if not self.acquire_lock():
            return
        try:
            if self._wanted_entries and entry_count(self.connection) < self._wanted_entries:
                # Redis lost entries (a flush, a restart without persistence): rebuild before
                # firing, this tick, rather than at the next reconcile pass.
                with self.app.app_context():
                    try:
                        self._full_reconcile()
                    finally:
                        db.session.remove()
            self.enqueue_jobs()
            self.maintain()
        finally:
            self.remove_lock()

    def enqueue_jobs(self) -> int:
        """Fire every due entry, FIRE_BATCH at a time; returns the runs recorded."""
        moment = now()
        monotonic = time.monotonic()
        due = due_entries(self.connection, moment.timestamp(), FIRE_BATCH * 4)
        entries, junk = [], []
        for entry_id in due:
            if self._retry_after.get(entry_id, 0.0) > monotonic:
                continue
            entry = Entry.parse(entry_id)
            (entries if entry else junk).append(entry or entry_id)
        if junk:
            move_entries(self.connection, remove=junk)
        recorded = 0
        config = self.app.config
        for start in range(0, len(entries), FIRE_BATCH):
            with self.app.app_context():
                try:
                    firing = fire_entries(entries[start : start + FIRE_BATCH], moment)
                finally:
                    db.session.remove()
            if firing.queued:
                enqueue_runs(self.connection, firing.queued, queue_timeout(config))
            move_entries(self.connection, add=firing.add, remove=firing.remove)
            for entry_id in firing.failed_entries:
                self._retry_after[entry_id] = monotonic + ENTRY_RETRY_SECONDS
            recorded += len(firing.runs)
            if firing.runs:
                log.info("fired %d slots (%d queued, %d skipped)", len(firing.runs),
                         len(firing.queued), firing.skipped)
        self.fired += recorded
        if len(self._retry_after) > 10_000:
            self._retry_after = {k: v for k, v in self._retry_after.items() if v > monotonic}
        return recorded

    def maintain(self) -> None:
        """Reconcile, reap and sweep every RECONCILE_SECONDS, and queue the hourly prunes;
        each step fails alone."""
        config = self.app.config
        if time.monotonic() - self._last_pass < config["RECONCILE_SECONDS"]:
            return
        self._last_pass = time.monotonic()
        with self.app.app_context():
            try:
                self._reconcile(config)
            except Exception:
                log.exception("reconcile pass failed; retrying on the next pass")
                db.session.rollback()
            try:
                reap(self.connection, config["STALE_RUN_SECONDS"], config["RUN_TIMEOUT_SECONDS"],
                     queue_timeout(config))
            except Exception:
                log.exception("reaper pass failed; retrying on the next pass")
                db.session.rollback()
            try:
                self._queue_prunes()
            except Exception:
                log.exception("queueing the hourly prunes failed; retrying on the next pass")
                db.session.rollback()
            try:
                sweep(self.connection)
            except Exception:
                log.exception("notifications sweep failed; retrying on the next pass")
                db.session.rollback()
            finally:
                db.session.remove()

    def _queue_prunes(self) -> None:
        """Queue a prune of each project with a policy, every PRUNE_EVERY_SECONDS. Queued, not
        run here: a first prune of a large history takes a while, and the loop must not wait."""
        monotonic = time.monotonic()
        if self._last_prune is not None and monotonic - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        projects = projects_with_a_policy()
        db.session.rollback()
        enqueue_notifications(self.connection, [("prune", project_id) for project_id in projects])
        self._last_prune = monotonic

    def _reconcile(self, config) -> None:
        full_due = time.monotonic() - self._last_full >= config["RECONCILE_FULL_SECONDS"]
        if not full_due and entry_count(self.connection) < schedulable_count():
            full_due = True  # entries lost since the last pass
        if full_due or self._changed_since is None:
            self._full_reconcile()
        else:
            started = now()
            reconcile(self.connection, since=self._changed_since)
            # Overlap the windows: a save committed during this pass is seen by the next one.
            self._changed_since = started - timedelta(seconds=2)

    def _full_reconcile(self) -> None:
        started = now()
        reconcile(self.connection)
        self._wanted_entries = schedulable_count()
        self._last_full = time.monotonic()
        self._changed_since = started - timedelta(seconds=2)

    def _until_next_due(self) -> float:
        try:
            first = next_due_time(self.connection)
        except Exception:
            return self._interval
        if first is None:
            return self._interval
        return max(0.0, min(self._interval, first - time.time()))

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def _say_goodbye(self) -> None:
        try:
            self.remove_lock()
            self.register_death()
            forget_beat(self.connection, "scheduler", self.name)
        except Exception as exc:
            log.warning("could not register the scheduler's stop: %s", exc)
        log.info("scheduler %s stopped after firing %d slots", self.name, self.fired)

