"""Webhooks: one copy of the rules for the dashboard and the API (delivery comes later)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from ..errors import NotFoundError, ValidationError
from ..extensions import db
from ..models import Project
from ..schemas import WebhookCreate, validate
from .models import Webhook, WebhookDelivery

MAX_WEBHOOKS = 50
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def list_webhooks(project: Project) -> list[Webhook]:
    return list(
        db.session.scalars(
            select(Webhook).where(Webhook.project_id == project.id).order_by(Webhook.id)
        )
    )


def get_webhook(project: Project, public_id: str) -> Webhook:
    webhook = db.session.scalar(
        select(Webhook).where(Webhook.public_id == public_id, Webhook.project_id == project.id)
    )
    if webhook is None:
        raise NotFoundError("No such webhook in this project.")
    return webhook


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


def recent_deliveries(webhook: Webhook, limit: int = 20) -> list[WebhookDelivery]:
    return list(
        db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
