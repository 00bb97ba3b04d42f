"""The outbox every delivery goes through.

A run's end enqueues `notify_run`; it plans the run's deliveries once (compare-and-set on
`Run.notified_at`), one row per (kind, target), then sends what is due. A delivery is claimed
by a compare-and-set on its status and attempt count, so two workers, or a queue message
delivered twice, never send one attempt twice. A failed attempt is retried after the kind's
backoff; a worker that dies mid-send leaves a lease that runs out, and the attempt counts.
The scheduler's sweep re-plans runs whose notify message was lost and wakes the senders when
deliveries fall due, so retries survive any restart: their schedule is in the database.

Each kind (webhook, alert, bucket …) registers a `Kind`: what a run plans, and how to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import select, update

from ..extensions import db, upsert_insert
from ..ids import new_public_id
from ..models import Job, Run
from ..queueing import enqueue_notifications
from ..timeutil import now
from .models import Delivery

log = logging.getLogger("bytestack.notifications")
# A claimed delivery belongs to its worker this long; then it is due again (attempt counted).
LEASE = timedelta(seconds=60)
DELIVER_BATCH = 100
# Runs whose notify message may have been lost are looked for this far back.
SWEEP_LOOKBACK = timedelta(days=1)
SWEEP_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Planned:
    """A delivery a kind wants for a run: to `target`, of `event`, carrying `payload`."""

    target: str
    event: str
    payload: dict[str, Any] = field(default_factory=dict)
    due: datetime | None = None  # None: now (a digest names its next send time)


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    retry: bool = True  # False: a permanent refusal (a bad URL); no further attempts


@dataclass(frozen=True)
class Kind:
    """How one kind of delivery is planned for a run and sent."""

    name: str
    plan: Callable[[Run, Job | None], list[Planned]]
    send: Callable[[Delivery], Outcome]
    backoff: Callable[[int], float]  # seconds to wait after failed attempt n (from 1)
    max_attempts: int = 5


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind


def plan_run(run_id: int) -> int:
    """Plan a finished run's deliveries, once; returns how many were planned."""
    moment = now()
    won = db.session.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.notified_at.is_(None),
            Run.status.in_(("completed", "failed")),
        )
        .values(notified_at=moment)
    ).rowcount
    if not won:
        db.session.rollback()
        return 0
    run = db.session.get(Run, run_id)
    job = db.session.get(Job, run.job_id) if run.job_id is not None else None
    rows = []
    for kind in KINDS.values():
        try:
            planned = kind.plan(run, job)
        except Exception:  # one broken kind must not keep the others from their deliveries
            log.exception("planning %s deliveries of run %s failed", kind.name, run.public_id)
            continue
        rows += [
            {
                "public_id": new_public_id("dlv"),
                "project_id": run.project_id,
                "run_id": run.id,
                "job_id": run.job_id,
                "kind": kind.name,
                "target": item.target,
                "event": item.event,
                "payload": item.payload,
                "status": "pending",
                "attempt": 0,
                "next_attempt_at": item.due or moment,
                "created_at": moment,
            }
            for item in planned
        ]
    if rows:
        db.session.execute(upsert_insert(Delivery).on_conflict_do_nothing(), rows)
    db.session.commit()
    return len(rows)


def _due(moment: datetime):
    return (
        Delivery.status.in_(("pending", "sending")),
        Delivery.next_attempt_at <= moment,
    )


def claim(delivery: Delivery, moment: datetime) -> bool:
    """Take one due delivery for one attempt (compare-and-set on its status and attempt)."""
    claimed = db.session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status == delivery.status,
            Delivery.attempt == delivery.attempt,
            *_due(moment),
        )
        .values(status="sending", attempt=delivery.attempt + 1, next_attempt_at=moment + LEASE)
    ).rowcount
    db.session.commit()
    return bool(claimed)


def record(delivery_id: int, attempt: int, outcome: Outcome) -> str:
    """Write an attempt's outcome (only if the delivery is still this attempt's); the status."""
    delivery = db.session.get(Delivery, delivery_id)
    kind = KINDS.get(delivery.kind)
    moment = now()
    values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        values.update(status="delivered", delivered_at=moment, next_attempt_at=None)
    elif outcome.retry and kind is not None and attempt < kind.max_attempts:
        values.update(
            status="pending", next_attempt_at=moment + timedelta(seconds=kind.backoff(attempt))
        )
    else:
        values.update(status="failed", next_attempt_at=None)
    db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == "sending",
               Delivery.attempt == attempt)
        .values(**values)
    )
    db.session.commit()
    return values["status"]


def deliver(delivery: Delivery, moment: datetime) -> str | None:
    """One attempt of one delivery, if it can be claimed; the status it ends in."""
    kind = KINDS.get(delivery.kind)
    attempt = delivery.attempt + 1  # read before the claim's commit refreshes the row
    if kind is None or not claim(delivery, moment):
        return None
    delivery = db.session.get(Delivery, delivery.id)
    db.session.refresh(delivery)
    try:
        outcome = kind.send(delivery)
    except Exception as exc:  # a bug in one kind fails its attempt, never the worker
        log.exception("sending delivery %s failed", delivery.public_id)
        outcome = Outcome(False, error=f"Internal error while sending: {type(exc).__name__}")
    db.session.rollback()
    status = record(delivery.id, attempt, outcome)
    log.info("delivery %s (%s to %s) attempt %d: %s", delivery.public_id, delivery.kind,
             delivery.target, attempt, status)
    return status


def deliver_due(limit: int = DELIVER_BATCH) -> int:
    """Send every delivery due now (up to `limit`); returns how many attempts were made."""
    moment = now()
    due = db.session.scalars(
        select(Delivery).where(*_due(moment)).order_by(Delivery.next_attempt_at).limit(limit)
    ).all()
    db.session.rollback()
    return sum(1 for delivery in due if deliver(delivery, moment) is not None)


# --- the RQ tasks (they run in the app context RunWorker opens) ----------------------------


def notify_run(run_public_id: str) -> str:
    """The RQ task a run's end enqueues: plan its deliveries, then send what is due."""
    try:
        run_id = db.session.scalar(select(Run.id).where(Run.public_id == run_public_id))
        planned = plan_run(run_id) if run_id is not None else 0
        return f"planned {planned}, sent {deliver_due()}"
    finally:
        db.session.remove()


def send_due() -> str:
    """The RQ task the scheduler's sweep enqueues when deliveries fall due."""
    try:
        return f"sent {deliver_due()}"
    finally:
        db.session.remove()


# --- the scheduler's sweep -------------------------------------------------------------------


def sweep(connection: Redis) -> None:
    """Re-enqueue the planning of finished runs whose notify message was lost, and wake the
    senders when deliveries are due (retries, digests, expired leases)."""
    moment = now()
    lost = db.session.scalars(
        select(Run.public_id)
        .where(
            Run.notified_at.is_(None),
            Run.status.in_(("completed", "failed")),
            Run.finished_at < moment - SWEEP_GRACE,
            Run.finished_at > moment - SWEEP_LOOKBACK,
        )
        .limit(500)
    ).all()
    due = db.session.scalar(select(Delivery.id).where(*_due(moment)).limit(1)) is not None
    db.session.rollback()
    if lost:
        enqueue_notifications(connection, [("notify", public_id) for public_id in lost])
    if due:
        # One waker per few seconds is enough: every sender takes what is due when it runs.
        enqueue_notifications(connection, [("send_due", f"{int(time.time() // 5)}")])

