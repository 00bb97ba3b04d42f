"""Job workflows shared by the dashboard, the API and the CLI: one copy of every rule."""

from __future__ import annotations

import logging
import re

from flask import current_app
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from ..dates import clean_date_range
from ..errors import ConflictError, NotFoundError, ValidationError
from ..extensions import db
from ..models import Job, Project, Record, Run
from ..prompt import parse_prompt
from ..queueing import QueuedRun, enqueue_runs, get_redis
from ..schedules import Schedule, ScheduleError, parse_schedule
from ..scheduling import drop_job_entry, queue_timeout, sync_job_entry
from ..sources import SourceError, normalise_sources
from ..timeutil import isoformat, now

log = logging.getLogger(__name__)

WRITABLE = ("name", "prompt", "sources", "schedule", "timezone", "date_range", "limit", "webhook_url")
DEFAULT_LIMIT = 100
SCHEDULE_MAX_LENGTH = 200  # Job.schedule_value


def default_project() -> Project:
    """The workspace the dashboard uses until accounts and project switching exist."""
    return ensure_project("Default")


def ensure_project(name: str) -> Project:
    project = db.session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name)
        db.session.add(project)
        db.session.commit()
    return project


def _given(data: dict, name: str, creating: bool, errors: dict[str, str]) -> bool:
    """Whether `name` is in `data`; when creating, its absence is an error."""
    if name in data:
        return True
    if creating:
        errors[name] = f"{name} is required."
    return False


def _clean_query_part(data: dict, creating: bool, errors: dict[str, str], cleaned: dict) -> None:
    """prompt, sources, limit and date_range: the fields a job shares with a one-off query."""

    def require(name: str) -> bool:
        return _given(data, name, creating, errors)

    if require("prompt"):
        prompt = data["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            errors["prompt"] = "Write a prompt: what should be looked for?"
        elif len(prompt) > 2000:
            errors["prompt"] = f"The prompt can be at most 2000 characters (it has {len(prompt)})."
        else:
            cleaned["prompt"] = prompt.strip()
    sources = data.get("sources")
    if not sources and isinstance(cleaned.get("prompt"), str):
        # "… on Reddit" names the source when none is given.
        named = parse_prompt(cleaned["prompt"]).sources
        if named:
            data = {**data, "sources": named}
    if require("sources"):
        try:
            cleaned["sources"] = normalise_sources(data["sources"])
        except SourceError as exc:
            errors["sources"] = str(exc)
    if "limit" in data and data["limit"] is not None:
        limit = data["limit"]
        if isinstance(limit, str) and re.fullmatch(r"\s*[0-9]{1,9}\s*", limit):
            limit = int(limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            errors["limit"] = "limit must be a whole number from 1 to 1000."
        else:
            cleaned["limit"] = limit
    elif creating:
        cleaned["limit"] = DEFAULT_LIMIT
    if "date_range" in data:
        try:
            cleaned["date_range"] = clean_date_range(data["date_range"])
        except ValueError as exc:
            errors["date_range"] = str(exc)


def clean_query_fields(data: dict) -> dict:
    """Validate a one-off query's fields; raise ValidationError listing each bad one."""
    errors: dict[str, str] = {}
    cleaned: dict = {}
    _clean_query_part(data, True, errors, cleaned)
    if errors:
        raise ValidationError(errors)
    return cleaned


def clean_job_fields(data: dict, current: Job | None = None) -> dict:
    """Validate the writable fields present in `data`; raise ValidationError listing each bad one."""
    errors: dict[str, str] = {}
    cleaned: dict = {}
    creating = current is None

    def require(name: str) -> bool:
        return _given(data, name, creating, errors)

    if require("name"):
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            errors["name"] = "Give the job a name."
        elif len(name.strip()) > 200:
            errors["name"] = "The name can be at most 200 characters."
        else:
            cleaned["name"] = name.strip()
    _clean_query_part(data, creating, errors, cleaned)
    if "webhook_url" in data:
        url = data["webhook_url"]
        if url in (None, ""):
            cleaned["webhook_url"] = None
        else:
            # One rule for every URL that will receive events: the project webhooks' rule.
            from ..settings.webhooks import clean_url

            try:
                cleaned["webhook_url"] = clean_url(url)
            except ValidationError as exc:
                errors["webhook_url"] = exc.message
    if "schedule" in data or "timezone" in data or creating:
        if require("schedule") or current is not None:
            schedule_value = data.get("schedule", _current_schedule_value(current))
            zone = data.get("timezone", current.timezone if current else "UTC")
            try:
                schedule = parse_schedule(schedule_value, zone)
                if len(schedule.value) > SCHEDULE_MAX_LENGTH:  # the column's size
                    raise ScheduleError(
                        f"A cron expression can be at most {SCHEDULE_MAX_LENGTH} characters."
                    )
                cleaned["schedule"] = schedule
            except ScheduleError as exc:
                errors[exc.field] = exc.message
    if errors:
        raise ValidationError(errors)
    return cleaned


def _current_schedule_value(job: Job | None):
    if job is None:
        return None
    if job.schedule_type == "interval":
        return {"type": "interval", "value": job.schedule_value}
    return {"type": "cron", "expression": job.schedule_value}


def _apply(job: Job, cleaned: dict) -> None:
    for name in ("name", "prompt", "sources", "limit", "date_range", "webhook_url"):
        if name in cleaned:
            setattr(job, name, cleaned[name])
    if "schedule" in cleaned:
        schedule: Schedule = cleaned["schedule"]
        job.schedule_type, job.schedule_value, job.timezone = (
            schedule.type,
            schedule.value,
            schedule.timezone,
        )


def _sync_entry(job: Job, previous_slot=None) -> None:
    """Best effort from the web process: the scheduler's reconcile pass repairs any miss."""
    try:
        sync_job_entry(get_redis(), job, previous_slot)
    except Exception as exc:  # Redis down must not stop a person saving a job
        log.warning("could not update the schedule entry of %s: %s", job.public_id, exc)


def _current_slot(job: Job):
    return db.session.scalar(select(Job.next_run_at).where(Job.id == job.id))


def create_job(project: Project, data: dict) -> Job:
    cleaned = clean_job_fields(data)
    job = Job(project_id=project.id, state="active", enabled=True)
    _apply(job, cleaned)
    job.next_run_at = job.schedule.next_after(now())
    db.session.add(job)
    db.session.commit()
    _sync_entry(job)
    return job


def update_job(job: Job, data: dict) -> Job:
    unknown = set(data) - set(WRITABLE) - {"state"}
    if unknown:
        raise ValidationError({sorted(unknown)[0]: f"{sorted(unknown)[0]} is not a writable field."})
    cleaned = clean_job_fields({k: v for k, v in data.items() if k != "state"}, current=job)
    state = data.get("state")
    if state is not None and state not in ("paused", "active"):
        raise ValidationError({"state": 'state can be set to "paused" or "active".'})
    schedule_changed = "schedule" in cleaned and (
        (cleaned["schedule"].type, cleaned["schedule"].value, cleaned["schedule"].timezone)
        != (job.schedule_type, job.schedule_value, job.timezone)
    )
    previous_slot = _current_slot(job)
    _apply(job, cleaned)
    db.session.commit()
    if schedule_changed:
        # From now, in SQL: the scheduler may be moving the slot at this very moment.
        db.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.schedulable_clause())
            .values(next_run_at=job.schedule.next_after(now()))
        )
        db.session.commit()
        db.session.refresh(job)
    if state == "paused":
        return pause_job(job)
    if state == "active":
        # As POST /resume: also re-enables a job paused while its run is going.
        return resume_job(job)
    _sync_entry(job, previous_slot)
    return job


def pause_job(job: Job) -> Job:
    """Disable the job at once; a running job keeps `running` until its run ends, then
    rests in `paused` (the run's end reads `enabled` from the row, never from a cache)."""
    previous_slot = _current_slot(job)
    db.session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            enabled=False,
            next_run_at=None,
            state=case((Job.state == "running", "running"), else_="paused"),
        )
    )
    db.session.commit()
    db.session.refresh(job)
    _sync_entry(job, previous_slot)
    return job


def resume_job(job: Job) -> Job:
    """Enable the job; a paused or failed one becomes `active` with its next slot from now,
    so it never bursts through the slots it missed. A running one stays running."""
    previous_slot = _current_slot(job)
    following = job.schedule.next_after(now())
    resting = Job.state.in_(("paused", "failed"))
    db.session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            enabled=True,
            state=case((resting, "active"), else_=Job.state),
            next_run_at=case((resting, following), else_=func.coalesce(Job.next_run_at, following)),
        )
    )
    db.session.commit()
    db.session.refresh(job)
    _sync_entry(job, previous_slot)
    return job


BUSY_MESSAGE = "This job is already running; wait for the run to finish."


def run_now(job: Job, trigger: str = "manual") -> Run:
    """Queue a run now (409 while one is queued or running: the database has the last word)."""
    if job.state == "running":
        raise ConflictError(BUSY_MESSAGE)
    run = Run(
        project_id=job.project_id,
        job_id=job.id,
        trigger=trigger,
        scheduled_for=now(),
        status="queued",
    )
    db.session.add(run)
    try:
        db.session.commit()
    except IntegrityError:
        # uq_runs_job_in_progress: another press (or a slot) got there first.
        db.session.rollback()
        raise ConflictError(BUSY_MESSAGE) from None
    try:
        enqueue_runs(
            get_redis(),
            [QueuedRun.of_job(job.public_id, run.scheduled_for, isoformat(run.scheduled_for))],
            queue_timeout(current_app.config),
        )
    except Exception as exc:
        # The run stays queued: the scheduler's reaper hands it to the queue once Redis answers.
        log.warning("run %s is queued but Redis is unreachable: %s", run.public_id, exc)
    return run


def delete_job(job: Job) -> None:
    previous_slot = _current_slot(job)
    # Bulk deletes keep a job with a million records from loading them into memory.
    db.session.query(Record).filter(Record.job_id == job.id).delete(synchronize_session=False)
    db.session.query(Run).filter(Run.job_id == job.id).delete(synchronize_session=False)
    job_id = job.public_id
    db.session.delete(job)
    db.session.commit()
    try:
        drop_job_entry(get_redis(), job_id, previous_slot)
    except Exception:  # an entry of a deleted job fires into nothing and is dropped
        log.warning("could not drop the schedule entry of deleted job %s", job_id)


def get_job(project: Project, public_id: str) -> Job:
    job = None
    # PostgreSQL answers text with NUL with an error, not an empty result; no id holds one.
    if "\x00" not in public_id:
        job = db.session.scalar(
            select(Job).where(Job.public_id == public_id, Job.project_id == project.id)
        )
    if job is None:
        raise NotFoundError("No job with this id in this project.")
    return job


def get_run(project: Project, public_id: str) -> Run:
    run = None
    if "\x00" not in public_id:
        run = db.session.scalar(
            select(Run).where(Run.public_id == public_id, Run.project_id == project.id)
        )
    if run is None:
        raise NotFoundError("No run with this id in this project.")
    return run
