"""Storage over the API: result files of completed runs and queries, streamed."""

from __future__ import annotations

from flask import g, jsonify, request

from ..errors import NotFoundError
from ..jobs.service import get_job
from ..storage import service
from ..storage.views import streamed_download
from . import bp
from .auth import require
from .errors import ApiError
from .serialize import decode_cursor, encode_cursor, page_limit


@bp.get("/storage")
@require("read")
def list_storage():
    """Result files of the key's project, newest first; job_id keeps one job's."""
    limit = page_limit()
    job_id = request.args.get("job_id")
    job = None
    if job_id:
        if not service.looks_like_public_id(job_id, "job"):
            raise ApiError(404, "No job with this id in this project.")
        job = get_job(g.project, job_id)  # another project's job: 404 too
    page = service.list_result_files(
        g.project, job=job, before=decode_cursor(request.args.get("cursor")), limit=limit
    )
    return jsonify(
        data=[file.to_api() for file in page.items],
        next_cursor=encode_cursor(page.older_cursor) if page.has_older else None,
    )


@bp.get("/storage/<key>")
@require("read")
def get_storage_file(key: str):
    """One result file: JSON with the run's metadata and records, or ?format=csv|ndjson."""
    fmt = request.args.get("format") or "json"
    if fmt not in service.EXPORT_FORMATS:
        raise ApiError(422, "format must be json, csv or ndjson.", field="format")
    try:
        run = service.find_result_file(g.project, key)
    except NotFoundError as exc:
        raise ApiError(404, exc.message) from None
    filename = key if fmt == "json" else key.removesuffix(".json") + f".{fmt}"
    return streamed_download(service.stream_result_file(run, fmt), fmt, filename)
