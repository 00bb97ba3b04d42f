"""The notifications outbox: a run's deliveries are planned once, each attempt is sent once,
failures are retried after the kind's backoff, and the schedule lives in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from conftest import make_job
from helpers import fresh
from redis import Redis
from sqlalchemy import select, update

from webapp.jobs import service
from webapp.models import Run
from webapp.notifications import outbox
from webapp.notifications.models import Delivery
from webapp.runs.lifecycle import claim_run, complete_run, fail_run
from webapp.timeutil import now


@pytest.fixture
def probe(monkeypatch):
    """A kind that plans one delivery per run and records what it sends; it fails on demand."""
    sent: list[tuple[str, int]] = []
    failures = {"left": 0, "retry": True}

    def send(delivery: Delivery) -> outbox.Outcome:
        sent.append((delivery.event, delivery.attempt))
        if failures["left"]:
            failures["left"] -= 1
            return outbox.Outcome(False, 503, "Service Unavailable", retry=failures["retry"])
        return outbox.Outcome(True, 200)

    kind = outbox.Kind(
        name="probe",
        plan=lambda run, job: [outbox.Planned("probe-target", f"{run.status}", {"n": 1})],
        send=send,
        backoff=lambda attempt: 30 * 2 ** (attempt - 1),
        max_attempts=3,
    )
    monkeypatch.setattr(outbox, "KINDS", {"probe": kind})
    return sent, failures


def finished_run(db, project, ok: bool = True) -> Run:
    run = service.run_now(make_job(project))
    assert claim_run(run.id)
    if ok:
        assert complete_run(run.id, [], [])
    else:
        assert fail_run(run.id, "Every source failed.")
    return fresh(db, Run, run.id)


def test_a_finished_run_plans_its_deliveries_once(db, project, probe):
    run = finished_run(db, project)
    assert outbox.plan_run(run.id) == 1
    assert outbox.plan_run(run.id) == 0  # a re-delivered notify message plans nothing more
    assert fresh(db, Run, run.id).notified_at is not None
    deliveries = db.session.scalars(select(Delivery)).all()
    assert [(d.kind, d.target, d.event, d.status, d.attempt) for d in deliveries] == [
        ("probe", "probe-target", "completed", "pending", 0)
    ]


def test_a_run_still_going_plans_nothing(db, project, probe):
    run = service.run_now(make_job(project))
    assert outbox.plan_run(run.id) == 0
    assert fresh(db, Run, run.id).notified_at is None


def test_a_failed_attempt_is_retried_after_the_backoff_then_delivered(db, project, probe):
    sent, failures = probe
    failures["left"] = 1
    run = finished_run(db, project, ok=False)
    outbox.plan_run(run.id)
    moment = now()
    assert outbox.deliver_due() == 1
    delivery = db.session.scalar(select(Delivery))
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempt, delivery.last_status_code) == ("pending", 1, 503)
    assert moment + timedelta(seconds=29) < delivery.next_attempt_at < now() + timedelta(seconds=31)
    assert outbox.deliver_due() == 0  # not due yet
    with time_machine.travel(now() + timedelta(seconds=31)):
        assert outbox.deliver_due() == 1
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempt) == ("delivered", 2)
    assert sent == [("failed", 1), ("failed", 2)]


def test_out_of_attempts_or_refused_for_good_a_delivery_fails(db, project, probe):
    sent, failures = probe
    failures["left"] = 10
    outbox.plan_run(finished_run(db, project).id)
    moment = now()
    for _ in range(5):
        with time_machine.travel(moment):
            outbox.deliver_due()
        moment += timedelta(hours=1)
    delivery = db.session.scalar(select(Delivery))
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempt) == ("failed", 3)  # the kind's max_attempts
    assert len(sent) == 3
    failures["retry"] = False
    outbox.plan_run(finished_run(db, project).id)
    outbox.deliver_due()
    second = db.session.scalars(select(Delivery).order_by(Delivery.id.desc())).first()
    assert (second.status, second.attempt) == ("failed", 1)  # no retry of a permanent refusal


def test_one_attempt_is_sent_once_however_many_workers_try(db, project, probe):
    sent, _ = probe
    outbox.plan_run(finished_run(db, project).id)
    snapshot = db.session.scalar(select(Delivery))
    db.session.expunge(snapshot)
    moment = now()
    assert outbox.deliver(snapshot, moment) == "delivered"
    assert outbox.deliver(snapshot, moment) is None  # the same claim, a second time
    assert len(sent) == 1


def test_a_sender_that_died_mid_attempt_leaves_a_lease_that_runs_out(db, project, probe):
    sent, _ = probe
    outbox.plan_run(finished_run(db, project).id)
    delivery = db.session.scalar(select(Delivery))
    assert outbox.claim(delivery, now())  # claimed, then the worker was killed
    assert outbox.deliver_due() == 0
    with time_machine.travel(now() + outbox.LEASE + timedelta(seconds=1)):
        assert outbox.deliver_due() == 1
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempt) == ("delivered", 2)  # the lost attempt counts
    assert sent == [("completed", 2)]


def test_the_sweep_replans_runs_whose_notify_message_was_lost(db, project, probe, redis_url):
    redis = Redis.from_url(redis_url)
    run = finished_run(db, project)
    redis.flushall()  # the notify message the run's end enqueued is gone
    db.session.execute(
        update(Run).where(Run.id == run.id).values(finished_at=now() - timedelta(seconds=30))
    )
    db.session.commit()
    outbox.sweep(redis)
    assert redis.hget(f"rq:job:notify-{run.public_id}", "status") == b"queued"
    outbox.plan_run(run.id)
    outbox.sweep(redis)  # a delivery is due: a sender is woken
    assert any(key.startswith(b"rq:job:send-due-") for key in redis.keys("rq:job:*"))
