"""Dashboard → Storage: result files per run, the records browser, a record, and exports."""

from __future__ import annotations

import json
from collections.abc import Iterator

from flask import (
    Blueprint,
    Response,
    abort,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select

from ..extensions import db, htmx
from ..models import Job, Run
from ..projects import current_project
from ..schemas import SEARCH_MAX
from ..sources import SOURCE_TYPES
from ..timeutil import now
from . import service

bp = Blueprint("storage", __name__, url_prefix="/storage")
MIMETYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "ndjson": "application/x-ndjson",
}


def streamed_download(chunks: Iterator[str], fmt: str, filename: str) -> Response:
    """A file sent as it is produced: the response starts before the last row is read."""
    response = Response(stream_with_context(chunks), mimetype=MIMETYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _partial_for(target: str) -> bool:
    # A history restore asks for the whole page, whatever element made the request.
    return bool(htmx) and htmx.target == target and not htmx.history_restore_request


def _clean_url_header(endpoint: str, filter_args: dict[str, str]) -> dict[str, str]:
    """The address bar shows the filters in use, not every empty field the form sent."""
    cursors = {
        name: cursor
        for name in ("before", "after")
        if (cursor := service.parse_id(request.args.get(name))) is not None
    }
    return {"HX-Push-Url": url_for(endpoint, **filter_args, **cursors)}


def _project_jobs() -> list:
    """(public_id, name) of the project's jobs for the filter menus: columns, not objects,
    because a project may have a thousand jobs."""
    return db.session.execute(
        select(Job.public_id, Job.name)
        .where(Job.project_id == current_project().id)
        .order_by(Job.name, Job.id)
    ).all()


def _job_filter() -> tuple[Job | None, str | None]:
    job_id = (request.args.get("job") or "").strip()
    if not job_id:
        return None, None
    job = None
    if service.looks_like_public_id(job_id, "job"):
        job = db.session.scalar(
            select(Job).where(Job.public_id == job_id, Job.project_id == current_project().id)
        )
    return job, None if job else "No job with this id in this project."


@bp.get("")
def files():
    """Result files: one per completed run or query, newest first, filterable by job."""
    job, error = _job_filter()
    page = service.KeysetPage(items=[], has_older=False, has_newer=False)
    if error is None:
        page = service.list_result_files(
            current_project(),
            job=job,
            before=service.parse_id(request.args.get("before")),
            after=service.parse_id(request.args.get("after")),
        )
    context = {
        "page": page,
        "job": job,
        "job_error": error,
        "filter_args": {"job": job.public_id} if job else {},
    }
    status = 422 if error else 200
    if _partial_for("file-results"):
        body = render_template("storage/_files.html", **context)
        return body, status, _clean_url_header("storage.files", context["filter_args"])
    return render_template("storage/files.html", jobs=_project_jobs(), **context), status



@bp.get("/files/<key>")
def file_preview(key: str):
    """A result file's facts and its first records."""
    run = service.find_result_file(current_project(), key)
    job = db.session.get(Job, run.job_id) if run.job_id else None
    return render_template(
        "storage/file.html",
        file=service.ResultFile(run, job),
        records=[
            service.BrowsedRecord(record, run.public_id, job.name if job else None)
            for record in service.preview_records(run)
        ],
    )


@bp.get("/files/<key>/download")
def file_download(key: str):
    """Download JSON: the whole result file, streamed."""
    run = service.find_result_file(current_project(), key)
    return streamed_download(service.stream_result_file(run, "json"), "json", key)


@bp.get("/records")
def records():
    """The records browser and search: filters in the query string, paged newest first."""
    filters = service.parse_record_filters(current_project(), request.args)
    page = service.browse_records(
        current_project(),
        filters,
        before=service.parse_id(request.args.get("before")),
        after=service.parse_id(request.args.get("after")),
    )
    context = {"page": page, "filters": filters}
    status = 422 if filters.errors else 200
    if _partial_for("record-results"):
        body = render_template("storage/_records.html", refresh_field_errors=True, **context)
        return body, status, _clean_url_header("storage.records", filters.args)
    return render_template(
        "storage/records.html",
        jobs=_project_jobs(),
        sources=sorted(SOURCE_TYPES),
        search_max=SEARCH_MAX,
        **context,
    ), status


@bp.get("/records.<any(json, csv, ndjson):fmt>")
def export_records(fmt: str):
    """Export every record the current filters match, streamed as JSON, CSV or NDJSON."""
    filters = service.parse_record_filters(current_project(), request.args)
    if filters.errors:
        abort(422, " ".join(filters.errors.values()))
    filename = service.export_filename("records", fmt, now())
    return streamed_download(service.stream_records(current_project(), filters, fmt), fmt, filename)


@bp.get("/records/<record_id>")
def record_detail(record_id: str):
    """One record with every field, its metrics and the source's raw JSON."""
    record = service.get_record(current_project(), record_id)
    run = db.session.get(Run, record.run_id)
    return render_template(
        "storage/record.html",
        record=record,
        run=run,
        job=db.session.get(Job, record.job_id) if record.job_id else None,
        key=service.result_key(run) if run.status == "completed" else None,
        raw_json=json.dumps(
            record.raw or {}, indent=2, ensure_ascii=False, sort_keys=True, default=str
        ),
    )
