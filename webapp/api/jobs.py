"""Jobs, runs and records over the API."""

from __future__ import annotations

from flask import g, jsonify, request
from sqlalchemy import select

from ..extensions import db
from ..jobs import service
from ..models import JOB_STATES, Job, Record, Run
from . import bp
from .auth import json_body, require
from .errors import ApiError
from .serialize import (
    decode_cursor,
    encode_cursor,
    job_to_api,
    page_limit,
    record_to_api,
    run_to_api,
)


@bp.get("/jobs")
@require("read")
def list_jobs():
    """Jobs of the key's project, newest first."""
    limit = page_limit()
    query = select(Job).where(Job.project_id == g.project.id).order_by(Job.id.desc())
    state = request.args.get("state")
    if state:
        if state not in JOB_STATES:
            raise ApiError(422, f"state must be one of {', '.join(JOB_STATES)}.", field="state")
        query = query.where(Job.state == state)
    cursor = decode_cursor(request.args.get("cursor"))
    if cursor is not None:
        query = query.where(Job.id < cursor)
    jobs = db.session.scalars(query.limit(limit + 1)).all()
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return jsonify(
        data=[job_to_api(job) for job in jobs],
        next_cursor=encode_cursor(jobs[-1].id) if more else None,
    )


@bp.post("/jobs")
@require("write")
def create_job():
    """Create a job."""
    job = service.create_job(g.project, json_body())
    return jsonify(job_to_api(job)), 201


@bp.get("/jobs/<job_id>")
@require("read")
def get_job(job_id: str):
    """One job."""
    return jsonify(job_to_api(service.get_job(g.project, job_id)))


@bp.patch("/jobs/<job_id>")
@require("write")
def patch_job(job_id: str):
    """Change any writable field; "state" pauses or resumes."""
    job = service.update_job(service.get_job(g.project, job_id), json_body())
    return jsonify(job_to_api(job))


@bp.delete("/jobs/<job_id>")
@require("write")
def delete_job(job_id: str):
    """Delete a job with its runs and records."""
    service.delete_job(service.get_job(g.project, job_id))
    return "", 204


@bp.post("/jobs/<job_id>/pause")
@require("write")
def pause_job(job_id: str):
    """Pause a job."""
    return jsonify(job_to_api(service.pause_job(service.get_job(g.project, job_id))))


@bp.post("/jobs/<job_id>/resume")
@require("write")
def resume_job(job_id: str):
    """Resume a paused or failed job from now."""
    return jsonify(job_to_api(service.resume_job(service.get_job(g.project, job_id))))


@bp.post("/jobs/<job_id>/run")
@require("write")
def run_job(job_id: str):
    """Run a job now (409 while it runs)."""
    run = service.run_now(service.get_job(g.project, job_id), trigger="api")
    return jsonify(run_to_api(run)), 202


@bp.get("/jobs/<job_id>/runs")
@require("read")
def job_runs(job_id: str):
    """A job's runs, newest first."""
    job = service.get_job(g.project, job_id)
    limit = page_limit()
    query = select(Run).where(Run.job_id == job.id).order_by(Run.id.desc())
    cursor = decode_cursor(request.args.get("cursor"))
    if cursor is not None:
        query = query.where(Run.id < cursor)
    runs = db.session.scalars(query.limit(limit + 1)).all()
    more = len(runs) > limit
    runs = runs[:limit]
    return jsonify(
        data=[run_to_api(run, job) for run in runs],
        next_cursor=encode_cursor(runs[-1].id) if more else None,
    )


@bp.get("/runs/<run_id>")
@require("read")
def get_run(run_id: str):
    """One run."""
    return jsonify(run_to_api(service.get_run(g.project, run_id)))


@bp.get("/runs/<run_id>/records")
@require("read")
def run_records(run_id: str):
    """A run's records in result order; new=true keeps only records new to the job."""
    run = service.get_run(g.project, run_id)
    limit = page_limit(default=100, maximum=1000)
    query = select(Record).where(Record.run_id == run.id).order_by(Record.id)
    new = request.args.get("new")
    if new is not None:
        if new not in ("true", "false"):
            raise ApiError(422, "new must be true or false.", field="new")
        query = query.where(Record.is_new.is_(new == "true"))
    cursor = decode_cursor(request.args.get("cursor"))
    if cursor is not None:
        query = query.where(Record.id > cursor)
    records = db.session.scalars(query.limit(limit + 1)).all()
    more = len(records) > limit
    records = records[:limit]
    return jsonify(
        data=[record_to_api(record) for record in records],
        next_cursor=encode_cursor(records[-1].id) if more else None,
    )
