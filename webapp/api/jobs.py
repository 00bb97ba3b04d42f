"""Jobs, runs and records over the API."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, g, request, url_for
from sqlalchemy import select

from .. import schemas
from ..jobs import feed, service
from ..models import Job, Record, Run
from ..storage import service as storage
from . import bp
from .auth import authenticate, json_body, refuse_unstorable_path_values, require
from .openapi import NO_CONTENT, Reply, documented
from .serialize import (
    decode_cursor,
    encode_cursor,
    job_out,
    keyset_page,
    record_out,
    respond,
    run_out,
    stored_record_out,
)

JOB = {200: Reply("The job.", schemas.Job)}
JOB_PAGE = {200: Reply("A page of jobs.", schemas.JobPage)}
RUN_PAGE = {200: Reply("A page of runs.", schemas.RunPage)}
RECORD_PAGE = {200: Reply("A page of records.", schemas.RecordPage)}
STORED_RECORD_PAGE = {200: Reply("A page of records, newest first.", schemas.StoredRecordPage)}
FEED = {
    200: Reply(
        "An Atom 1.0 feed of the job's newest new records (at most 50), newest first.",
        media={"application/atom+xml": str},
    )
}


@bp.get("/jobs")
@require("read")
@documented("listJobs", "jobs", JOB_PAGE, params=schemas.JobListParams)
def list_jobs(params: schemas.JobListParams):
    """Jobs of the key's project, newest first."""
    query = select(Job).where(Job.project_id == g.project.id)
    if params.state:
        query = query.where(Job.state == params.state)
    jobs, cursor = keyset_page(query, Job.id, params.cursor, params.limit)
    last = service.last_runs_of(jobs)
    return respond(
        schemas.JobPage(data=[job_out(job, last.get(job.id)) for job in jobs], next_cursor=cursor)
    )


@bp.post("/jobs")
@require("write")
@documented("createJob", "jobs", {201: Reply("The new job.", schemas.Job)}, body=schemas.JobCreate)
def create_job():
    """Create a job."""
    return respond(job_out(service.create_job(g.project, json_body())), 201)


@bp.get("/jobs/<job_id>")
@require("read")
@documented("getJob", "jobs", JOB)
def get_job(job_id: str):
    """One job."""
    return respond(job_out(service.get_job(g.project, job_id)))


@bp.patch("/jobs/<job_id>")
@require("write")
@documented("updateJob", "jobs", JOB, body=schemas.JobUpdate)
def patch_job(job_id: str):
    """Change any writable field; "state" pauses or resumes."""
    job = service.update_job(service.get_job(g.project, job_id), json_body())
    return respond(job_out(job))


@bp.delete("/jobs/<job_id>")
@require("write")
@documented("deleteJob", "jobs", NO_CONTENT)
def delete_job(job_id: str):
    """Delete a job with its runs and records."""
    service.delete_job(service.get_job(g.project, job_id))
    return "", 204


@bp.post("/jobs/<job_id>/pause")
@require("write")
@documented("pauseJob", "jobs", JOB)
def pause_job(job_id: str):
    """Pause a job."""
    return respond(job_out(service.pause_job(service.get_job(g.project, job_id))))


@bp.post("/jobs/<job_id>/resume")
@require("write")
@documented("resumeJob", "jobs", JOB)
def resume_job(job_id: str):
    """Resume a paused or failed job from now."""
    return respond(job_out(service.resume_job(service.get_job(g.project, job_id))))


@bp.post("/jobs/<job_id>/run")
@require("write")
@documented("runJob", "jobs", {202: Reply("The queued run.", schemas.Run)}, errors=(409,))
def run_job(job_id: str):
    """Run a job now (409 while it runs)."""
    run = service.run_now(service.get_job(g.project, job_id), trigger="api")
    return respond(run_out(run), 202)


@bp.get("/jobs/<job_id>/runs")
@require("read")
@documented("listJobRuns", "runs", RUN_PAGE, params=schemas.PageParams)
def job_runs(job_id: str, params: schemas.PageParams):
    """A job's runs, newest first."""
    job = service.get_job(g.project, job_id)
    query = select(Run).where(Run.job_id == job.id)
    runs, cursor = keyset_page(query, Run.id, params.cursor, params.limit)
    return respond(schemas.RunPage(data=[run_out(run, job) for run in runs], next_cursor=cursor))


@bp.get("/runs/<run_id>")
@require("read")
@documented("getRun", "runs", {200: Reply("The run.", schemas.Run)})
def get_run(run_id: str):
    """One run."""
    return respond(run_out(service.get_run(g.project, run_id)))


@bp.get("/runs/<run_id>/records")
@require("read")
@documented("listRunRecords", "runs", RECORD_PAGE, params=schemas.RecordPageParams)
def run_records(run_id: str, params: schemas.RecordPageParams):
    """A run's records in result order; new=true keeps only records new to the job."""
    run = service.get_run(g.project, run_id)
    query = select(Record).where(Record.run_id == run.id)
    if params.new is not None:
        query = query.where(Record.is_new.is_(params.new == "true"))
    records, cursor = keyset_page(query, Record.id, params.cursor, params.limit, oldest_first=True)
    return respond(
        schemas.RecordPage(data=[record_out(record) for record in records], next_cursor=cursor)
    )


@bp.get("/records")
@require("read")
@documented(
    "listRecords",
    "storage",
    STORED_RECORD_PAGE,
    params=schemas.RecordSearchParams,
    errors=(404,),
)
def list_records(params: schemas.RecordSearchParams):
    """Every stored record of the key's project, newest first; q searches them."""
    filters = storage.record_filters(
        g.project,
        job_id=params.job_id,
        run_id=params.run_id,
        source=params.source,
        query=params.q,
        since=params.since,
        until=params.until,
        is_new=None if params.new is None else params.new == "true",
    )
    cursor = decode_cursor(params.cursor)
    items, more = storage.list_records(g.project, filters, cursor, params.limit)
    return respond(
        schemas.StoredRecordPage(
            data=[stored_record_out(item) for item in items],
            next_cursor=encode_cursor(items[-1].record.id) if more else None,
        )
    )


@bp.get("/jobs/<job_id>/feed")
@documented("getJobFeed", "jobs", FEED, params=schemas.FeedParams)
def job_feed(job_id: str, params: schemas.FeedParams):
    """A job's newest new records as Atom; with an API key, or with ?token= instead."""
    refuse_unstorable_path_values({"job_id": job_id})
    if params.token is not None:
        job = feed.job_for_feed_token(job_id, params.token)
    else:
        key = authenticate()  # every scope may read
        g.api_key, g.project = key, key.project
        job = service.get_job(key.project, job_id)
    links = feed.FeedLinks(
        # The private URL (the one feed readers subscribe to) is the feed's own address.
        self_url=url_for("api.job_feed", job_id=job.public_id, token=feed.feed_token(job),
                         _external=True),
        page_url=url_for("jobs.job_page", job_id=job.public_id, _external=True),
        record_page=lambda record_id: url_for(
            "storage.record_detail", record_id=record_id, _external=True
        ),
        authority=urlsplit(request.host_url).hostname or "localhost",
    )
    response = Response(
        feed.build_feed(job, links), content_type="application/atom+xml; charset=utf-8"
    )
    response.headers["Cache-Control"] = "private, no-cache"
    response.add_etag()
    return response.make_conditional(request)


# The document lists the key this needs when no ?token= is given (and its 401).
job_feed.required_scope = "read"
