"""The job lifecycle of DESIGN.md's state table through webapp.jobs.service, the run end
(webapp.runs.executor) and the scheduler's firing of a slot (webapp.scheduling.fire_slot)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from conftest import make_job
from feeds import rss_document
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from webapp.errors import ConflictError, ValidationError
from webapp.jobs import service
from webapp.models import Job, Record, Run
from webapp.queueing import SCHEDULED_JOBS_KEY, slot_entry_id
from webapp.runs.executor import execute_run
from webapp.runs.lifecycle import complete_run, fail_run
from webapp.scheduling import fire_slot
from webapp.timeutil import now

T0 = datetime(2026, 5, 1, 3, 17, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fresh(db, job: Job) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job.id)


def runs_of(db, job: Job) -> list[Run]:
    db.session.expire_all()
    return db.session.scalars(select(Run).where(Run.job_id == job.id).order_by(Run.id)).all()


def entries(redis_url: str, job: Job) -> set[str]:
    """The scheduler's due-time entries of a job in Redis."""
    raw = Redis.from_url(redis_url).zrange(SCHEDULED_JOBS_KEY, 0, -1)
    return {e.decode() for e in raw if e.decode().startswith(f"slot-{job.public_id}-")}


def live_entries(db, redis_url: str, job: Job) -> set[str]:
    """The entries that would fire a run. A run's end leaves the entry of a job it failed in
    Redis; such an entry fires into nothing and is dropped when it falls due."""
    live = set()
    for entry in entries(redis_url, job):
        slot = datetime.fromtimestamp(int(entry.rsplit("-", 1)[1]), UTC)
        if fresh(db, job).next_run_at == slot and fresh(db, job).is_schedulable:
            live.add(entry)
        else:
            assert fire_slot(job.public_id, slot, slot + timedelta(seconds=1)).run is None
    return live


def set_state(db, job: Job, state: str) -> Job:
    """Put a job in a state the way the worker or a run end leaves it."""
    job = fresh(db, job)
    job.state = state
    if state == "failed":
        job.next_run_at, job.last_error = None, "Every source failed."
    if state == "paused":
        job.enabled, job.next_run_at = False, None
    db.session.commit()
    return job


def claim(db, run: Run) -> Run:
    """What a worker does when it takes a queued run: run `running`, job `running`."""
    db.session.expire_all()
    run = db.session.get(Run, run.id)
    run.status, run.started_at, run.heartbeat_at = "running", now(), now()
    run.job.state = "running"
    db.session.commit()
    return run


def record(fingerprint: str, title: str = "Acme story") -> dict:
    return {
        "source": "rss",
        "fingerprint": fingerprint,
        "url": f"https://n.example.com/{fingerprint}",
        "title": title,
        "text": None,
        "author": None,
        "published_at": now(),
        "metrics": {},
        "raw": {},
    }


# --- create, pause, resume -------------------------------------------------------------------


def test_create_makes_an_active_job_with_its_next_slot_and_a_due_entry(db, project, redis_url):
    with time_machine.travel(T0, tick=False):
        job = make_job(project, schedule="every_6_hours")
    job = fresh(db, job)
    assert (job.state, job.enabled) == ("active", True)
    assert job.next_run_at == utc(2026, 5, 1, 6)
    assert entries(redis_url, job) == {slot_entry_id(job.public_id, job.next_run_at)}


def test_create_refuses_invalid_fields_and_stores_nothing(db, project):
    with pytest.raises(ValidationError) as caught:
        make_job(project, name="", limit=0, schedule="61 * * * *")
    assert set(caught.value.errors) == {"name", "limit", "schedule"}
    assert db.session.scalar(select(func.count(Job.id))) == 0


@pytest.mark.parametrize("state", ["active", "failed", "paused"])
def test_pause_from_any_resting_state_leaves_the_job_paused_with_no_next_run(
    db, project, redis_url, state
):
    job = set_state(db, make_job(project), state)
    service.pause_job(job)
    job = fresh(db, job)
    assert (job.state, job.enabled, job.next_run_at) == ("paused", False, None)
    assert live_entries(db, redis_url, job) == set()
    if state == "active":  # pause knew the slot it cancelled: its entry is gone at once
        assert entries(redis_url, job) == set()


@pytest.mark.parametrize("end", ["complete", "fail"])
def test_a_job_paused_while_running_returns_to_paused_when_the_run_ends(
    db, project, redis_url, end
):
    job = make_job(project)
    run = claim(db, service.run_now(job))
    service.pause_job(fresh(db, job))
    job = fresh(db, job)
    # Pausing disables it at once; the state says a run is still going until it ends.
    assert (job.state, job.enabled, job.next_run_at) == ("running", False, None)
    assert entries(redis_url, job) == set()
    if end == "complete":
        complete_run(run.id, [record("a")], [])
    else:
        fail_run(run.id, "Every source failed.")
    job = fresh(db, job)
    assert (job.state, job.next_run_at) == ("paused", None)
    assert runs_of(db, job)[0].status == ("completed" if end == "complete" else "failed")
    if end == "fail":
        assert job.last_error == "Every source failed."
    else:
        assert job.last_sync_at is not None


@pytest.mark.parametrize("state", ["paused", "failed"])
def test_resume_makes_the_job_active_with_its_next_run_from_now(db, project, redis_url, state):
    with time_machine.travel(T0, tick=False):
        job = set_state(db, make_job(project, schedule="every_6_hours"), state)
    with time_machine.travel(T0 + timedelta(days=3, hours=4), tick=False):  # 2026-05-04 07:17
        service.resume_job(fresh(db, job))
    job = fresh(db, job)
    assert (job.state, job.enabled) == ("active", True)
    # The next slot after now: no burst of the twelve slots missed meanwhile.
    assert job.next_run_at == utc(2026, 5, 4, 12)
    with time_machine.travel(T0 + timedelta(days=3, hours=4), tick=False):
        assert live_entries(db, redis_url, job) == {
            slot_entry_id(job.public_id, utc(2026, 5, 4, 12))
        }


def test_resume_of_an_active_job_changes_nothing(db, project):
    with time_machine.travel(T0, tick=False):
        job = make_job(project, schedule="daily")
    with time_machine.travel(T0 + timedelta(hours=30), tick=False):
        service.resume_job(fresh(db, job))
    job = fresh(db, job)
    assert (job.state, job.next_run_at) == ("active", utc(2026, 5, 2))


def test_resume_while_running_undoes_the_pause_and_the_run_ends_active(db, project):
    job = make_job(project)
    run = claim(db, service.run_now(job))
    service.pause_job(fresh(db, job))
    service.resume_job(fresh(db, job))
    job = fresh(db, job)
    assert (job.state, job.enabled) == ("running", True)
    assert job.next_run_at is not None
    complete_run(run.id, [], [])
    assert fresh(db, job).state == "active"


# --- run now ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["active", "paused", "failed"])
def test_run_now_is_allowed_in_every_resting_state_and_keeps_that_state(db, project, state):
    job = set_state(db, make_job(project), state)
    run = service.run_now(job)
    assert (run.status, run.trigger) == ("queued", "manual")
    assert run.job_id == job.id
    assert fresh(db, job).state == state


def test_run_now_is_refused_while_running(db, project):
    job = set_state(db, make_job(project), "running")
    with pytest.raises(ConflictError) as caught:
        service.run_now(job)
    assert caught.value.status == 409
    assert runs_of(db, job) == []


def test_run_now_is_refused_while_a_run_is_still_queued(db, project):
    job = make_job(project)
    service.run_now(job)
    with pytest.raises(ConflictError):
        service.run_now(fresh(db, job))
    assert len(runs_of(db, job)) == 1


def test_run_now_without_a_reachable_queue_stays_queued_until_the_reaper_queues_it(
    app, db, project, redis_url
):
    from webapp.launcher import free_port
    from webapp.queueing import run_rq_id
    from webapp.runs.lifecycle import reap

    job = make_job(project)
    app.extensions.pop("bytestack_redis", None)
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    run = service.run_now(job)
    assert run.status == "queued"  # recorded, nothing lost
    assert fresh(db, job).state == "active"
    with pytest.raises(ConflictError):  # and it counts as in progress
        service.run_now(fresh(db, job))
    # Redis is back: the scheduler's reaper hands the run to the queue.
    app.extensions.pop("bytestack_redis", None)
    app.config["REDIS_URL"] = redis_url
    redis = Redis.from_url(redis_url)
    rq_id = run_rq_id(job.public_id, run.scheduled_for)
    assert not redis.exists(f"rq:job:{rq_id}")
    with time_machine.travel(now() + timedelta(seconds=11)):
        result = reap(redis, 60, 600, 660)
    assert result.requeued == [run.public_id]
    assert redis.hget(f"rq:job:{rq_id}", "status") == b"queued"
    assert db.session.get(Run, run.id).attempts == 2


def test_run_now_on_a_paused_job_really_runs_and_the_job_rests_paused(db, project, feed_server):
    items = [
        {"title": "Acme launches", "link": "https://news.example.com/1"},
        {"title": "Other news", "link": "https://news.example.com/2"},
    ]
    url = feed_server.serve("/feed.xml", rss_document(items))
    job = service.pause_job(make_job(project, sources=[url], prompt="acme"))
    run = service.run_now(job)
    assert execute_run(job.public_id, run.scheduled_for) == "completed"
    run = runs_of(db, job)[0]
    assert (run.status, run.record_count, run.new_count) == ("completed", 1, 1)
    titles = db.session.scalars(select(Record.title).where(Record.run_id == run.id)).all()
    assert titles == ["Acme launches"]
    job = fresh(db, job)
    assert (job.state, job.next_run_at) == ("paused", None)
    assert job.last_sync_at is not None


# --- run end ---------------------------------------------------------------------------------


def test_a_completed_run_stores_its_records_and_returns_the_job_to_active(db, project):
    job = make_job(project)
    job = fresh(db, job)
    job.next_run_at = None  # e.g. cleared by a reaper; the run end must schedule it again
    db.session.commit()
    run = claim(db, service.run_now(job))
    complete_run(run.id, [record("a"), record("b")], ["https://x.example.com/rss: HTTP 500"])
    run = runs_of(db, job)[0]
    assert (run.status, run.record_count, run.new_count) == ("completed", 2, 2)
    assert run.finished_at is not None
    assert "Some sources failed" in run.error
    job = fresh(db, job)
    assert job.state == "active"
    assert job.last_sync_at == run.finished_at
    assert job.next_run_at is not None and job.next_run_at > now()
    positions = db.session.scalars(
        select(Record.position).where(Record.run_id == run.id).order_by(Record.position)
    ).all()
    assert positions == [0, 1]


def test_only_records_unseen_in_earlier_runs_are_new(db, project):
    job = make_job(project)
    first = claim(db, service.run_now(job))
    complete_run(first.id, [record("a"), record("b")], [])
    second = claim(db, service.run_now(fresh(db, job)))
    complete_run(second.id, [record("b"), record("c")], [])
    second = db.session.get(Run, second.id)
    assert (second.record_count, second.new_count) == (2, 1)
    new = db.session.scalars(
        select(Record.fingerprint).where(Record.run_id == second.id, Record.is_new)
    ).all()
    assert new == ["c"]


def test_a_failed_run_stores_nothing_and_sends_the_job_to_failed(db, project):
    job = make_job(project)
    slot = job.next_run_at
    run = claim(db, service.run_now(job))
    fail_run(run.id, "Every source failed. https://x.example.com/rss: HTTP 500")
    run = runs_of(db, job)[0]
    assert run.status == "failed" and "HTTP 500" in run.error
    job = fresh(db, job)
    assert (job.state, job.next_run_at) == ("failed", None)
    assert "HTTP 500" in job.last_error
    assert db.session.scalar(select(func.count(Record.id))) == 0
    # No scheduled runs until a person resumes it: its old due entry fires into nothing.
    assert fire_slot(job.public_id, slot, slot).run is None
    assert len(runs_of(db, job)) == 1


def test_failing_an_already_finished_run_changes_nothing(db, project):
    job = make_job(project)
    run = claim(db, service.run_now(job))
    complete_run(run.id, [record("a")], [])
    fail_run(run.id, "late reaper")
    assert runs_of(db, job)[0].status == "completed"
    assert fresh(db, job).state == "active"


# --- update and delete -----------------------------------------------------------------------


def test_update_recomputes_the_next_run_only_when_the_schedule_changes(db, project):
    with time_machine.travel(T0, tick=False):
        job = make_job(project, schedule="every_hour")
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        service.update_job(fresh(db, job), {"name": "Renamed", "schedule": "every_hour"})
        assert fresh(db, job).next_run_at == utc(2026, 5, 1, 4)
        service.update_job(fresh(db, job), {"schedule": "daily"})
        assert fresh(db, job).next_run_at == utc(2026, 5, 2)


def test_update_refuses_unknown_and_read_only_fields(db, project):
    job = make_job(project)
    for data in ({"state": "running"}, {"next_run_at": None}, {"enabled": False}):
        with pytest.raises(ValidationError):
            service.update_job(fresh(db, job), data)
    job = fresh(db, job)
    assert (job.state, job.enabled) == ("active", True)
    assert job.next_run_at is not None


def test_delete_removes_the_job_its_runs_records_and_entry_only(db, project, redis_url):
    doomed, kept = make_job(project, name="doomed"), make_job(project, name="kept")
    for job in (doomed, kept):
        run = claim(db, service.run_now(fresh(db, job)))
        complete_run(run.id, [record(f"{job.name}-1"), record(f"{job.name}-2")], [])
    doomed_id = doomed.id
    service.delete_job(fresh(db, doomed))
    db.session.expire_all()
    assert db.session.get(Job, doomed_id) is None
    assert db.session.scalar(select(func.count(Run.id)).where(Run.job_id == doomed_id)) == 0
    assert db.session.scalar(select(func.count(Record.id)).where(Record.job_id == doomed_id)) == 0
    assert db.session.scalar(select(func.count(Record.id)).where(Record.job_id == kept.id)) == 2
    assert len(runs_of(db, kept)) == 1
    assert entries(redis_url, doomed) == set()
    assert len(entries(redis_url, kept)) == 1


# --- fire_slot -------------------------------------------------------------------------------


def due_job(db, project, slot: datetime, schedule: str = "every_hour") -> Job:
    job = make_job(project, schedule=schedule)
    job = fresh(db, job)
    job.next_run_at = slot
    db.session.commit()
    return job


def test_a_due_slot_becomes_one_queued_run_and_the_job_moves_to_its_next_slot(db, project):
    slot = utc(2026, 5, 1, 4)
    job = due_job(db, project, slot)
    result = fire_slot(job.public_id, slot, slot + timedelta(seconds=1))
    assert result.run is not None
    assert (result.run.status, result.run.trigger, result.run.scheduled_for) == (
        "queued",
        "schedule",
        slot,
    )
    assert result.following == utc(2026, 5, 1, 5)
    assert fresh(db, job).next_run_at == utc(2026, 5, 1, 5)
    assert len(runs_of(db, job)) == 1


def test_a_stale_slot_is_ignored(db, project):
    slot = utc(2026, 5, 1, 4)
    job = due_job(db, project, slot)
    result = fire_slot(job.public_id, slot - timedelta(hours=1), slot)  # the job was edited since
    assert (result.run, result.following) == (None, None)
    assert runs_of(db, job) == []
    assert fresh(db, job).next_run_at == slot


@pytest.mark.parametrize("state", ["paused", "failed"])
def test_a_slot_of_a_paused_or_failed_job_is_ignored(db, project, state):
    slot = utc(2026, 5, 1, 4)
    job = due_job(db, project, slot)
    job.state, job.enabled = state, state != "paused"
    db.session.commit()
    assert fire_slot(job.public_id, slot, slot).run is None
    assert runs_of(db, job) == []


def test_a_slot_of_a_deleted_job_is_ignored(db, project):
    assert fire_slot("job_01DELETEDDELETEDDELETED00", utc(2026, 5, 1), utc(2026, 5, 1)).run is None


@pytest.mark.parametrize("previous", ["queued", "running"])
def test_a_slot_due_while_a_run_is_in_progress_is_recorded_as_skipped(db, project, previous):
    slot = utc(2026, 5, 1, 4)
    job = due_job(db, project, slot)
    busy = Run(
        project_id=job.project_id,
        job_id=job.id,
        trigger="manual",
        scheduled_for=slot - timedelta(minutes=3),
        status=previous,
    )
    db.session.add(busy)
    db.session.commit()
    result = fire_slot(job.public_id, slot, slot + timedelta(seconds=2))
    assert result.run.status == "skipped"
    assert result.run.scheduled_for == slot
    assert result.run.finished_at == slot + timedelta(seconds=2)
    assert busy.public_id in result.run.error and f"still {previous}" in result.run.error
    assert [r.status for r in runs_of(db, job)] == [previous, "skipped"]  # not queued behind it
    assert fresh(db, job).next_run_at == utc(2026, 5, 1, 5)


def test_missed_slots_coalesce_into_one_run_for_the_latest_slot(db, project):
    missed = utc(2026, 5, 1, 0)
    job = due_job(db, project, missed)
    moment = utc(2026, 5, 1, 5, 42)  # five slots late
    result = fire_slot(job.public_id, missed, moment)
    assert result.run.status == "queued"
    assert result.run.scheduled_for == utc(2026, 5, 1, 5)
    assert result.following == utc(2026, 5, 1, 6)
    assert len(runs_of(db, job)) == 1


def test_missed_slots_coalesce_in_the_jobs_timezone(db, project):
    job = make_job(project, schedule="0 8 * * *", timezone="Europe/Berlin")
    missed = utc(2026, 4, 28, 6)  # 08:00 CEST
    job = fresh(db, job)
    job.next_run_at = missed
    db.session.commit()
    result = fire_slot(job.public_id, missed, utc(2026, 5, 1, 7))
    assert result.run.scheduled_for == utc(2026, 5, 1, 6)
    assert result.following == utc(2026, 5, 2, 6)


def test_a_second_scheduler_firing_the_same_slot_makes_no_duplicate(db, project):
    slot = utc(2026, 5, 1, 4)
    job = due_job(db, project, slot)
    assert fire_slot(job.public_id, slot, slot).run is not None
    # A second scheduler read the job before the first committed: it still sees `slot` due.
    job = fresh(db, job)
    job.next_run_at = slot
    db.session.commit()
    again = fire_slot(job.public_id, slot, slot + timedelta(seconds=1))
    assert (again.run, again.following) == (None, None)
    assert [r.scheduled_for for r in runs_of(db, job)] == [slot]


def test_one_run_per_job_and_slot_is_enforced_by_the_database(db, project):
    slot = utc(2026, 5, 1, 4)
    job, other = make_job(project, name="one"), make_job(project, name="two")

    def insert(for_job: Job) -> None:
        db.session.add(
            Run(
                project_id=for_job.project_id,
                job_id=for_job.id,
                trigger="schedule",
                scheduled_for=slot,
                status="queued",
            )
        )
        db.session.commit()

    insert(job)
    insert(other)  # the same slot of another job is fine
    with pytest.raises(IntegrityError):
        insert(job)
    db.session.rollback()
    assert db.session.scalar(select(func.count(Run.id))) == 2
