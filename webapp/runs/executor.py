"""What a worker does for one run: claim it, fetch, filter, store, return the job to rest."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from rq.timeouts import JobTimeoutException
from sqlalchemy import select, update

from ..extensions import db
from ..fingerprint import domain_of, fingerprint
from ..models import Job, Record, Run
from ..prompt import parse_prompt, resolve_window
from ..settings.credentials import project_credentials
from ..sources import FetchContext, SourceError, fetch_source, source_label
from ..sources.http import FetchError, FetchPolicy
from ..timeutil import now, parse_timestamp

log = logging.getLogger("bytestack.worker")
FIRST_RUN_WINDOW = timedelta(hours=24)
_app: Flask | None = None


class RunFailed(Exception):
    pass


@dataclass(frozen=True)
class QuerySpec:
    """What a run looks for: a job's saved query, or a one-off query's parameters."""

    prompt: str
    sources: list
    date_range: dict | None
    limit: int

    @classmethod
    def of_job(cls, job: Job) -> QuerySpec:
        return cls(job.prompt, job.sources, job.date_range, job.limit)

    @classmethod
    def of_query(cls, run: Run) -> QuerySpec:
        params = run.params or {}
        return cls(params["prompt"], params["sources"], params.get("date_range"), params["limit"])


def _get_app() -> Flask:
    global _app
    if _app is None:
        from .. import create_app

        _app = create_app()
    return _app


def slot_marker(*_args) -> None:
    """Due-time entries are fired by the scheduler and never executed themselves."""


def run_job(job_id: str, scheduled_for: str) -> str:
    """The RQ task: run one slot of one job. Idempotent: a finished run is left alone."""
    app = _get_app()
    with app.app_context():
        # The work horse is a fork: never reuse the parent's database connections.
        db.engine.dispose(close=False)
        try:
            return execute_run(job_id, parse_timestamp(scheduled_for))
        finally:
            db.session.remove()


def run_query(run_id: str) -> str:
    """The RQ task for a one-off query: the same fetching as a job's run, with no job."""
    app = _get_app()
    with app.app_context():
        db.engine.dispose(close=False)
        try:
            return execute_query(run_id)
        finally:
            db.session.remove()


def execute_query(run_public_id: str) -> str:
    run = db.session.scalar(select(Run).where(Run.public_id == run_public_id))
    if run is None or run.job_id is not None:
        return "no such query"
    started = now()
    claimed = db.session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status == "queued")
        .values(status="running", started_at=started, heartbeat_at=started)
    ).rowcount
    db.session.commit()
    if not claimed:
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
        db.session.execute(
            update(Run)
            .where(Run.id == run.id, Run.status == "queued")
            .values(status="skipped", finished_at=now(), error="Skipped: the job was paused.")
        )
        db.session.commit()
        return "skipped"
    started = now()
    claimed = db.session.execute(
        update(Run)
        .where(Run.id == run.id, Run.status == "queued")
        .values(status="running", started_at=started, heartbeat_at=started)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return f"run {run.public_id} already {run.status}"
    db.session.execute(update(Job).where(Job.id == job.id).values(state="running"))
    db.session.commit()
    db.session.refresh(run)
    db.session.refresh(job)
    log.info("run started run=%s job=%s", run.public_id, job.public_id)

    return _fetch_and_finish(run, QuerySpec.of_job(job), job)


def _fetch_and_finish(run: Run, spec: QuerySpec, job: Job | None) -> str:
    heartbeat = Heartbeat(db.engine, run.id, current_app.config["HEARTBEAT_SECONDS"])
    heartbeat.start()
    try:
        records, partial_errors = collect_records(spec, run, job)
    except JobTimeoutException:
        heartbeat.stop()
        fail_run(
            run.id,
            f"The run exceeded its timeout of {current_app.config['RUN_TIMEOUT_SECONDS']} s "
            f"and was stopped.",
        )
        return "timeout"
    except RunFailed as exc:
        heartbeat.stop()
        fail_run(run.id, str(exc))
        return "failed"
    except Exception as exc:  # a bug in a source must fail the run, not the worker
        heartbeat.stop()
        log.exception("run crashed run=%s", run.public_id)
        fail_run(run.id, f"Internal error while running: {type(exc).__name__}: {exc}")
        return "failed"
    heartbeat.stop()
    complete_run(run.id, records, partial_errors)
    return "completed"


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
    spec: QuerySpec, run: Run, job: Job | None
) -> tuple[datetime | None, datetime | None]:
    from ..jobs.service import relative_delta

    started = run.started_at or now()
    date_range = spec.date_range or {}
    if "last" in date_range:
        return started - relative_delta(date_range["last"]), None
    if date_range:
        start = parse_timestamp(date_range["start"]) if date_range.get("start") else None
        end = parse_timestamp(date_range["end"]) if date_range.get("end") else None
        return start, end
    plan = parse_prompt(spec.prompt)
    if plan.window:
        return resolve_window(plan.window, started, job.timezone if job else "UTC")
    if job is None:
        return None, None  # a one-off query without a range: the newest the sources have
    previous = db.session.scalar(
        select(Run.started_at)
        .where(Run.job_id == job.id, Run.status == "completed", Run.id != run.id)
        .order_by(Run.started_at.desc())
        .limit(1)
    )
    return (previous or started - FIRST_RUN_WINDOW), None


def collect_records(
    spec: QuerySpec, run: Run, job: Job | None = None
) -> tuple[list[dict], list[str]]:
    config = current_app.config
    since, until = date_window(spec, run, job)
    plan = parse_prompt(spec.prompt)
    context = FetchContext(
        policy=FetchPolicy(
            timeout=config["FETCH_TIMEOUT_SECONDS"],
            max_bytes=config["FETCH_MAX_BYTES"],
            allow_private=config["ALLOW_PRIVATE_NETWORKS"],
            min_interval=config["FETCH_MIN_INTERVAL"],
            retries=config["FETCH_RETRIES"],
        ),
        allow_local_files=config["ALLOW_LOCAL_FILES"],
        since=since,
        until=until,
        limit=spec.limit,
        query=plan.query_string(),
        credentials=project_credentials(run.project_id),
    )
    errors: list[str] = []
    found = []
    for source in spec.sources:
        try:
            found.extend(fetch_source(source, context))
        except (SourceError, FetchError) as exc:
            errors.append(f"{source_label(source)}: {exc}")
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
    import json

    return json.loads(json.dumps(value, default=str))


def complete_run(run_id: int, records: list[dict], partial_errors: list[str]) -> None:
    """Store the records together with the run's completion, in one transaction."""
    run = db.session.get(Run, run_id)
    job = None
    if run.job_id is not None:
        job = db.session.scalar(select(Job).where(Job.id == run.job_id).with_for_update())
        if job is None:  # deleted while running: its runs and records are gone too
            db.session.rollback()
            return
    fingerprints = [r["fingerprint"] for r in records] if job is not None else []
    seen: set[str] = set()
    for start in range(0, len(fingerprints), 500):
        seen.update(
            db.session.scalars(
                select(Record.fingerprint).where(
                    Record.job_id == job.id,
                    Record.run_id != run.id,
                    Record.fingerprint.in_(fingerprints[start : start + 500]),
                )
            )
        )
    new_count = 0
    for position, data in enumerate(records):
        is_new = data["fingerprint"] not in seen
        new_count += is_new
        db.session.add(
            Record(
                run_id=run.id,
                job_id=run.job_id,
                project_id=run.project_id,
                position=position,
                is_new=is_new,
                **data,
            )
        )
    finished = now()
    run.status = "completed"
    run.finished_at = finished
    run.record_count = len(records)
    run.new_count = new_count
    run.error = ("Some sources failed: " + " ".join(partial_errors)) if partial_errors else None
    if job is not None:
        job.last_sync_at = finished
        job.last_error = run.error
        _return_job_to_rest(job, failed=False)
    db.session.commit()
    log.info("run completed run=%s records=%d new=%d", run.public_id, len(records), new_count)


def fail_run(run_id: int, reason: str) -> None:
    """A failed run stores no records and sends its job to `failed`, in one transaction."""
    db.session.rollback()
    if fail_run_in_transaction(run_id, reason, ("queued", "running")):
        db.session.commit()
        log.warning("run failed run_id=%s: %s", run_id, reason)
    else:
        db.session.rollback()


def fail_run_in_transaction(run_id: int, reason: str, from_statuses: tuple[str, ...]) -> bool:
    """Mark the run failed (if still in one of `from_statuses`) and its job with it; no commit.

    The run and its job change together so nobody reads a failed run of a `running` job.
    """
    claimed = db.session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_(from_statuses))
        .values(status="failed", error=reason, finished_at=now())
    ).rowcount
    if not claimed:
        return False
    job_id = db.session.scalar(select(Run.job_id).where(Run.id == run_id))
    if job_id is not None:
        job = db.session.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is not None:
            job.last_error = reason
            _return_job_to_rest(job, failed=True)
    return True


def _return_job_to_rest(job: Job, failed: bool) -> None:
    if not job.enabled:
        job.state = "paused"
        job.next_run_at = None
    elif failed:
        # A failing job waits for a person instead of failing again every slot.
        job.state = "failed"
        job.next_run_at = None
    else:
        job.state = "active"
        if job.next_run_at is None:
            job.next_run_at = job.schedule.next_after(now())
