"""What a worker does for one run: claim it, fetch its sources, filter, store, rest the job.

Work is bounded: the sources of a run are fetched concurrently (so one slow source costs
its own run only), each fetch has a total deadline in the HTTP client, and the run has a
budget (BYTESTACK_RUN_TIMEOUT) below its queue timeout, so it fails with a readable reason
instead of being killed. SIGTERM (a deploy, Ctrl-C) gives the run
BYTESTACK_WORKER_GRACE_SECONDS to finish; after that it is handed back to the queue.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from ..dates import stored_window
from ..extensions import db
from ..fingerprint import domain_of, fingerprint
from ..models import Job, Run
from ..prompt import parse_prompt, resolve_window
from ..sources import FetchContext, SourceError, fetch_source, source_label
from ..sources.credentials import project_credentials
from ..sources.http import FetchError, FetchPolicy
from ..timeutil import Backoff, now, parse_timestamp
from .lifecycle import claim_run, complete_run, fail_run, hand_back_run, skip_run

log = logging.getLogger("bytestack.worker")
FIRST_RUN_WINDOW = timedelta(hours=24)
POLL_SECONDS = 0.2
# How long a run that is done fetching keeps trying to write its outcome while the database
# is unreachable (a restart, a failover, a network cut), and the longest wait between tries.
# Meanwhile its queue message stays `started` by a live worker, so the reaper leaves it be.
FINISH_RETRY_SECONDS = 120.0
FINISH_RETRY_MAX_WAIT = 5.0


class RunFailed(Exception):
    pass


class HandBack(Exception):
    """The worker is stopping and the run could not finish within the grace period."""


@dataclass(frozen=True)
class QuerySpec:
    """What a run looks for: a job's saved query, or a one-off query's parameters."""

    prompt: str
    sources: list
    date_range: dict | None
    limit: int
    timezone: str = "UTC"

    @classmethod
    def of_job(cls, job: Job) -> QuerySpec:
        return cls(job.prompt, job.sources, job.date_range, job.limit, job.timezone)

    @classmethod
    def of_query(cls, run: Run) -> QuerySpec:
        params = run.params or {}
        return cls(params["prompt"], params["sources"], params.get("date_range"), params["limit"])


class StopSignal:
    """SIGTERM in the work horse: note when it came, so the run can finish within the grace
    period or hand itself back; never die in the middle of a run."""

    def __init__(self):
        self.since: float | None = None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._received)

    def _received(self, *_args) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.info("stop requested: the current run gets its grace period")

    def expired(self, grace: float) -> bool:
        return self.since is not None and time.monotonic() - self.since >= grace


_stop = StopSignal()


def run_job(job_id: str, scheduled_for: str) -> str:
    """The RQ task: run one slot of one job. Idempotent: a finished run is left alone.

    It runs in the app context that RunWorker opens around every task (webapp/runs/worker.py).
    """
    _stop.install()
    try:
        return execute_run(job_id, parse_timestamp(scheduled_for))
    finally:
        db.session.remove()


def run_query(run_id: str) -> str:
    """The RQ task for a one-off query: the same fetching as a job's run, with no job."""
    _stop.install()
    try:
        return execute_query(run_id)
    finally:
        db.session.remove()


def execute_query(run_public_id: str) -> str:
    run = db.session.scalar(select(Run).where(Run.public_id == run_public_id))
    if run is None or run.job_id is not None:
        return "no such query"
    if not claim_run(run.id):
        return f"query {run.public_id} already {run.status}"
    db.session.refresh(run)
    return _fetch_and_finish(run, QuerySpec.of_query(run), None)


def execute_run(job_public_id: str, scheduled_for: datetime) -> str:
    job = db.session.scalar(select(Job).where(Job.public_id == job_public_id))
    if job is None:
        return "job deleted"
    run = db.session.scalar(
        select(Run).where(Run.job_id == job.id, Run.scheduled_for == scheduled_for)
    )
    if run is None:
        return "no such run"
    if run.trigger == "schedule" and not job.enabled and run.status == "queued":
        skip_run(run.id, "Skipped: the job was paused.")
        return "skipped"
    if not claim_run(run.id):
        return f"run {run.public_id} already {run.status}"
    db.session.refresh(run)
    db.session.refresh(job)
    log.info("run started run=%s job=%s", run.public_id, job.public_id)
    return _fetch_and_finish(run, QuerySpec.of_job(job), job.id)


def _fetch_and_finish(run: Run, spec: QuerySpec, job_pk: int | None) -> str:
    config = current_app.config
    budget = config["RUN_TIMEOUT_SECONDS"]
    heartbeat = Heartbeat(db.engine, run.id, config["HEARTBEAT_SECONDS"])
    heartbeat.start()
    try:
        return _finish(run, spec, job_pk, budget)
    finally:
        heartbeat.stop()


def _finish(run: Run, spec: QuerySpec, job_pk: int | None, budget: float) -> str:
    # Plain values: after the rollbacks below `run` is expired, and reading it again would
    # need the database, which may be unreachable by the time the sources are fetched.
    run_id, public_id, project_id = run.id, run.public_id, run.project_id
    try:
        since, until = date_window(spec, run, job_pk)
        db.session.rollback()  # no transaction stays open while the sources are fetched
        records, partial_errors = collect_records(
            spec, run_id, project_id, since, until, time.monotonic() + budget
        )
    except HandBack:
        _written(public_id, hand_back_run, run_id)
        return "handed back"
    except JobTimeoutException:
        reason = f"The run exceeded its timeout of {budget} s and was stopped."
        _written(public_id, fail_run, run_id, reason)
        return "timeout"
    except RunFailed as exc:
        _written(public_id, fail_run, run_id, str(exc))
        return "failed"
    except Exception as exc:  # a bug in a source must fail the run, not the worker
        log.exception("run crashed run=%s", public_id)
        reason = f"Internal error while running: {type(exc).__name__}: {exc}"
        _written(public_id, fail_run, run_id, reason)
        return "failed"
    completed = _written(public_id, complete_run, run_id, records, partial_errors)
    return "completed" if completed else "dropped"


def _written(public_id: str, write: Callable, *args):
    """A run's finishing write (complete, fail, hand back), tried again while the database is
    unreachable: what the run fetched is not lost to a database restart that ends within
    FINISH_RETRY_SECONDS. Each write is one transaction on the expected status, so a try that
    did commit before its connection dropped makes the next one a no-op."""
    give_up = time.monotonic() + FINISH_RETRY_SECONDS
    backoff = Backoff(0.5, FINISH_RETRY_MAX_WAIT)
    while True:
        try:
            return write(*args)
        except (OperationalError, InterfaceError) as exc:
            try:
                db.session.rollback()
            except Exception:  # the connection is gone; the session starts afresh anyway
                pass
            wait_seconds = backoff.next()
            if time.monotonic() + wait_seconds > give_up:
                raise
            log.warning("database unreachable while finishing run=%s (%s); retrying in %.1f s",
                        public_id, str(exc.orig or exc).splitlines()[0], wait_seconds)
            time.sleep(wait_seconds)


class Heartbeat:
    """Touches the run's heartbeat_at from a thread, so the reaper can tell a dead worker."""

    def __init__(self, engine, run_id: int, every: float):
        self.engine, self.run_id, self.every = engine, run_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.engine.begin() as connection:
                    connection.execute(
                        update(Run)
                        .where(Run.id == self.run_id, Run.status == "running")
                        .values(heartbeat_at=now())
                    )
            except Exception as exc:  # a missed beat is retried; the reaper allows slack
                log.warning("heartbeat failed run_id=%s: %s", self.run_id, exc)


def date_window(
    spec: QuerySpec, run: Run, job_pk: int | None
) -> tuple[datetime | None, datetime | None]:
    started = run.started_at or now()
    window = stored_window(spec.date_range, started)
    if window is not None:
        return window
    plan = parse_prompt(spec.prompt)
    if plan.window:
        return resolve_window(plan.window, started, spec.timezone)
    if job_pk is None:
        return None, None  # a one-off query without a range: the newest the sources have
    previous = db.session.scalar(
        select(Run.started_at)
        .where(Run.job_id == job_pk, Run.status == "completed", Run.id != run.id)
        .order_by(Run.started_at.desc())
        .limit(1)
    )
    return (previous or started - FIRST_RUN_WINDOW), None


def fetch_all(
    sources: list,
    context: FetchContext,
    deadline: float,
    concurrency: int,
    grace: float,
    on_source_done: Callable[[int, list], None] = lambda done, items: None,
) -> tuple[list, list[str]]:
    """Fetch every source on its own thread; a source still going at the deadline counts as
    failed. Results keep the order of `sources`. Raise HandBack when a stop outlasts grace.
    `on_source_done(sources done so far, that source's items)` follows each one."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(sources), concurrency)),
                              thread_name_prefix="fetch")
    futures: dict[Future, int] = {
        pool.submit(fetch_source, source, context): index for index, source in enumerate(sources)
    }
    results: dict[int, list] = {}
    errors: dict[int, str] = {}
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                try:
                    results[index] = future.result()
                except (SourceError, FetchError) as exc:
                    errors[index] = f"{source_label(sources[index])}: {exc}"
                on_source_done(len(results) + len(errors), results.get(index, []))
            if _stop.expired(grace) and pending:
                raise HandBack()
            if pending and time.monotonic() >= deadline:
                for future in pending:
                    index = futures[future]
                    errors[index] = (
                        f"{source_label(sources[index])}: did not finish within the run's "
                        f"budget of {current_app.config['RUN_TIMEOUT_SECONDS']} s."
                    )
                break
    finally:
        # Threads still fetching are abandoned; the work horse exits after the run.
        pool.shutdown(wait=False, cancel_futures=True)
    found = [item for index in sorted(results) for item in results[index]]
    return found, [errors[index] for index in sorted(errors)]


class Progress:
    """What a running run has done so far, written to `Run.progress` for the dashboard."""

    def __init__(self, engine, run_id: int, total: int, plan):
        self.engine, self.run_id, self.plan = engine, run_id, plan
        self.value = {"sources_done": 0, "sources_total": total, "records": 0}
        self._write()

    def source_done(self, done: int, items: list) -> None:
        self.value["sources_done"] = done
        self.value["records"] += sum(1 for i in items if self.plan.matches(i.title, i.text))
        self._write()

    def _write(self) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(Run)
                    .where(Run.id == self.run_id, Run.status == "running")
                    .values(progress=dict(self.value))
                )
        except Exception as exc:  # progress is a nicety: never fail a run over it
            log.warning("progress not written run_id=%s: %s", self.run_id, exc)


def collect_records(
    spec: QuerySpec,
    run_id: int,
    project_id: int,
    since: datetime | None,
    until: datetime | None,
    deadline: float,
) -> tuple[list[dict], list[str]]:
    config = current_app.config
    plan = parse_prompt(spec.prompt)
    context = FetchContext(
        policy=FetchPolicy(
            timeout=config["FETCH_TIMEOUT_SECONDS"],
            max_bytes=config["FETCH_MAX_BYTES"],
            allow_private=config["ALLOW_PRIVATE_NETWORKS"],
            min_interval=config["FETCH_MIN_INTERVAL"],
            retries=config["FETCH_RETRIES"],
        ),
        local_files_dir=config["LOCAL_FILES_DIR"],
        since=since,
        until=until,
        limit=spec.limit,
        query=plan.query_string(),
        credentials=project_credentials(project_id),
    )
    db.session.rollback()
    progress = Progress(db.engine, run_id, len(spec.sources), plan)
    found, errors = fetch_all(
        spec.sources, context, deadline, config["FETCH_CONCURRENCY"],
        config["WORKER_GRACE_SECONDS"], progress.source_done,
    )
    if errors and len(errors) == len(spec.sources):
        raise RunFailed("Every source failed. " + " ".join(errors))

    selected: dict[str, dict] = {}
    for item in found:
        if not plan.matches(item.title, item.text):
            continue
        if item.published_at is not None:
            if since is not None and item.published_at < since:
                continue
            if until is not None and item.published_at > until:
                continue
        key = fingerprint(item.source, item.url, item.platform_id, item.title)
        if key in selected:
            continue
        selected[key] = {
            "source": item.source,
            "fingerprint": key,
            "url": item.url,
            "domain": domain_of(item.url),
            "title": item.title,
            "text": item.text,
            "author": item.author,
            "published_at": item.published_at,
            "metrics": item.metrics,
            "raw": _jsonable(item.raw),
        }
    # Newest first across all sources; undated records after the dated ones.
    ordered = sorted(
        selected.values(),
        key=lambda r: (r["published_at"] is not None, r["published_at"] or since or now()),
        reverse=True,
    )
    return ordered[: spec.limit], errors


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
