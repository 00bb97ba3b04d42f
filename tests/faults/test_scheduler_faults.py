"""Faults around the scheduler, with real processes and real signals: two schedulers for
minutes, a scheduler stopped across slots, Redis flushed, Redis frozen, the database locked
or unreachable.

Each test states, in its docstring, the outcome DESIGN.md promises, and asserts it on the
database (the source of truth), on Redis and on the processes themselves.

Fixtures live in this file, not in a tests/faults/conftest.py: a second `conftest` module
would shadow tests/conftest.py in `sys.modules`, and every `from conftest import make_job`
collected after it would break.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta

import pytest
from conftest import make_job
from feeds import rss_document, wait_until
from helpers import due_in, fresh, runs_of, set_next_run
from redis import Redis
from sqlalchemy import func, select, update

from webapp.launcher import free_port, redis_server_binary, wait_for_redis
from webapp.models import Job, Run
from webapp.queueing import (
    SCHEDULED_JOBS_KEY,
    Entry,
    fresh_beats,
    query_rq_id,
    run_rq_id,
)
from webapp.scheduling import JobScheduler
from webapp.timeutil import now

pytestmark = pytest.mark.integration

ITEMS = [
    {"title": "Acme launches a rocket", "link": "https://news.example.com/a/1"},
    {"title": "Acme hires", "link": "https://news.example.com/a/2", "description": "jobs at acme"},
    {"title": "Unrelated story", "link": "https://news.example.com/a/3"},
]
MINUTE = timedelta(minutes=1)
# How long the two schedulers run side by side in the first test: two or three boundaries.
TOGETHER = timedelta(minutes=2, seconds=5)


# --- helpers ---------------------------------------------------------------------------------




def count_runs(db, *where) -> int:
    count = db.session.scalar(select(func.count(Run.id)).where(*where))
    db.session.rollback()
    return count




def entries(redis: Redis) -> dict[str, int]:
    return {raw.decode(): int(score)
            for raw, score in redis.zrange(SCHEDULED_JOBS_KEY, 0, -1, withscores=True)}


def entries_of(redis: Redis, job) -> set[str]:
    return {e for e in entries(redis) if Entry.parse(e) and Entry.parse(e).job == job.public_id}


def rq_status(redis: Redis, rq_id: str) -> str | None:
    status = redis.hget(f"rq:job:{rq_id}", "status")
    return status.decode() if status else None


def alive(process: subprocess.Popen) -> bool:
    return process.poll() is None


def hold(seconds: float, *processes: subprocess.Popen, during=None) -> None:
    """Keep a fault in place for `seconds` (its duration is the fault itself), checking all
    along that every process survives it and that `during()` holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in processes:
            assert alive(process), f"process {process.args} died during the fault"
        if during is not None:
            during()
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def minute_boundaries(after: datetime, until: datetime) -> list[datetime]:
    """Every whole minute m with after < m <= until."""
    slot = after.replace(second=0, microsecond=0) + MINUTE
    found = []
    while slot <= until:
        found.append(slot)
        slot += MINUTE
    return found


def wait_for_scheduler_and_worker(redis: Redis, schedulers: int = 1, workers: int = 1) -> None:
    wait_until(lambda: len(fresh_beats(redis, "scheduler", 5)) >= schedulers, 30,
               message=f"{schedulers} scheduler heartbeat(s)")
    if workers:
        wait_until(lambda: len(fresh_beats(redis, "worker", 60)) >= workers, 30,
                   message=f"{workers} worker heartbeat(s)")


# --- fixtures --------------------------------------------------------------------------------


class OwnRedis:
    def __init__(self, url: str, process: subprocess.Popen):
        self.url, self.process = url, process
        self.client = Redis.from_url(url)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def own_redis(app, processes, tmp_path):
    """A redis-server for this test alone (so the session one is never frozen), used by the
    app and by every process the test starts; always continued and stopped at the end."""
    port = free_port()
    workdir = tmp_path / "own-redis"
    workdir.mkdir()
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(url, process)
        processes.env["REDIS_URL"] = url
        app.config["REDIS_URL"] = url
        app.extensions.pop("bytestack_redis", None)  # get_redis() connects to this one now
        yield OwnRedis(url, process)
    finally:
        try:
            os.kill(process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        app.extensions.pop("bytestack_redis", None)
        process.terminate()
        process.wait(timeout=10)


class DatabaseLock:
    """What blocks the scheduler's and the workers' writes for a while: BEGIN EXCLUSIVE on
    SQLite, LOCK TABLE jobs, runs IN ACCESS EXCLUSIVE MODE on PostgreSQL, each taken on a
    connection of its own."""

    def __init__(self, db, database_url: str):
        self.dialect = db.engine.dialect.name
        self.database = db.engine.url.database
        self.database_url = database_url
        self.connection = None

    def acquire(self) -> None:
        if self.dialect == "sqlite":
            self.connection = sqlite3.connect(self.database, timeout=10, isolation_level=None)
            self.connection.execute("BEGIN EXCLUSIVE")
        else:
            import psycopg

            self.connection = psycopg.connect(self.database_url)
            self.connection.execute("SET lock_timeout = '10s'")
            self.connection.execute("LOCK TABLE jobs, runs IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if self.connection is None:
            return
        try:
            if self.dialect == "sqlite":
                self.connection.execute("ROLLBACK")
            else:
                self.connection.rollback()
        finally:
            self.connection.close()
            self.connection = None


@pytest.fixture
def database_lock(db, test_env):
    lock = DatabaseLock(db, test_env["DATABASE_URL"])
    yield lock
    lock.release()


# --- 1. two schedulers for minutes -----------------------------------------------------------


def test_two_schedulers_for_minutes_make_exactly_one_run_per_slot(
    db, project, feed_server, processes, redis_url
):
    """DESIGN.md: "Exactly one run per (job, scheduled slot) ... a second scheduler ... cannot
    make a duplicate"; "schedulers may run more than one at a time without duplicate runs";
    the scheduler "wakes at the next due entry", so a slot fires within a second of its time.

    30 jobs every minute, two schedulers and two workers side by side for two minutes (two
    or three minute boundaries): every job has exactly one run for every slot that fell due
    while both ran, each created within a second of its slot and completed, both schedulers
    stop cleanly on SIGTERM, and neither logged a traceback or a failed tick.
    """
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    jobs = [
        make_job(project, name=f"minutely {i}", sources=[url], prompt="acme",
                 schedule="* * * * *")
        for i in range(30)
    ]
    redis = Redis.from_url(redis_url)
    processes.worker("worker-1")
    processes.worker("worker-2")
    a = processes.scheduler("a")
    b = processes.scheduler("b")
    wait_for_scheduler_and_worker(redis, schedulers=2, workers=2)
    wait_until(lambda: len(entries(redis)) == len(jobs), 10, message="an entry per job")
    both_up = now()
    together_until = both_up + TOGETHER
    expected = minute_boundaries(both_up, together_until)
    assert len(expected) >= 2
    last = expected[-1]

    def window_over_and_last_slot_recorded():
        assert alive(a) and alive(b), "a scheduler died"
        return now() >= together_until and count_runs(db, Run.scheduled_for == last) == len(jobs)

    remaining = (together_until - now()).total_seconds()
    wait_until(window_over_and_last_slot_recorded, remaining + 30, interval=0.5,
               message=f"a run of every job for the slot {last}")
    stopped_at = now()
    processes.kill("a", signal.SIGTERM)
    processes.kill("b", signal.SIGTERM)
    assert (a.returncode, b.returncode) == (0, 0)

    wait_until(lambda: count_runs(db, Run.status.in_(("queued", "running"))) == 0, 60,
               interval=0.5, message="every run finished")
    db.session.expire_all()
    runs = db.session.scalars(select(Run).order_by(Run.id)).all()
    by_job: dict[int, list[Run]] = {}
    for run in runs:
        by_job.setdefault(run.job_id, []).append(run)
    lateness = []
    for job in jobs:
        mine = by_job.get(job.id, [])
        slots = [r.scheduled_for for r in mine]
        assert len(slots) == len(set(slots)), f"{job.public_id} has two runs of one slot"
        assert all(r.trigger == "schedule" for r in mine)
        assert all(s.second == 0 and s.microsecond == 0 and s <= stopped_at for s in slots)
        watched = {r.scheduled_for: r for r in mine if r.scheduled_for >= expected[0]}
        assert sorted(watched) == expected, f"{job.public_id} ran for {sorted(watched)}"
        for run in watched.values():
            assert run.status == "completed", (run.public_id, run.status, run.error)
            lateness.append((run.created_at - run.scheduled_for).total_seconds())
    fired = {name: processes.log(name).count("fired ") for name in ("a", "b")}
    print(f"\n{len(runs)} runs for {len(expected)} slots; created after their slot: max "
          f"{max(lateness):.3f} s, mean {sum(lateness) / len(lateness):.3f} s; batches fired "
          f"by scheduler: {fired}")
    assert min(lateness) >= 0
    assert max(lateness) <= 1.0
    for name in ("a", "b"):
        log = processes.log(name)
        assert "Traceback" not in log, log
        assert "IntegrityError" not in log and "tick failed" not in log, log


class LockBreaker:
    """Deletes rq-scheduler's lock key every few milliseconds from a thread: what happens when
    a tick outlasts the lock's time to live (interval + 10 s: a frozen Redis, a locked
    database), or when one scheduler's remove_lock deletes the lock another one holds."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lock-breaker")

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.deleted += self.redis.delete(JobScheduler.scheduler_lock_key)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        return False


def test_two_schedulers_firing_the_same_entries_at_once_make_one_run_per_slot(
    db, project, feed_server, processes, redis_url
):
    """DESIGN.md: "Exactly one run per (job, scheduled slot): a unique constraint on
    (job_id, scheduled_for), so a second scheduler ... cannot make a duplicate."

    The same, without the help of rq-scheduler's lock (deleted as fast as it is taken), so
    both schedulers wake at the same due time and fire the same 30 entries concurrently, five
    slots in a row: one run per job and slot, every slot run and completed, no traceback.
    """
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    jobs = [make_job(project, name=f"daily {i}", sources=[url], prompt="acme", schedule="daily")
            for i in range(30)]
    ids = [job.id for job in jobs]
    redis = Redis.from_url(redis_url)
    processes.worker("worker-1")
    processes.worker("worker-2")
    a = processes.scheduler("a")
    b = processes.scheduler("b")
    wait_for_scheduler_and_worker(redis, schedulers=2, workers=2)
    slots = []
    with LockBreaker(redis) as breaker:
        for _ in range(5):
            slot = (now() + timedelta(seconds=2)).replace(microsecond=0)
            db.session.execute(update(Job).where(Job.id.in_(ids)).values(next_run_at=slot))
            db.session.commit()
            slots.append(slot)
            recorded = Run.scheduled_for == slot
            wait_until(lambda recorded=recorded: count_runs(db, recorded) == len(jobs), 20,
                       interval=0.2, message=f"a run of every job for {slot}")
            wait_until(lambda: count_runs(db, Run.status.in_(("queued", "running"))) == 0, 60,
                       interval=0.2, message="every run finished")
            assert alive(a) and alive(b)
    db.session.expire_all()
    runs = db.session.scalars(select(Run).order_by(Run.id)).all()
    assert sorted((r.job_id, r.scheduled_for) for r in runs) == sorted(
        (job_id, slot) for job_id in ids for slot in slots
    )
    assert {r.status for r in runs} == {"completed"}
    fired = {name: processes.log(name).count("fired ") for name in ("a", "b")}
    print(f"\nlock deleted {breaker.deleted} times; batches fired by scheduler: {fired}")
    for name in ("a", "b"):
        log = processes.log(name)
        assert "Traceback" not in log, log
        assert "IntegrityError" not in log and "tick failed" not in log, log


# --- 2. the scheduler stopped across several slots -------------------------------------------


@pytest.mark.parametrize("how", ["sigstop", "sigkill"])
def test_a_scheduler_stopped_across_slots_makes_one_coalesced_catch_up_run(
    db, project, feed_server, processes, redis_url, how
):
    """DESIGN.md: "After downtime, a job that missed one or more slots runs once (coalesced)
    and then resumes its normal cadence."

    An hourly job; the scheduler is frozen (SIGSTOP, then SIGCONT) or killed (SIGKILL, then
    started again) while five slots pass: exactly one run, for the latest missed slot, and
    `next_run_at` is the slot after it.
    """
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, sources=[url], prompt="acme", schedule="every_hour")
    redis = Redis.from_url(redis_url)
    processes.worker()
    scheduler = processes.scheduler()
    wait_for_scheduler_and_worker(redis)
    upcoming = fresh(db, Job, job.id).next_run_at
    wait_until(lambda: entries_of(redis, job) == {Entry.of(job.public_id, upcoming).id}, 10)

    top = now().replace(minute=0, second=0, microsecond=0)
    missed = top - timedelta(hours=5)
    if how == "sigstop":
        os.kill(scheduler.pid, signal.SIGSTOP)
        try:
            # As if it had been stopped for five hours: the job's slot and its entry are both
            # five slots in the past.
            set_next_run(db, job, missed)
            redis.zrem(SCHEDULED_JOBS_KEY, Entry.of(job.public_id, upcoming).id)
            redis.zadd(SCHEDULED_JOBS_KEY, {Entry.of(job.public_id, missed).id: missed.timestamp()})
            assert runs_of(db, job) == []
        finally:
            os.kill(scheduler.pid, signal.SIGCONT)
    else:
        processes.kill("scheduler", signal.SIGKILL)
        # Down for five hours: its entry is the one of the future slot, which the full
        # reconcile at start-up replaces by the entry of the missed one.
        set_next_run(db, job, missed)
        scheduler = processes.scheduler("scheduler-again")

    run = wait_until(lambda: runs_of(db, job, "completed"), 30, message="the catch-up run")[0]
    assert run.trigger == "schedule"
    assert run.scheduled_for in {top, now().replace(minute=0, second=0, microsecond=0)}
    following = run.scheduled_for + timedelta(hours=1)
    # The entry of the missed slot is gone; the following slot's is the job's only entry.
    wait_until(lambda: entries_of(redis, job) == {Entry.of(job.public_id, following).id}, 10,
               message="the entry of the following slot alone")
    assert [(r.scheduled_for, r.status) for r in runs_of(db, job)] == [
        (run.scheduled_for, "completed")
    ]
    job = fresh(db, Job, job.id)
    assert (job.state, job.next_run_at) == ("active", following)
    assert alive(scheduler)


# --- 3. Redis flushed ------------------------------------------------------------------------


def test_after_a_redis_flush_entries_are_rebuilt_and_queued_runs_and_queries_run(
    db, project, feed_server, processes, redis_url
):
    """DESIGN.md: "Redis holds only the queue and the due-time entries, and the reconcile pass
    can rebuild every entry from the database (after a Redis flush or restart) within
    seconds"; the reaper queues again a queued run whose queue message was lost.

    FLUSHALL with active jobs, a queued job run and a queued one-off query, no worker yet:
    every entry is back within seconds, the run and the query are handed to the queue again,
    and once a worker starts both complete, the job's with no second run.
    """
    from webapp.jobs.service import pause_job, run_now
    from webapp.queries.service import submit_query

    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    jobs = [make_job(project, name=f"daily {i}", sources=[url], prompt="acme", schedule="daily")
            for i in range(3)]
    paused = pause_job(make_job(project, name="paused", sources=[url], prompt="acme"))
    run = run_now(fresh(db, Job, jobs[0].id))
    query = submit_query(project, {"prompt": "acme", "sources": [url]})
    redis = Redis.from_url(redis_url)
    job_message = run_rq_id(jobs[0].public_id, run.scheduled_for)
    query_message = query_rq_id(query.public_id)
    wanted = {Entry.of(j.public_id, fresh(db, Job, j.id).next_run_at).id: None for j in jobs}
    assert rq_status(redis, job_message) == rq_status(redis, query_message) == "queued"
    scheduler = processes.scheduler()
    wait_for_scheduler_and_worker(redis, workers=0)
    wait_until(lambda: set(entries(redis)) == set(wanted), 10, message="an entry per active job")

    redis.flushall()
    flushed = time.monotonic()
    rebuilt = wait_until(lambda: (e := entries(redis)) and set(e) == set(wanted) and e, 10,
                         interval=0.1, message="every entry rebuilt")
    rebuilt_after = time.monotonic() - flushed
    for entry_id, score in rebuilt.items():
        assert score == Entry.parse(entry_id).slot
    assert not any(paused.public_id in e for e in rebuilt)

    # The reaper hands both to the queue again once they are older than its grace period.
    wait_until(lambda: rq_status(redis, job_message) == rq_status(redis, query_message)
               == "queued", 30, message="the run and the query queued again")
    requeued_after = time.monotonic() - flushed
    print(f"\nentries rebuilt {rebuilt_after:.2f} s and runs requeued {requeued_after:.2f} s "
          f"after the flush")
    assert (fresh(db, Run, run.id).status, fresh(db, Run, query.id).status) == ("queued",) * 2
    assert "requeued run=" in processes.log("scheduler")

    processes.worker()
    wait_until(lambda: fresh(db, Run, run.id).status == "completed"
               and fresh(db, Run, query.id).status == "completed", 30,
               message="the run and the query completed")
    assert fresh(db, Run, run.id).record_count == 2
    assert fresh(db, Run, query.id).record_count == 2
    assert [r.id for r in runs_of(db, jobs[0])] == [run.id]
    assert alive(scheduler)


# --- 4. Redis frozen -------------------------------------------------------------------------


REDIS_FREEZE_SECONDS = 15


@pytest.mark.parametrize("worker_busy", [False, True], ids=["idle-worker", "worker-mid-run"])
def test_a_frozen_redis_delays_a_slot_which_then_fires_once_and_no_process_dies(
    db, project, feed_server, processes, own_redis, worker_busy
):
    """DESIGN.md: "No process dies of a blip: the scheduler handles errors per entry and drops
    a due entry only after its run is committed".

    Redis stopped (SIGSTOP) for 15 s while a job's slot falls due (and, in one case, while
    the worker is in the middle of another job's run): the scheduler and the worker are alive
    afterwards, the slot fires once after SIGCONT and its run completes (so does the run that
    was going), and a slot due after the thaw fires and completes too.
    """
    from webapp.jobs.service import run_now

    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    slow_url = feed_server.serve("/slow.xml", rss_document(ITEMS), delay=3)  # < fetch timeout
    job = make_job(project, sources=[url], prompt="acme", schedule="daily")
    other = make_job(project, name="slow", sources=[slow_url], prompt="acme", schedule="daily")
    redis = own_redis.client
    worker = processes.worker()
    scheduler = processes.scheduler()
    wait_for_scheduler_and_worker(redis)

    going = None
    if worker_busy:
        going = run_now(fresh(db, Job, other.id))
        wait_until(lambda: fresh(db, Run, going.id).status == "running", 10,
                   message="the other job's run going")
        db.session.rollback()
    slot = due_in(db, job, 4)
    entry = Entry.of(job.public_id, slot).id
    wait_until(lambda: entry in entries(redis), 3, interval=0.1, message="the slot's entry")
    own_redis.freeze()
    try:
        frozen_at = now()
        assert frozen_at < slot, "Redis must freeze before the slot falls due"
        hold(REDIS_FREEZE_SECONDS, scheduler, worker)
    finally:
        own_redis.thaw()
    thawed_at = now()
    assert slot < thawed_at

    run = wait_until(lambda: runs_of(db, job, "completed", slot), 40,
                     message="the delayed slot's run completed")[0]
    assert run.created_at >= thawed_at - timedelta(seconds=0.5)  # fired after the thaw
    assert len(runs_of(db, job, slot=slot)) == 1
    assert alive(scheduler) and alive(worker)
    if going is not None:
        going = wait_until(lambda: (r := fresh(db, Run, going.id)).status != "running" and r,
                           30, message="the run that was going ended")
        assert (going.status, going.error) == ("completed", None)
        assert going.record_count == 2

    later = due_in(db, job, 2)
    wait_until(lambda: runs_of(db, job, "completed", later), 30,
               message="the slot after the thaw completed")
    assert [(r.scheduled_for, r.status) for r in runs_of(db, job)] == [
        (slot, "completed"), (later, "completed")
    ]
    assert alive(scheduler) and alive(worker)


# --- 5. the database locked or unreachable --------------------------------------------------


DATABASE_FAULT_SECONDS = 10


@pytest.mark.parametrize("worker_busy", [False, True], ids=["idle-worker", "worker-mid-run"])
@pytest.mark.parametrize("fault", ["locked", "unreachable"])
def test_a_locked_or_unreachable_database_delays_a_slot_which_then_fires_once(
    db, project, feed_server, processes, redis_url, request, fault, worker_busy
):
    """DESIGN.md: "No process dies of a blip: the scheduler ... drops a due entry only after its
    run is committed"; exactly one run per (job, slot); a run is failed only when its worker
    died or it ran past its timeout.

    For 10 s while a slot falls due, the database is either locked (the jobs and runs tables:
    BEGIN EXCLUSIVE on SQLite, LOCK TABLE ... IN ACCESS EXCLUSIVE MODE on PostgreSQL) or
    unreachable (PostgreSQL behind a proxy process that is SIGKILLed: open connections
    dropped, new ones refused; then started again). The entry stays due, the slot fires
    exactly once afterwards and its run completes, the scheduler and the worker stay alive,
    and a later slot fires normally. In one case the worker is in the middle of another job's
    run when the fault comes, and that run finishes fetching during it: it is not reaped as if
    its worker had died, and it completes with its records once the database answers.
    """
    from webapp.jobs.service import run_now

    if fault == "locked":
        lock = request.getfixturevalue("database_lock")
        begin, end = lock.acquire, lock.release
    else:
        proxy = request.getfixturevalue("database_proxy")  # before the processes start
        begin, end = proxy.cut, proxy.start
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    slow_url = feed_server.serve("/slow.xml", rss_document(ITEMS), delay=3)  # < fetch timeout
    job = make_job(project, sources=[url], prompt="acme", schedule="daily")
    other = make_job(project, name="slow", sources=[slow_url], prompt="acme", schedule="daily")
    redis = Redis.from_url(redis_url)
    worker = processes.worker()
    scheduler = processes.scheduler()
    wait_for_scheduler_and_worker(redis)

    going = None
    if worker_busy:
        going = run_now(fresh(db, Job, other.id))
        wait_until(lambda: fresh(db, Run, going.id).status == "running", 10,
                   message="the other job's run going")
    slot = due_in(db, job, 3)
    entry = Entry.of(job.public_id, slot).id
    wait_until(lambda: entry in entries(redis), 3, interval=0.1, message="the slot's entry")
    db.session.rollback()
    begin()
    try:
        assert now() < slot, "the fault must begin before the slot falls due"

        def still_due():
            if now() > slot + timedelta(seconds=1):
                # Its run cannot be committed yet, so the entry stays.
                assert entry in entries(redis), "the due entry left Redis during the fault"

        hold(DATABASE_FAULT_SECONDS, scheduler, worker, during=still_due)
    finally:
        end()
    ended_at = now()
    assert slot < ended_at

    run = wait_until(lambda: runs_of(db, job, "completed", slot), 40,
                     message="the delayed slot's run completed")[0]
    assert len(runs_of(db, job, slot=slot)) == 1
    assert entry not in entries(redis)
    assert alive(scheduler) and alive(worker)
    if going is not None:
        going = wait_until(lambda: (r := fresh(db, Run, going.id)).status != "running" and r,
                           30, message="the run that was going ended")
        assert (going.status, going.error) == ("completed", None)
        assert going.record_count == 2
        assert fresh(db, Job, other.id).state == "active"
    print(f"\nthe slot's run was written {(run.created_at - slot).total_seconds():.2f} s after "
          f"its slot, {(run.created_at - ended_at).total_seconds():+.2f} s from the fault's end")

    later = due_in(db, job, 2)
    later_run = wait_until(lambda: runs_of(db, job, "completed", later), 30,
                           message="a later slot completed")[0]
    assert (later_run.created_at - later).total_seconds() < 1.0
    assert [(r.scheduled_for, r.status) for r in runs_of(db, job)] == [
        (slot, "completed"), (later, "completed")
    ]
    assert alive(scheduler) and alive(worker)
