"""Storage over the API: result files of completed runs and queries, streamed; the project's
own bucket, where each completed run's file is also pushed."""

from __future__ import annotations

from flask import g

from .. import schemas
from ..jobs.service import get_job
from ..settings.models import Bucket
from ..storage import bucket as buckets
from ..storage import service
from ..storage.views import streamed_download
from . import bp
from .auth import json_body, require
from .errors import ApiError
from .openapi import Reply, documented
from .serialize import decode_cursor, encode_cursor, respond

RESULT_FILE = Reply(
    "The file, sent as an attachment.",
    schemas.ResultFile,
    media={"text/csv": str, "application/x-ndjson": str},
    headers={
        "Content-Disposition": {
            "description": 'attachment; filename="<key, or its .csv or .ndjson name>"',
            "required": True,
            "schema": {"type": "string", "pattern": "^attachment; "},
        }
    },
)


@bp.get("/storage")
@require("read")
@documented(
    "listStorage",
    "storage",
    {200: Reply("A page of result files.", schemas.StorageFilePage)},
    params=schemas.StorageListParams,
    errors=(404,),
)
def list_storage(params: schemas.StorageListParams):
    """Result files of the key's project, newest first; job_id keeps one job's."""
    job = None
    if params.job_id:
        if not service.looks_like_public_id(params.job_id, "job"):
            raise ApiError(404, "No job with this id in this project.")
        job = get_job(g.project, params.job_id)  # another project's job: 404 too
    page = service.list_result_files(
        g.project, job=job, before=decode_cursor(params.cursor), limit=params.limit
    )
    return respond(
        schemas.StorageFilePage(
            data=[schemas.StorageFile.model_validate(file.to_api()) for file in page.items],
            next_cursor=encode_cursor(page.older_cursor) if page.has_older else None,
        )
    )


@bp.get("/storage/<key>")
@require("read")
@documented("getStorageFile", "storage", {200: RESULT_FILE}, params=schemas.StorageFileParams)
def get_storage_file(key: str, params: schemas.StorageFileParams):
    """One result file: JSON with the run's metadata and records, or ?format=csv|ndjson."""
    run = service.find_result_file(g.project, key)
    filename = key if params.format == "json" else key.removesuffix(".json") + f".{params.format}"
    return streamed_download(
        service.stream_result_file(run, params.format), params.format, filename
    )


# --- the project's own bucket -----------------------------------------------------------------

BUCKET = {200: Reply("The project's bucket (never its secret key).", schemas.StorageBucket)}


def bucket_out(bucket: Bucket) -> schemas.StorageBucket:
    return schemas.StorageBucket(
        endpoint=bucket.endpoint,
        region=bucket.region,
        bucket=bucket.bucket,
        prefix=bucket.prefix,
        access_key=bucket.access_key,
        connected_at=bucket.created_at,
        last_push_at=bucket.last_push_at,
        last_push_key=bucket.last_push_key,
        last_error=bucket.last_error,
        last_error_at=bucket.last_error_at,
    )


@bp.put("/storage/bucket")
@require("admin")
@documented("connectBucket", "storage", BUCKET, body=schemas.BucketConnect)
def connect_bucket():
    """Connect an S3-compatible bucket, after a test write; 422 with the reason otherwise."""
    return respond(bucket_out(buckets.connect_bucket(g.project, json_body())))


@bp.get("/storage/bucket")
@require("admin")
@documented("getBucket", "storage", BUCKET, errors=(404,))
def get_bucket():
    """The connected bucket with its last push and last error (404 when none)."""
    bucket = buckets.get_bucket(g.project)
    if bucket is None:
        raise ApiError(404, "No bucket is connected to this project.")
    return respond(bucket_out(bucket))


@bp.delete("/storage/bucket")
@require("admin")
@documented("disconnectBucket", "storage", {204: Reply("Disconnected (or none was).")})
def disconnect_bucket():
    """Disconnect the bucket: no more pushes (the objects already there stay)."""
    buckets.disconnect_bucket(g.project)
    return "", 204
