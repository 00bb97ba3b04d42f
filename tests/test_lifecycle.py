"""The run lifecycle's compare-and-set rules and the batched fire path, each against the
database state DESIGN.md promises; each guards a defect that was measured on the engine."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine
from conftest import make_job
from helpers import fresh, utc
from redis import Redis
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from webapp.errors import ConflictError
from webapp.ids import new_public_id
from webapp.jobs import service
from webapp.models import Job, Record, Run
from webapp.queueing import SCHEDULED_JOBS_KEY, Entry, run_rq_id
from webapp.runs.lifecycle import (
    MAX_ATTEMPTS,
    claim_run,
    complete_run,
    fail_run,
    hand_back_run,
    reap,
)
from webapp.scheduling import JobScheduler, fire_entries, reconcile
from webapp.timeutil import now


def record(fingerprint: str) -> dict:
    return {
        "source": "rss", "fingerprint": fingerprint, "url": f"https://n.example.com/{fingerprint}",
        "title": "Acme story", "text": None, "author": None, "published_at": now(),
        "metrics": {}, "raw": {},
    }


def started_run(db, job: Job) -> Run:
    run = service.run_now(job)
    assert claim_run(run.id)
    return fresh(db, Run, run.id)


def pause_elsewhere(db, job: Job) -> None:
    """What the web process's pause writes, from another connection: the worker's session
    still holds its own (now stale) copy of the job."""
    with db.engine.begin() as connection:
        connection.execute(
            update(Job).where(Job.id == job.id).values(enabled=False, next_run_at=None)
        )


# --- pause and resume during a run -----------------------------------------------------------


def test_a_job_paused_during_its_run_rests_paused_and_resume_schedules_it_again(db, project):
    job = make_job(project)
    run = started_run(db, job)
    db.session.get(Job, job.id)  # the worker's session has the job cached, enabled
    pause_elsewhere(db, job)
    assert complete_run(run.id, [record("a")], [])
    job = fresh(db, Job, job.id)
    assert (job.state, job.enabled, job.next_run_at) == ("paused", False, None)
    service.resume_job(job)
    job = fresh(db, Job, job.id)
    assert (job.state, job.enabled) == ("active", True)
    assert job.next_run_at is not None and job.next_run_at > now()


def test_resume_during_a_manual_run_of_a_paused_job_ends_active(db, project):
    job = service.pause_job(make_job(project))
    run = started_run(db, job)
    db.session.get(Job, job.id)
    service.resume_job(fresh(db, Job, job.id))
    assert complete_run(run.id, [], [])
    job = fresh(db, Job, job.id)
    assert (job.state, job.enabled) == ("active", True)
    assert job.next_run_at is not None


# --- a late worker never overwrites the reaper ----------------------------------------------


def test_a_late_worker_cannot_complete_a_run_the_reaper_failed(db, project):
    job = make_job(project)
    run = started_run(db, job)
    assert fail_run(run.id, "The worker stopped responding.", ("running",))
    assert complete_run(run.id, [record("a"), record("b")], []) is False
    run = fresh(db, Run, run.id)
    assert (run.status, run.error) == ("failed", "The worker stopped responding.")
    job = fresh(db, Job, job.id)
    assert (job.state, job.next_run_at) == ("failed", None)
    assert db.session.scalar(select(func.count(Record.id)).where(Record.run_id == run.id)) == 0


def test_a_handed_back_run_is_queued_again_and_keeps_its_job_running(db, project, redis_url):
    job = make_job(project)
    run = started_run(db, job)
    assert hand_back_run(run.id)
    run = fresh(db, Run, run.id)
    assert (run.status, run.started_at) == ("queued", None)
    assert fresh(db, Job, job.id).state == "running"
    redis = Redis.from_url(redis_url)
    rq_id = run_rq_id(job.public_id, run.scheduled_for)
    redis.hset(f"rq:job:{rq_id}", "status", "started")  # the work horse is still finishing
    assert reap(redis, 60, 600, 660).requeued == []
    redis.hset(f"rq:job:{rq_id}", "status", "finished")  # it returned: requeued at once
    assert reap(redis, 60, 600, 660).requeued == [run.public_id]
    assert redis.hget(f"rq:job:{rq_id}", "status") == b"queued"


def test_a_silent_run_held_by_a_live_worker_is_not_reaped(db, project, redis_url):
    """After a database outage the run's heartbeat is stale although its worker lives: the
    queue says the message is started by a worker whose heartbeat (in Redis) is fresh."""
    from webapp.queueing import beat

    job = make_job(project)
    run = started_run(db, job)
    redis = Redis.from_url(redis_url)
    rq_id = run_rq_id(job.public_id, run.scheduled_for)
    redis.hset(f"rq:job:{rq_id}", mapping={"status": "started", "worker_name": "host.7"})
    db.session.execute(update(Run).where(Run.id == run.id)
                       .values(heartbeat_at=now() - timedelta(seconds=120)))
    db.session.commit()
    beat(redis, "worker", "host.7")
    assert reap(redis, 60, 600, 660).failed == []
    assert fresh(db, Run, run.id).status == "running"
    redis.zrem("bytestack:heartbeats:worker", "host.7")  # the worker's machine is gone
    assert reap(redis, 60, 600, 660).failed == [run.public_id]
    assert "stopped responding" in fresh(db, Run, run.id).error


# --- a queued run whose queue message failed does not block its job --------------------------


def test_a_queued_run_whose_rq_job_failed_is_requeued_then_failed_after_the_attempts(
    db, project, redis_url
):
    job = make_job(project)
    run = service.run_now(job)
    redis = Redis.from_url(redis_url)
    rq_id = run_rq_id(job.public_id, run.scheduled_for)
    moment = now()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # The worker could not claim it (a database blip, an out-of-memory kill).
        redis.hset(f"rq:job:{rq_id}", "status", "failed")
        moment += timedelta(seconds=11)
        with time_machine.travel(moment):
            result = reap(redis, 60, 600, 660)
        if attempt < MAX_ATTEMPTS:
            assert result.requeued == [run.public_id]
            assert fresh(db, Run, run.id).attempts == attempt + 1
    run = fresh(db, Run, run.id)
    assert run.status == "failed"
    assert f"handed to the queue {MAX_ATTEMPTS} times" in run.error
    assert fresh(db, Job, job.id).state == "failed"
    # The job is not blocked: Run now works again at once.
    service.resume_job(fresh(db, Job, job.id))
    assert service.run_now(fresh(db, Job, job.id)).status == "queued"


def test_a_live_queue_message_is_left_alone(db, project, redis_url):
    job = make_job(project)
    run = service.run_now(job)
    redis = Redis.from_url(redis_url)
    with time_machine.travel(now() + timedelta(seconds=11)):
        assert reap(redis, 60, 600, 660).requeued == []
    assert fresh(db, Run, run.id).attempts == 1


# --- at most one run in progress per job, in the database ------------------------------------


def test_the_database_refuses_a_second_run_in_progress_for_a_job(db, project):
    job = make_job(project)
    service.run_now(job)
    with pytest.raises(IntegrityError):
        db.session.execute(insert(Run).values(
            public_id=new_public_id("run"), project_id=project.id, job_id=job.id,
            trigger="manual", scheduled_for=now() + timedelta(seconds=1), status="running",
        ))
        db.session.commit()
    db.session.rollback()


def test_run_now_racing_another_press_gets_409_from_the_database(db, project):
    job = make_job(project)
    # Another web process inserted its run after this one's state check.
    db.session.execute(insert(Run).values(
        public_id=new_public_id("run"), project_id=project.id, job_id=job.id,
        trigger="manual", scheduled_for=now(), status="queued",
    ))
    db.session.commit()
    assert fresh(db, Job, job.id).state == "active"
    with pytest.raises(ConflictError):
        service.run_now(fresh(db, Job, job.id))
    assert db.session.scalar(select(func.count(Run.id)).where(Run.job_id == job.id)) == 1


def fire_while_run_now_is_pressed(db, monkeypatch, project, manual_at: datetime):
    """Fire a due slot of a new job while a person presses Run now right after the
    scheduler's reads (another process, another connection): its manual run is at
    `manual_at`. Returns the job, the firing and the job's runs."""
    slot = utc(2026, 5, 1, 4)
    job = make_job(project)
    db.session.execute(update(Job).where(Job.id == job.id).values(next_run_at=slot))
    db.session.commit()
    original = db.session.rollback
    pressed = []

    def rollback_then_press_run_now():
        original()
        if not pressed:
            pressed.append(True)
            with db.engine.begin() as connection:
                connection.execute(insert(Run).values(
                    public_id=new_public_id("run"), project_id=project.id, job_id=job.id,
                    trigger="manual", scheduled_for=manual_at, status="queued", attempts=1,
                    created_at=now(),
                ))

    monkeypatch.setattr(db.session, "rollback", rollback_then_press_run_now)
    firing = fire_entries([Entry.of(job.public_id, slot)], slot + timedelta(seconds=1))
    monkeypatch.undo()
    runs = db.session.scalars(select(Run).where(Run.job_id == job.id).order_by(Run.id)).all()
    return fresh(db, Job, job.id), firing, runs


def test_a_slot_racing_run_now_at_its_own_instant_makes_no_second_run(db, project, monkeypatch):
    job, firing, runs = fire_while_run_now_is_pressed(db, monkeypatch, project, utc(2026, 5, 1, 4))
    assert [r.status for r in runs] == ["queued"]  # the manual run holds the slot
    assert firing.queued == []
    assert job.next_run_at == utc(2026, 5, 1, 5)


def test_a_slot_racing_run_now_is_recorded_as_skipped(db, project, monkeypatch):
    manual_at = utc(2026, 5, 1, 3, 59, 57)
    job, firing, runs = fire_while_run_now_is_pressed(db, monkeypatch, project, manual_at)
    assert [r.status for r in runs] == ["queued", "skipped"]
    assert "still queued" in runs[1].error
    assert firing.queued == []
    assert job.next_run_at == utc(2026, 5, 1, 5)


# --- the batched fire path -------------------------------------------------------------------


def test_a_thousand_due_entries_fire_in_one_batch_into_one_run_each(db, project, redis_url):
    slot = utc(2026, 5, 1, 4)
    jobs = [make_job(project, name=f"job {i}", schedule="every_hour") for i in range(1000)]
    db.session.execute(update(Job).values(next_run_at=slot))
    db.session.commit()
    # A stale entry (the job was edited since) and an entry of a deleted job, among them.
    entries = [Entry.of(j.public_id, slot) for j in jobs]
    entries += [Entry.of(jobs[0].public_id, slot - timedelta(hours=1)),
                Entry("job_01DELETEDDELETEDDELETED00", 1)]
    firing = fire_entries(entries, slot + timedelta(seconds=1))
    assert len(firing.queued) == len(firing.runs) == 1000
    assert db.session.scalar(select(func.count(Run.id)).where(Run.status == "queued")) == 1000
    assert set(db.session.scalars(select(Job.next_run_at).distinct())) == {utc(2026, 5, 1, 5)}
    assert len(firing.add) == 1000 and len(firing.remove) == 1002
    # A second scheduler firing the same entries records nothing.
    again = fire_entries(entries, slot + timedelta(seconds=2))
    assert again.runs == [] and again.queued == []
    assert db.session.scalar(select(func.count(Run.id))) == 1000


def test_reconcile_rebuilds_all_entries_after_a_flush_and_checks_changed_jobs(
    db, project, redis_url
):
    redis = Redis.from_url(redis_url)
    jobs = [make_job(project, name=f"job {i}") for i in range(20)]
    service.pause_job(jobs[0])
    redis.flushall()
    assert reconcile(redis) == 19
    present = {e.decode() for e in redis.zrange(SCHEDULED_JOBS_KEY, 0, -1)}
    assert present == {Entry.of(j.public_id, fresh(db, Job, j.id).next_run_at).id
                       for j in jobs[1:]}
    # An entry the web process failed to write (Redis down at save time) comes back in the
    # incremental pass, which reads only the jobs changed since the last pass.
    since = now() - timedelta(seconds=1)
    redis.zrem(SCHEDULED_JOBS_KEY, Entry.of(jobs[5].public_id, jobs[5].next_run_at).id)
    service.update_job(fresh(db, Job, jobs[5].id), {"schedule": "daily"})
    redis.zrem(SCHEDULED_JOBS_KEY, *[e for e in redis.zrange(SCHEDULED_JOBS_KEY, 0, -1)
                                     if jobs[5].public_id.encode() in e])
    assert reconcile(redis, since=since) == 1
    assert redis.zscore(SCHEDULED_JOBS_KEY,
                        Entry.of(jobs[5].public_id, fresh(db, Job, jobs[5].id).next_run_at).id)


# --- the scheduler never dies of a blip -----------------------------------------------------


@pytest.fixture
def scheduler(app, redis_url):
    import signal

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield JobScheduler(app, connection=Redis.from_url(redis_url), interval=0.05)
    signal.signal(signal.SIGINT, handlers[0])
    signal.signal(signal.SIGTERM, handlers[1])


@pytest.mark.parametrize("broken", ["database", "redis"])
def test_a_failing_tick_keeps_the_due_entry_and_fires_it_once_afterwards(
    db, project, redis_url, scheduler, monkeypatch, broken
):
    from redis.exceptions import TimeoutError as RedisTimeout
    from sqlalchemy.exc import OperationalError

    import webapp.scheduling as scheduling

    job = make_job(project, schedule="every_hour")
    slot = (now() - timedelta(seconds=5)).replace(microsecond=0)
    db.session.execute(update(Job).where(Job.id == job.id).values(next_run_at=slot))
    db.session.commit()
    reconcile(Redis.from_url(redis_url))
    failures = []
    target = "fire_entries" if broken == "database" else "move_entries"
    real = getattr(scheduling, target)

    def flaky(*args, **kwargs):
        if len(failures) < 2:
            failures.append(True)
            if broken == "database":
                raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
            raise RedisTimeout("Timeout reading from socket")
        return real(*args, **kwargs)

    monkeypatch.setattr(scheduling, target, flaky)
    scheduler.run(burst=True)  # retries with backoff until a tick succeeds
    assert len(failures) == 2
    runs = db.session.scalars(select(Run).where(Run.job_id == job.id)).all()
    assert [(r.status, r.scheduled_for) for r in runs] == [("queued", slot)]
    present = {e.decode() for e in Redis.from_url(redis_url).zrange(SCHEDULED_JOBS_KEY, 0, -1)}
    assert Entry.of(job.public_id, slot).id not in present
    assert Entry.of(job.public_id, fresh(db, Job, job.id).next_run_at).id in present


def test_the_tick_after_a_redis_flush_rebuilds_every_entry_before_firing(
    db, project, redis_url, scheduler
):
    jobs = [make_job(project, name=f"job {i}") for i in range(5)]
    redis = Redis.from_url(redis_url)
    scheduler.run(burst=True)  # the first tick reconciles everything
    assert redis.zcard(SCHEDULED_JOBS_KEY) == 5
    redis.flushall()
    scheduler.tick()  # not waiting for the next reconcile pass
    present = {e.decode() for e in redis.zrange(SCHEDULED_JOBS_KEY, 0, -1)}
    assert present == {Entry.of(j.public_id, fresh(db, Job, j.id).next_run_at).id for j in jobs}


def test_a_run_writes_its_progress_as_each_source_finishes(db, project, feed_server):
    from feeds import rss_document

    from webapp.runs.executor import execute_run

    items = [{"title": "Acme one", "link": "https://n.example.com/1"},
             {"title": "Other", "link": "https://n.example.com/2"}]
    first = feed_server.serve("/a.xml", rss_document(items))
    second = feed_server.serve("/b.xml", rss_document(items[:1]))
    job = make_job(project, sources=[first, second], prompt="acme", date_range={"last": "7d"})
    run = service.run_now(job)
    assert fresh(db, Run, run.id).progress is None
    assert execute_run(job.public_id, run.scheduled_for) == "completed"
    run = fresh(db, Run, run.id)
    # Records so far count what matches the prompt, before duplicates across sources merge.
    assert run.progress == {"sources_done": 2, "sources_total": 2, "records": 2}
    assert run.record_count == 1
