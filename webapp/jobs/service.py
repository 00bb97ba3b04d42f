"""Job workflows shared by the dashboard, the API and the CLI: one copy of every rule."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import ConflictError
from ..extensions import db
from ..models import Job, Project, Record, Run, get_in_project
from ..queueing import QueuedRun, enqueue_runs, get_redis
from ..runs import rollups
from ..schedules import Schedule
from ..scheduling import drop_job_entry, queue_timeout, sync_job_entry
from ..schemas import JobCreate, JobUpdate, validate
from ..settings.channels import check_alert_channels
from ..timeutil import isoformat, now
from . import feed

log = logging.getLogger(__name__)


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


def clean_job_fields(data: dict, current: Job | None = None) -> dict:
    """A new job's fields (`current` None), or the fields a change to `current` sends,
    validated; ValidationError names each bad one."""
    if current is None:
        return validate(JobCreate, data).values()
    if "schedule" in data or "timezone" in data:
        # A schedule is read in its timezone: a change of either is checked with the other.
        data = {"schedule": _current_schedule_value(current), "timezone": current.timezone, **data}
    return validate(JobUpdate, data).given()


def _current_schedule_value(job: Job) -> dict:
    if job.schedule_type == "interval":
        return {"type": "interval", "value": job.schedule_value}
    return {"type": "cron", "expression": job.schedule_value}


def _apply(job: Job, cleaned: dict) -> None:
    if "alerts" in cleaned:  # checked first: a refusal leaves the job as it was
        job.alerts = check_alert_channels(job.project_id, cleaned["alerts"])
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
    feed.give_token(job)
    db.session.add(job)
    db.session.commit()
    _sync_entry(job)
    return job


def update_job(job: Job, data: dict) -> Job:
    cleaned = clean_job_fields(data, current=job)
    state = cleaned.pop("state", None)
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
    # Its records leave the project's Analytics with it, in the same transaction. The runs
    # are locked first (a write), so a prune at the same moment either finished with some of
    # them already or leaves them alone: no run is taken out of the rollups twice.
    run_ids = list(
        db.session.scalars(
            update(Run)
            .where(Run.job_id == job.id)
            .values(status=Run.status)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
    )
    rollups.subtract_runs(run_ids)
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


def last_runs_of(jobs: list[Job]) -> dict[int, Run]:
    """Each job's latest run that was not skipped, in one query for the whole page."""
    if not jobs:
        return {}
    latest = (
        select(func.max(Run.id))
        .where(Run.job_id.in_([job.id for job in jobs]), Run.status != "skipped")
        .group_by(Run.job_id)
    )
    return {run.job_id: run for run in db.session.scalars(select(Run).where(Run.id.in_(latest)))}


def get_job(project: Project, public_id: str) -> Job:
    return get_in_project(Job, project.id, public_id, "No job with this id in this project.")


def get_run(project: Project, public_id: str) -> Run:
    return get_in_project(Run, project.id, public_id, "No run with this id in this project.")
