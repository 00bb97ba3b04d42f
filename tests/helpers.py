"""Helpers shared by the test modules: fixed instants, fresh rows, a job's runs, due slots,
the web process as the Procfile starts it."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from webapp.models import Job, Run
from webapp.timeutil import now

# A fixed instant for time-machine: a Friday in May, between two hourly slots.
T0 = datetime(2026, 5, 1, 3, 17, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fresh(db, model, row_id):
    """The row as the database has it now (nothing from the session's cache)."""
    db.session.expire_all()
    return db.session.get(model, row_id)


def runs_of(db, job, status: str | None = None, slot: datetime | None = None) -> list[Run]:
    """A job's runs, oldest first, optionally of one status or one slot. Holds no read
    transaction afterwards (fault tests lock tables meanwhile)."""
    db.session.expire_all()
    query = select(Run).where(Run.job_id == job.id).order_by(Run.id)
    if status:
        query = query.where(Run.status == status)
    if slot is not None:
        query = query.where(Run.scheduled_for == slot)
    runs = db.session.scalars(query).all()
    db.session.rollback()
    return runs


def set_next_run(db, job, slot: datetime) -> datetime:
    """Move a job's next slot in SQL; the scheduler's reconcile pass picks it up."""
    db.session.execute(update(Job).where(Job.id == job.id).values(next_run_at=slot))
    db.session.commit()
    return slot


def due_in(db, job, seconds: float) -> datetime:
    """Make a job's next slot fall due in `seconds` (a whole second); returns the slot."""
    return set_next_run(db, job, (now() + timedelta(seconds=seconds)).replace(microsecond=0))


# The web process as the Procfile and `make run` start it (its settings module included).
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf"]


def platform_env(test_env: dict, **changes: str) -> dict:
    """The tests' environment as a platform would give it: no BYTESTACK_ENV, so each process
    has its entry point's default."""
    env = {**os.environ, **test_env, **changes}
    env.pop("BYTESTACK_ENV", None)
    return env
