"""What /healthz reports: the database, Redis, the scheduler and the workers, each alive or
not with its reason. The scheduler and the workers are alive when their heartbeat is fresh."""

from __future__ import annotations

import logging
import time

from flask import current_app
from sqlalchemy import text

from .extensions import db
from .queueing import fresh_beats, get_redis, last_beat

log = logging.getLogger(__name__)
# The scheduler beats every tick (about a second); a worker every ~20 s idle, 5 s busy.
SCHEDULER_STALE_SECONDS = 30.0
WORKER_STALE_SECONDS = 60.0
OK = "ok"
# Pages ask whether the queue answers; one ping per process every few seconds is enough.
_QUEUE_STATE_TTL = 5.0


def _silence(kind: str, connection) -> str:
    newest = last_beat(connection, kind)
    if newest is None:
        return f"no {kind} has sent a heartbeat"
    return f"no {kind} heartbeat for {int(time.time() - newest)} s"


def health_checks() -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = OK
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        connection = get_redis()
        connection.ping()
        checks["redis"] = OK
    except Exception as exc:
        reason = f"unreachable: {type(exc).__name__}"
        checks.update(redis=reason, scheduler="unknown: Redis is " + reason,
                      workers="unknown: Redis is " + reason)
    else:
        schedulers = fresh_beats(connection, "scheduler", SCHEDULER_STALE_SECONDS)
        checks["scheduler"] = OK if schedulers else _silence("scheduler", connection)
        workers = fresh_beats(connection, "worker", WORKER_STALE_SECONDS)
        checks["workers"] = OK if workers else _silence("worker", connection)
    return all(value == OK for value in checks.values()), checks


def queue_reachable() -> bool:
    """Whether Redis answered a ping in the last few seconds (cached per process)."""
    state = current_app.extensions.setdefault(
        "bytestack_queue_state", {"checked": -_QUEUE_STATE_TTL, "reachable": True}
    )
    moment = time.monotonic()
    if moment - state["checked"] >= _QUEUE_STATE_TTL:
        try:
            get_redis().ping()
            state["reachable"] = True
        except Exception as exc:
            if state["reachable"]:
                log.warning("the queue (Redis) is unreachable: %s", exc)
            state["reachable"] = False
        state["checked"] = time.monotonic()
    return state["reachable"]
