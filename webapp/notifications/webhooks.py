"""The "webhook" kind: each finished run POSTs its signed payload to every webhook of the
project subscribed to its event, and to the job's own `webhook_url`.

A run's end plans one delivery per subscribed webhook (target: its public id) and one for the
job's URL (target "job"); the outbox sends each on the notifications queue and retries it. An
attempt is one POST through the safe HTTP client (the private-address guard, a 10 s deadline,
no redirects) and is logged as a WebhookDelivery row, whatever its outcome.

The body is the same bytes on every attempt (the payload is fixed when the run is planned), so
a receiver can tell a retry by `X-ByteStack-Delivery`. It is signed when sent, with the
endpoint's secret of that moment: a webhook's own, or the project's for a job's URL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select, update

from ..crypto import DecryptionError, decrypt, encrypt
from ..extensions import db
from ..models import Job, Project, Run
from ..queueing import enqueue_notifications, get_redis
from ..settings.models import Webhook, WebhookDelivery
from ..sources.http import FetchError, FetchPolicy, RefusedURL, post
from ..timeutil import isoformat, now
from .models import Delivery
from .outbox import Kind, Outcome, Planned, register

log = logging.getLogger("bytestack.notifications")

KIND = "webhook"
JOB_TARGET = "job"  # the target of a delivery to the job's own webhook_url
SIGNATURE_HEADER = "X-ByteStack-Signature"
SECRET_PREFIX = "whsec_"
TIMEOUT_SECONDS = 10.0  # API.md: a receiver answers 2xx within 10 s
MAX_ATTEMPTS = 5
# A receiver's answer is read up to this much; the log keeps its first EXCERPT_CHARS.
RESPONSE_CAP = 64 * 1024
EXCERPT_CHARS = 500
# API.md's payload, in its order.
PAYLOAD_KEYS = (
    "event",
    "job_id",
    "run_id",
    "status",
    "record_count",
    "new_count",
    "result_url",
    "timestamp",
)
# 4xx answers worth asking again: a timeout on the receiver's side, a rate limit.
RETRIED_CLIENT_ERRORS = frozenset((408, 429))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The X-ByteStack-Signature value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def event_of(run: Run) -> str:
    if run.job_id is None:
        return "query.completed"  # a one-off query, completed or failed: `status` says which
    return "job.completed" if run.status == "completed" else "job.failed"


def result_url(run: Run) -> str | None:
    """The API's records URL of a completed run, as the run object gives it, under
    BYTESTACK_BASE_URL (a worker has no request to take the host from)."""
    if run.status != "completed":
        return None
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build("api.run_records", {"run_id": run.public_id}, force_external=True)


def payload_of(run: Run, job: Job | None) -> dict[str, Any]:
    return {
        "event": event_of(run),
        "job_id": job.public_id if job is not None else None,
        "run_id": run.public_id,
        "status": run.status,
        "record_count": run.record_count,
        "new_count": run.new_count,
        "result_url": result_url(run),
        "timestamp": isoformat(run.finished_at),
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(
        {key: payload.get(key) for key in PAYLOAD_KEYS}, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def backoff(attempt: int) -> float:
    """Seconds after failed attempt n: BYTESTACK_WEBHOOK_BACKOFF_SECONDS × 2^(n−1)."""
    return current_app.config["WEBHOOK_BACKOFF_SECONDS"] * 2 ** (attempt - 1)


def plan(run: Run, job: Job | None) -> list[Planned]:
    """One delivery per webhook subscribed to the run's event, and one to the job's URL."""
    payload = payload_of(run, job)
    event = payload["event"]
    hooks = db.session.scalars(
        select(Webhook).where(Webhook.project_id == run.project_id).order_by(Webhook.id)
    )
    planned = [Planned(hook.public_id, event, payload) for hook in hooks if event in hook.events]
    if job is not None and job.webhook_url:
        planned.append(Planned(JOB_TARGET, event, payload))
    return planned


# --- the project's secret (a job's own webhook_url is signed with it) -----------------------


def project_secret(project_id: int) -> str:
    """The project's signing secret, made on first use (compare-and-set: two first uses at
    once keep one secret)."""
    db.session.execute(
        update(Project)
        .where(Project.id == project_id, Project.webhook_secret_encrypted.is_(None))
        .values(webhook_secret_encrypted=encrypt(new_secret()))
    )
    db.session.commit()
    stored = db.session.scalar(
        select(Project.webhook_secret_encrypted).where(Project.id == project_id)
    )
    return decrypt(stored)


def rotate_project_secret(project_id: int) -> str:
    secret = new_secret()
    db.session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(webhook_secret_encrypted=encrypt(secret))
    )
    db.session.commit()
    return secret


# --- sending ---------------------------------------------------------------------------------


class _Gone(Exception):
    """The delivery's endpoint no longer exists: nothing to send, nowhere to log."""


def _endpoint(delivery: Delivery) -> tuple[str, str, int | None, int | None]:
    """(url, secret, webhook id, job id) of the delivery's target as they are now."""
    if delivery.target == JOB_TARGET:
        job = db.session.get(Job, delivery.job_id) if delivery.job_id is not None else None
        if job is None:
            raise _Gone("The job was deleted.")
        if not job.webhook_url:
            raise _Gone("The job no longer has a webhook URL.")
        return job.webhook_url, project_secret(delivery.project_id), None, job.id
    hook = db.session.scalar(
        select(Webhook).where(
            Webhook.public_id == delivery.target, Webhook.project_id == delivery.project_id
        )
    )
    if hook is None:
        raise _Gone("The webhook was deleted.")
    return hook.url, hook.secret, hook.id, delivery.job_id


def _clean(text: str | None, limit: int | None = None) -> str | None:
    """Text a receiver sent, fit for a column: no NUL (PostgreSQL refuses it), cut to `limit`."""
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    return text[:limit] if limit else text


def judge(status_code: int) -> Outcome:
    """2xx is delivered; a 4xx other than 408/429 is refused for good; anything else retried."""
    if 200 <= status_code < 300:
        return Outcome(True, status_code)
    try:
        reason = HTTPStatus(status_code).phrase
    except ValueError:
        reason = ""
    message = f"The receiver answered HTTP {status_code} {reason}".rstrip() + "."
    if 300 <= status_code < 400:
        message += " Redirects are not followed: give the webhook its final URL."
    permanent = 400 <= status_code < 500 and status_code not in RETRIED_CLIENT_ERRORS
    return Outcome(False, status_code, message, retry=not permanent)


def send(delivery: Delivery) -> Outcome:
    """One signed POST of the delivery's payload; the attempt is logged whatever happens."""
    try:
        url, secret, webhook_id, job_id = _endpoint(delivery)
    except _Gone as exc:
        return Outcome(False, error=str(exc), retry=False)
    except DecryptionError as exc:
        return _logged(
            delivery,
            None,
            job_id=delivery.job_id,
            outcome=Outcome(False, error=str(exc), retry=False),
        )
    body = body_of(delivery.payload)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        "X-ByteStack-Event": delivery.event,
        "X-ByteStack-Delivery": delivery.public_id,
    }
    policy = FetchPolicy(
        timeout=TIMEOUT_SECONDS,
        max_bytes=RESPONSE_CAP,
        allow_private=current_app.config["ALLOW_PRIVATE_NETWORKS"],
    )
    started_at = now()
    started = time.monotonic()
    excerpt = None
    try:
        response = post(url, body, policy, headers)
    except RefusedURL as exc:
        outcome = Outcome(False, error=str(exc), retry=False)
    except FetchError as exc:
        outcome = Outcome(False, error=_clean(str(exc), 1000))
    else:
        outcome = judge(response.status_code)
        excerpt = _clean(response.content.decode("utf-8", errors="replace"), EXCERPT_CHARS)
    duration_ms = int((time.monotonic() - started) * 1000)
    return _logged(delivery, webhook_id, job_id, outcome, started_at, duration_ms, excerpt)


def _logged(
    delivery, webhook_id, job_id, outcome, started_at=None, duration_ms=None, excerpt=None
) -> Outcome:
    """Write the attempt's log row (committed: the outbox records the outcome after)."""
    if webhook_id is None and job_id is None:
        return outcome
    db.session.add(
        WebhookDelivery(
            webhook_id=webhook_id,
            job_id=job_id,
            run_id=delivery.run_id,
            event=delivery.event,
            attempt=delivery.attempt,
            status_code=outcome.status_code,
            error=outcome.error,
            created_at=started_at or now(),
            duration_ms=duration_ms,
            response_excerpt=excerpt,
            delivery_id=delivery.id,
        )
    )
    db.session.commit()
    return outcome


# --- resend ----------------------------------------------------------------------------------


def resend(delivery: Delivery) -> bool:
    """Make a delivery due now for another attempt (one more, if it was out of attempts);
    False while an attempt of it is under way (it is not taken from its sender)."""
    changed = db.session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status.in_(("pending", "delivered", "failed")))
        .values(status="pending", next_attempt_at=now())
    ).rowcount
    db.session.commit()
    if changed:
        try:
            enqueue_notifications(
                get_redis(), [("send_due", f"resend-{delivery.public_id}-{delivery.attempt}")]
            )
        except (RedisError, RuntimeError) as exc:  # the sweep wakes a sender within seconds
            log.warning("resend of %s left to the sweep (%s)", delivery.public_id, exc)
    return bool(changed)


register(Kind(name=KIND, plan=plan, send=send, backoff=backoff, max_attempts=MAX_ATTEMPTS))
