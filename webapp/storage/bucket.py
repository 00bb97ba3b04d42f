"""Bring your own bucket: a project connects an S3-compatible bucket, and each completed run's
result file is pushed there under its storage key.

A bucket is saved only after a test write under its prefix succeeds, so a typo shows at once
rather than as failed pushes later. Every connection goes to an endpoint the private-address
guard allowed; boto3 gets short timeouts and few retries, since the outbox retries a failed
push itself, with backoff, and a slow endpoint must not hold a notifications worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from flask import current_app
from sqlalchemy import delete, select, update

from ..crypto import DecryptionError
from ..errors import ValidationError
from ..extensions import db
from ..models import Project, Run
from ..schemas import BucketConnect, validate
from ..settings.models import Bucket
from ..sources.http import FetchError, FetchPolicy, check_url
from ..timeutil import now
from .service import result_key, stream_result_file

log = logging.getLogger("bytestack.bucket")

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
# boto3's own attempts per call (the first included); the outbox retries pushes with backoff.
CALL_ATTEMPTS = 2
TEST_OBJECT = ".bytestack-connection-test"
TEST_BODY = b"ByteStack Jobs checks that it can write here. This object may be deleted.\n"
ERROR_MAX = 500


class PushError(Exception):
    """A push that did not land, with a sentence a person can act on; `status` is the
    endpoint's HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None, retry: bool = True):
        super().__init__(message)
        self.message, self.status, self.retry = message, status, retry


@dataclass(frozen=True)
class Target:
    """Where objects go: everything a client needs, the secret in plain text (never stored)."""

    endpoint: str | None
    region: str | None
    bucket: str
    prefix: str
    access_key: str
    secret_key: str

    @classmethod
    def of(cls, bucket: Bucket) -> Target:
        return cls(
            bucket.endpoint,
            bucket.region,
            bucket.bucket,
            bucket.prefix,
            bucket.access_key,
            bucket.secret_key,
        )


def _client(target: Target):
    """An S3 client for the target, after the guard has checked the endpoint it will call."""
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"max_attempts": CALL_ATTEMPTS, "mode": "standard"},
        # S3-compatible servers (MinIO, Ceph, moto, Garage) expect the bucket in the path.
        s3={"addressing_style": "path" if target.endpoint else "auto"},
        # botocore's default CRC checksums on every upload are refused by some S3-compatible
        # servers; a checksum is sent only where the API requires one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=target.endpoint,
        region_name=target.region or DEFAULT_REGION,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=config,
    )
    app_config = current_app.config
    policy = FetchPolicy(allow_private=app_config["ALLOW_PRIVATE_NETWORKS"])
    # The endpoint boto3 will call (Amazon's own when none is given), through the one guard.
    check_url(client.meta.endpoint_url, policy)
    return client


def _explain(exc: Exception, target: Target) -> tuple[str | None, str, int | None]:
    """(the field at fault, a sentence, the HTTP status) for a failed call."""
    where = target.endpoint or "Amazon S3"
    if isinstance(exc, FetchError):
        return "endpoint", str(exc), None
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return "endpoint", f"Could not connect to {where}: is the endpoint right and up?", None
    if isinstance(exc, ReadTimeoutError):
        return "endpoint", f"{where} did not answer within {READ_TIMEOUT} s.", None
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = (error.get("Message") or "").strip()
        if code == "InvalidAccessKeyId":
            return "access_key", f"{where} does not know this access key.", status
        if code == "SignatureDoesNotMatch":
            return "secret_key", "The secret key does not match the access key.", status
        if code == "NoSuchBucket":
            return "bucket", f"{where} has no bucket named {target.bucket}.", status
        if code in ("AccessDenied", "AllAccessDisabled"):
            under = f" under {target.prefix}" if target.prefix else ""
            return (
                "access_key",
                f"This key may not write to {target.bucket}{under} (access denied).",
                status,
            )
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
            return "region", f"{target.bucket} is in another region: {detail or code}", status
        return (
            "bucket",
            f"{where} refused: {code or status}{': ' + detail if detail else ''}",
            status,
        )
    return "endpoint", f"{where}: {exc}", None


def _test_write(client, target: Target) -> None:
    """Write a small object under the prefix and delete it again; raises what boto3 raises."""
    key = target.prefix + TEST_OBJECT
    client.put_object(Bucket=target.bucket, Key=key, Body=TEST_BODY, ContentType="text/plain")
    try:
        client.delete_object(Bucket=target.bucket, Key=key)
    except ClientError as exc:
        # A key that may write but not delete is a good key for pushes: the (small, fixed)
        # test object stays, overwritten by the next test.
        if exc.response.get("Error", {}).get("Code") != "AccessDenied":
            raise


def get_bucket(project: Project) -> Bucket | None:
    return db.session.scalar(select(Bucket).where(Bucket.project_id == project.id))


def connect_bucket(project: Project, data: dict) -> Bucket:
    """Check the bucket with a test write, then keep it as the project's bucket (replacing
    any other); ValidationError with the reason, on the field at fault, otherwise."""
    spec = validate(BucketConnect, data)
    target = Target(
        spec.endpoint, spec.region, spec.bucket, spec.prefix, spec.access_key, spec.secret_key
    )
    try:
        _test_write(_client(target), target)
    except (FetchError, BotoCoreError, ClientError) as exc:
        field, message, _ = _explain(exc, target)
        raise ValidationError({field: f"The test write failed: {message}"}) from None
    bucket = get_bucket(project) or Bucket(project_id=project.id)
    bucket.endpoint, bucket.region, bucket.bucket = spec.endpoint, spec.region, spec.bucket
    bucket.prefix, bucket.access_key = spec.prefix, spec.access_key
    bucket.secret_key = spec.secret_key
    # A new connection starts a new history: the last push and error were somewhere else.
    bucket.created_at = now()
    bucket.last_push_at = bucket.last_push_key = None
    bucket.last_error = bucket.last_error_at = None
    db.session.add(bucket)
    db.session.commit()
    log.info("project %s connected bucket %s", project.public_id, spec.bucket)
    return bucket


def disconnect_bucket(project: Project) -> bool:
    """Forget the project's bucket (its objects stay where they are); False when none."""
    removed = db.session.execute(delete(Bucket).where(Bucket.project_id == project.id)).rowcount
    db.session.commit()
    return bool(removed)


def object_key(bucket: Bucket, run: Run) -> str:
    return bucket.prefix + result_key(run)


def push_run(run: Run) -> str:
    """Write a completed run's result file (the bytes GET /v1/storage/{key} serves) to its
    project's bucket; the object key. Writing the same key again writes the same bytes, so a
    retried push is harmless. The bucket's last push or last error is kept either way."""
    bucket = db.session.scalar(select(Bucket).where(Bucket.project_id == run.project_id))
    if bucket is None:
        raise PushError("No bucket is connected any more.", retry=False)
    bucket_id = bucket.id
    try:
        target = Target.of(bucket)
    except DecryptionError as exc:
        _note(bucket_id, last_error=str(exc), last_error_at=now())
        raise PushError(str(exc), retry=False) from None
    key = object_key(bucket, run)
    body = "".join(stream_result_file(run, "json")).encode("utf-8")
    db.session.rollback()  # no transaction held open during the upload
    try:
        _client(target).put_object(
            Bucket=target.bucket, Key=key, Body=body, ContentType="application/json"
        )
    except (FetchError, BotoCoreError, ClientError) as exc:
        _, message, status = _explain(exc, target)
        _note(bucket_id, last_error=message[:ERROR_MAX], last_error_at=now())
        raise PushError(message, status) from None
    _note(bucket_id, last_push_at=now(), last_push_key=key)
    return key


def _note(bucket_id: int, **values) -> None:
    # By id, in SQL: the bucket may have been replaced or disconnected meanwhile.
    db.session.execute(update(Bucket).where(Bucket.id == bucket_id).values(**values))
    db.session.commit()
