"""Redis and RQ: the runs queue, the scheduler's due-time entries and the heartbeats.

The bottom layer of the engine: it imports nothing of the app. Redis holds only what is
here, and all of it can be rebuilt from the database (reconcile, the reaper).

A due-time entry is a member of rq-scheduler's sorted set, `slot-<job id>-<slot epoch>`,
scored by the slot's epoch. Its name carries everything the firing needs, so an entry is
added, found and removed by its id alone: no entry is ever looked up by scanning the set.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from redis import Redis
from rq import Queue

RUNS_QUEUE = "runs"
NOTIFICATIONS_QUEUE = "notifications"
SCHEDULED_JOBS_KEY = "rq:scheduler:scheduled_jobs"  # rq-scheduler's sorted set
RUN_TASK = "webapp.runs.executor.run_job"
QUERY_TASK = "webapp.runs.executor.run_query"
NOTIFY_TASK = "webapp.notifications.outbox.notify_run"
SEND_DUE_TASK = "webapp.notifications.outbox.send_due"
PRUNE_TASK = "webapp.storage.retention.prune_task"
NOTIFICATION_TASKS = {"notify": NOTIFY_TASK, "send_due": SEND_DUE_TASK, "prune": PRUNE_TASK}
NOTIFICATION_TIMEOUT = 600
HEARTBEATS_KEY = "bytestack:heartbeats:{kind}"  # a sorted set: process name -> unix time
# RQ statuses in which a queue message will still start (or is starting) its run.
LIVE_RQ_STATUSES = frozenset(("queued", "started", "deferred", "scheduled"))
ENTRY_PREFIX = "slot-"
PIPELINE_CHUNK = 1000


def connect(url: str, timeout: float) -> Redis:
    return Redis.from_url(
        url, socket_connect_timeout=min(timeout, 5), socket_timeout=timeout,
        health_check_interval=30,
    )


def get_redis() -> Redis:
    """The app's Redis client; its socket timeout is REDIS_TIMEOUT_SECONDS (short in web)."""
    redis = current_app.extensions.get("bytestack_redis")
    if redis is None:
        url = current_app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set: start the app with `make run` or set it.")
        redis = connect(url, current_app.config.get("REDIS_TIMEOUT_SECONDS", 2.0))
        current_app.extensions["bytestack_redis"] = redis
    return redis


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


# --- due-time entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    job: str  # the job's public id
    slot: int  # the slot's epoch

    @property
    def id(self) -> str:
        return f"{ENTRY_PREFIX}{self.job}-{self.slot}"

    @classmethod
    def of(cls, job_public_id: str, slot: datetime) -> Entry:
        return cls(job_public_id, epoch(slot))

    @classmethod
    def parse(cls, entry_id: str) -> Entry | None:
        if not entry_id.startswith(ENTRY_PREFIX):
            return None
        job, _, slot = entry_id[len(ENTRY_PREFIX) :].rpartition("-")
        if not job or not slot.isdigit():
            return None
        return cls(job, int(slot))


def slot_entry_id(job_public_id: str, slot: datetime) -> str:
    return Entry.of(job_public_id, slot).id


def move_entries(
    connection: Redis, add: Iterable[Entry] = (), remove: Iterable[Entry | str] = ()
) -> None:
    """Add and remove entries by id, in pipelined chunks (one round trip per chunk)."""
    removals = [e.id if isinstance(e, Entry) else e for e in remove]
    additions = {e.id: e.slot for e in add}
    removals = [r for r in removals if r not in additions]
    with connection.pipeline(transaction=False) as pipe:
        for start in range(0, len(removals), PIPELINE_CHUNK):
            pipe.zrem(SCHEDULED_JOBS_KEY, *removals[start : start + PIPELINE_CHUNK])
        items = list(additions.items())
        for start in range(0, len(items), PIPELINE_CHUNK):
            pipe.zadd(SCHEDULED_JOBS_KEY, dict(items[start : start + PIPELINE_CHUNK]))
        pipe.execute()


def due_entries(connection: Redis, until: float, limit: int) -> list[str]:
    return [
        raw.decode()
        for raw in connection.zrangebyscore(SCHEDULED_JOBS_KEY, 0, until, start=0, num=limit)
    ]


def next_due_time(connection: Redis) -> float | None:
    first = connection.zrange(SCHEDULED_JOBS_KEY, 0, 0, withscores=True)
    return first[0][1] if first else None


def all_entries(connection: Redis) -> dict[str, int]:
    """Every slot entry with its score; a full reconcile pass reads this once."""
    return {
        raw.decode(): int(score)
        for raw, score in connection.zscan_iter(SCHEDULED_JOBS_KEY, count=5000)
        if raw.startswith(ENTRY_PREFIX.encode())
    }


def entry_count(connection: Redis) -> int:
    return connection.zcard(SCHEDULED_JOBS_KEY)


# --- the runs queue --------------------------------------------------------------------------


def runs_queue(connection: Redis | None = None) -> Queue:
    return Queue(RUNS_QUEUE, connection=connection or get_redis())


def run_rq_id(job_public_id: str, scheduled_for: datetime) -> str:
    # Deterministic per slot, so enqueueing the same slot twice is one RQ job.
    return f"run-{job_public_id}-{int(scheduled_for.timestamp() * 1_000_000)}"


def query_rq_id(run_public_id: str) -> str:
    return f"query-{run_public_id}"


@dataclass(frozen=True)
class QueuedRun:
    """A run to hand to the queue: a job's slot, or a one-off query (job None)."""

    rq_id: str
    args: tuple

    @classmethod
    def of_job(cls, job_public_id: str, scheduled_for: datetime, scheduled_text: str) -> QueuedRun:
        return cls(run_rq_id(job_public_id, scheduled_for), (job_public_id, scheduled_text))

    @classmethod
    def of_query(cls, run_public_id: str) -> QueuedRun:
        return cls(query_rq_id(run_public_id), (run_public_id,))


def enqueue_runs(connection: Redis, runs: Iterable[QueuedRun], timeout: int) -> None:
    """Put runs on the queue in pipelined chunks; the same run twice is the same RQ job."""
    queue = runs_queue(connection)
    batch = list({run.rq_id: run for run in runs}.values())
    for start in range(0, len(batch), PIPELINE_CHUNK):
        datas = [
            Queue.prepare_data(
                QUERY_TASK if run.rq_id.startswith("query-") else RUN_TASK,
                args=run.args,
                job_id=run.rq_id,
                timeout=timeout,
                result_ttl=3600,
                failure_ttl=86400,
            )
            for run in batch[start : start + PIPELINE_CHUNK]
        ]
        with connection.pipeline() as pipe:
            queue.enqueue_many(datas, pipeline=pipe)
            pipe.execute()


def enqueue_notifications(connection: Redis, items: Iterable[tuple[str, str | int]]) -> None:
    """Queue ("notify", run public id), ("send_due", a waker's key) or ("prune", project id)
    on the notifications queue, which has workers of its own, so a slow receiver (or a long
    prune) never delays a run."""
    queue = Queue(NOTIFICATIONS_QUEUE, connection=connection)
    datas = [
        Queue.prepare_data(
            NOTIFICATION_TASKS[what],
            args=() if what == "send_due" else (key,),
            job_id=f"{what.replace('_', '-')}-{key}",
            timeout=NOTIFICATION_TIMEOUT,
            result_ttl=600,
            failure_ttl=86400,
        )
        for what, key in dict.fromkeys(items)
    ]
    if datas:
        with connection.pipeline() as pipe:
            queue.enqueue_many(datas, pipeline=pipe)
            pipe.execute()


def rq_statuses(connection: Redis, rq_ids: list[str]) -> dict[str, str | None]:
    """The RQ status of each message (None when Redis has no such message)."""
    with connection.pipeline(transaction=False) as pipe:
        for rq_id in rq_ids:
            pipe.hget(f"rq:job:{rq_id}", "status")
        answers = pipe.execute()
    return {
        rq_id: (status.decode() if status else None)
        for rq_id, status in zip(rq_ids, answers, strict=True)
    }


def rq_holders(connection: Redis, rq_ids: list[str]) -> dict[str, str]:
    """For each message a worker has started, the name of that worker."""
    with connection.pipeline(transaction=False) as pipe:
        for rq_id in rq_ids:
            pipe.hmget(f"rq:job:{rq_id}", "status", "worker_name")
        answers = pipe.execute()
    return {
        rq_id: worker.decode()
        for rq_id, (status, worker) in zip(rq_ids, answers, strict=True)
        if status == b"started" and worker
    }


def delete_rq_jobs(connection: Redis, rq_ids: list[str]) -> None:
    if rq_ids:
        connection.delete(*(f"rq:job:{rq_id}" for rq_id in rq_ids))


# --- heartbeats ------------------------------------------------------------------------------


def beat(connection: Redis, kind: str, name: str, keep_seconds: float = 3600) -> None:
    """Record that process `name` of `kind` ("scheduler", "worker") is alive now."""
    key = HEARTBEATS_KEY.format(kind=kind)
    moment = time.time()
    with connection.pipeline(transaction=False) as pipe:
        pipe.zadd(key, {name: moment})
        pipe.zremrangebyscore(key, 0, moment - keep_seconds)
        pipe.execute()


def forget_beat(connection: Redis, kind: str, name: str) -> None:
    connection.zrem(HEARTBEATS_KEY.format(kind=kind), name)


def fresh_beats(connection: Redis, kind: str, within: float) -> dict[str, float]:
    """Processes of `kind` whose last heartbeat is at most `within` seconds old."""
    key = HEARTBEATS_KEY.format(kind=kind)
    return {
        raw.decode(): score
        for raw, score in connection.zrangebyscore(
            key, time.time() - within, "+inf", withscores=True
        )
    }


def last_beat(connection: Redis, kind: str) -> float | None:
    newest = connection.zrevrange(HEARTBEATS_KEY.format(kind=kind), 0, 0, withscores=True)
    return newest[0][1] if newest else None
