"""Webhooks: one copy of the rules for the dashboard and the API, and what Settings →
Webhooks shows of their deliveries (each attempt, the job URLs', the project's secret)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..errors import ConflictError, ValidationError
from ..extensions import db
from ..models import Job, Project, get_in_project
from ..notifications import webhooks as webhook_kind
from ..notifications.models import Delivery
from ..notifications.webhooks import new_secret
from ..schemas import WebhookCreate, validate
from .models import Webhook, WebhookDelivery

MAX_WEBHOOKS = 50
LOG_LENGTH = 20  # attempts shown per endpoint


def list_webhooks(project: Project) -> list[Webhook]:
    return list(
        db.session.scalars(
            select(Webhook).where(Webhook.project_id == project.id).order_by(Webhook.id)
        )
    )


def get_webhook(project: Project, public_id: str) -> Webhook:
    return get_in_project(Webhook, project.id, public_id, "No such webhook in this project.")


def create_webhook(project: Project, url, events) -> tuple[Webhook, str]:
    """Create a webhook; its secret is returned once (stored encrypted, for signing)."""
    spec = validate(WebhookCreate, {"url": url, "events": events})
    if len(list_webhooks(project)) >= MAX_WEBHOOKS:
        raise ValidationError({"url": f"A project can have at most {MAX_WEBHOOKS} webhooks."})
    secret = new_secret()
    webhook = Webhook(project_id=project.id, url=spec.url, events=spec.events)
    webhook.secret = secret
    db.session.add(webhook)
    db.session.commit()
    return webhook, secret


def rotate_secret(webhook: Webhook) -> str:
    """Replace the webhook's secret; the new one is returned once."""
    secret = new_secret()
    webhook.secret = secret
    db.session.commit()
    return secret


def delete_webhook(webhook: Webhook) -> None:
    db.session.delete(webhook)
    db.session.commit()


# --- the delivery log ------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """One logged attempt, with its outbox row; `newest` marks the newest attempt shown of
    that delivery, where its state (retry due, delivered, failed) and Resend appear."""

    attempt: WebhookDelivery
    delivery: Delivery | None
    newest: bool


def _entries(attempts: list[WebhookDelivery]) -> list[LogEntry]:
    ids = {a.delivery_id for a in attempts if a.delivery_id is not None}
    rows = {d.id: d for d in db.session.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    seen: set[int | None] = set()
    entries = []
    for attempt in attempts:  # newest first
        newest = attempt.delivery_id is not None and attempt.delivery_id not in seen
        seen.add(attempt.delivery_id)
        entries.append(LogEntry(attempt, rows.get(attempt.delivery_id), newest))
    return entries


def delivery_log(webhook: Webhook, limit: int = LOG_LENGTH) -> list[LogEntry]:
    """A webhook's latest attempts, newest first."""
    return _entries(
        list(
            db.session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == webhook.id)
                .order_by(WebhookDelivery.id.desc())
                .limit(limit)
            )
        )
    )


def job_url_logs(project: Project, limit: int = LOG_LENGTH) -> list[tuple[Job, list[LogEntry]]]:
    """Each job of the project with a webhook_url, by name, with its URL's latest attempts."""
    jobs = list(
        db.session.scalars(
            select(Job)
            .where(Job.project_id == project.id, Job.webhook_url.is_not(None))
            .order_by(Job.name, Job.id)
        )
    )
    attempts: dict[int, list[WebhookDelivery]] = {job.id: [] for job in jobs}
    if jobs:
        rows = db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id.is_(None), WebhookDelivery.job_id.in_(attempts))
            .order_by(WebhookDelivery.id.desc())
            .limit(limit * len(jobs))
        )
        for row in rows:
            if len(attempts[row.job_id]) < limit:
                attempts[row.job_id].append(row)
    return [(job, _entries(attempts[job.id])) for job in jobs]


def get_delivery(project: Project, public_id: str) -> Delivery:
    return get_in_project(
        Delivery, project.id, public_id, "No such webhook delivery in this project.",
        Delivery.kind == webhook_kind.KIND,
    )


def resend_delivery(project: Project, public_id: str) -> Delivery:
    """Send a delivery again, now (one more attempt if it had none left)."""
    found = get_delivery(project, public_id)
    if not webhook_kind.resend(found):
        raise ConflictError("This delivery is being sent right now; resend it once it is done.")
    return found


# --- the project's secret ----------------------------------------------------------------------


def project_secret(project: Project) -> str:
    """The secret that signs what jobs' own webhook URLs receive (made on first use)."""
    return webhook_kind.project_secret(project.id)


def rotate_project_secret(project: Project) -> str:
    return webhook_kind.rotate_project_secret(project.id)
