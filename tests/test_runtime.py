"""The invariants of DESIGN.md, with a real Redis server, real worker and scheduler
processes and a real local HTTP server serving feeds."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from conftest import make_job
from feeds import rss_document, wait_until
from helpers import due_in, fresh, runs_of
from redis import Redis
from sqlalchemy import func, select

from webapp.models import Job, Record, Run
from webapp.queueing import SCHEDULED_JOBS_KEY
from webapp.timeutil import now

pytestmark = pytest.mark.integration

ITEMS = [
    {"title": "Acme launches a rocket", "link": "https://news.example.com/a/1"},
    {"title": "Acme hires", "link": "https://news.example.com/a/2", "description": "jobs at acme"},
    {"title": "Unrelated story", "link": "https://news.example.com/a/3"},
]





def test_scheduled_slot_runs_on_a_worker_and_stores_matching_records(db, project, feed_server, processes):
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, sources=[url], prompt="acme", schedule="* * * * *")
    processes.worker()
    processes.scheduler()
    due_in(db, job, 1)
    run = wait_until(lambda: runs_of(db, job, "completed"), 30, message="a completed run")[0]
    assert run.trigger == "schedule"
    assert run.record_count == 2 and run.new_count == 2
    titles = {r.title for r in db.session.scalars(select(Record).where(Record.run_id == run.id))}
    assert titles == {"Acme launches a rocket", "Acme hires"}
    job = fresh(db, Job, job.id)
    assert job.state == "active"
    assert job.last_sync_at is not None
    assert job.next_run_at > now()  # the following slot was scheduled at fire time


def test_second_run_marks_only_unseen_records_new(db, project, feed_server, processes):
    items = list(ITEMS)
    url = feed_server.serve("/feed.xml", lambda: rss_document(items))
    job = make_job(project, sources=[url], prompt="acme", date_range={"last": "7d"})
    processes.worker()
    with processes_app_context(db):
        from webapp.jobs.service import run_now

        run_now(fresh(db, Job, job.id))
    wait_until(lambda: runs_of(db, job, "completed"), 30)
    items.append({"title": "Acme again", "link": "https://news.example.com/a/4?utm_source=x"})
    wait_until(lambda: fresh(db, Job, job.id).state == "active", 10)
    from webapp.jobs.service import run_now

    run_now(fresh(db, Job, job.id))
    second = wait_until(lambda: runs_of(db, job, "completed")[1:], 30)[0]
    assert (second.record_count, second.new_count) == (3, 1)
    new = db.session.scalars(select(Record).where(Record.run_id == second.id, Record.is_new)).all()
    assert [r.title for r in new] == ["Acme again"]


class processes_app_context:
    """Readability helper: the app context is already pushed by the `app` fixture."""

    def __init__(self, db):
        self.db = db

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        return False


def test_a_slot_due_while_the_previous_run_is_going_is_recorded_as_skipped(
    db, project, feed_server, processes
):
    url = feed_server.serve("/slow.xml", rss_document(ITEMS), delay=4)
    job = make_job(project, sources=[url], prompt="acme", schedule="* * * * *")
    processes.worker()
    processes.scheduler()
    due_in(db, job, 1)
    wait_until(lambda: runs_of(db, job, "running"), 20, message="the first run running")
    # The following slot is a minute away: bring it forward while the first run is going.
    due_in(db, job, 1)
    skipped = wait_until(lambda: runs_of(db, job, "skipped"), 20, message="a skipped run")[0]
    assert "still running" in skipped.error
    wait_until(lambda: runs_of(db, job, "completed"), 30)
    statuses = sorted(r.status for r in runs_of(db, job))
    assert statuses == ["completed", "skipped"]  # the skipped slot was not queued behind it


def test_after_downtime_missed_slots_coalesce_into_one_catch_up_run(db, project, feed_server, processes):
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, sources=[url], prompt="acme", schedule="every_hour")
    job = fresh(db, Job, job.id)
    missed_since = now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    job.next_run_at = missed_since  # the scheduler was down for five slots
    db.session.commit()
    processes.worker()
    processes.scheduler()
    run = wait_until(lambda: runs_of(db, job, "completed"), 30)[0]
    assert run.scheduled_for == now().replace(minute=0, second=0, microsecond=0)
    assert len(runs_of(db, job)) == 1
    job = fresh(db, Job, job.id)
    assert job.next_run_at == run.scheduled_for + timedelta(hours=1)


def test_reaper_fails_a_run_whose_worker_was_killed_and_the_job_goes_to_failed(
    db, project, feed_server, processes
):
    processes.env["BYTESTACK_FETCH_TIMEOUT"] = "60"
    url = feed_server.serve("/hang.xml", rss_document(ITEMS), delay=60)
    job = make_job(project, sources=[url], prompt="acme")
    processes.worker("doomed")
    from webapp.jobs.service import run_now

    run = run_now(fresh(db, Job, job.id))
    wait_until(lambda: fresh(db, Run, run.id).status == "running", 20)
    processes.kill("doomed", signal.SIGKILL)  # the worker and its work horse, like a lost machine
    processes.scheduler()
    run = wait_until(lambda: (r := fresh(db, Run, run.id)).status == "failed" and r, 30)
    assert "stopped responding" in run.error
    job = fresh(db, Job, job.id)
    assert job.state == "failed"
    assert job.next_run_at is None
    assert db.session.scalar(select(func.count(Record.id)).where(Record.run_id == run.id)) == 0
    # The worker pool goes on: a new worker runs the job after a resume.
    feed_server.serve("/hang.xml", rss_document(ITEMS))
    processes.worker()
    from webapp.jobs.service import resume_job

    resume_job(job)
    run_now(fresh(db, Job, job.id))
    wait_until(lambda: runs_of(db, job, "completed"), 30)


def test_a_run_past_its_budget_is_failed_with_its_reason_and_the_worker_keeps_going(
    app, db, project, feed_server, processes
):
    """DESIGN.md: a run has a budget below its queue timeout, so it fails cleanly by itself."""
    app.config["RUN_TIMEOUT_SECONDS"] = 2  # the queue carries the timeout set at enqueue
    processes.env["BYTESTACK_RUN_TIMEOUT"] = "2"
    processes.env["BYTESTACK_FETCH_TIMEOUT"] = "30"
    url = feed_server.serve("/hang.xml", rss_document(ITEMS), delay=20)
    job = make_job(project, sources=[url], prompt="acme")
    processes.worker()
    from webapp.jobs.service import run_now

    run = run_now(fresh(db, Job, job.id))
    run = wait_until(lambda: (r := fresh(db, Run, run.id)).status == "failed" and r, 30)
    assert "did not finish within the run's budget of 2 s" in run.error
    assert run.duration_ms < 5000  # the budget, not the source's 20 s
    assert fresh(db, Job, job.id).state == "failed"
    assert processes.running["worker"].poll() is None


def test_a_broken_source_fails_its_run_with_a_readable_reason(db, project, feed_server, processes):
    url = feed_server.serve("/gone.xml", b"nope", status=500)
    job = make_job(project, sources=[url], prompt="acme")
    processes.worker()
    from webapp.jobs.service import run_now

    run = run_now(fresh(db, Job, job.id))
    run = wait_until(lambda: (r := fresh(db, Run, run.id)).status == "failed" and r, 30)
    assert "HTTP 500" in run.error
    assert processes.running["worker"].poll() is None


def test_reconcile_rebuilds_every_due_entry_after_a_redis_flush(db, project, redis_url, processes):
    jobs = [make_job(project, name=f"job {i}", schedule="daily") for i in range(3)]
    paused = make_job(project, name="paused")
    from webapp.jobs.service import pause_job

    pause_job(paused)
    redis = Redis.from_url(redis_url)
    processes.scheduler()

    def entries():
        return {raw.decode() for raw in redis.zrange(SCHEDULED_JOBS_KEY, 0, -1)}

    wait_until(lambda: len(entries()) == 3, 10)
    redis.flushall()
    rebuilt = wait_until(lambda: (e := entries()) and len(e) == 3 and e, 10)
    assert all(any(j.public_id in e for e in rebuilt) for j in jobs)
    assert not any(paused.public_id in e for e in rebuilt)


def test_two_schedulers_make_one_run_per_slot(db, project, feed_server, processes):
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, sources=[url], prompt="acme", schedule="* * * * *")
    processes.worker()
    processes.scheduler("scheduler-a")
    processes.scheduler("scheduler-b")
    due_in(db, job, 1)
    wait_until(lambda: runs_of(db, job, "completed"), 30)
    slots = [r.scheduled_for for r in runs_of(db, job)]
    assert len(slots) == len(set(slots)) == 1
