"""Webhooks: one copy of the rules for the dashboard and the API (delivery comes later)."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select

from ..errors import NotFoundError, ValidationError
from ..extensions import db
from ..models import Project
from .models import WEBHOOK_EVENTS, Webhook, WebhookDelivery

MAX_URL_LENGTH = 2000
MAX_WEBHOOKS = 50
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def clean_url(url) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValidationError({"url": "Enter the URL that receives the events."})
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError({"url": f"A URL can be at most {MAX_URL_LENGTH} characters."})
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a port out of range raises here)
    except ValueError:
        raise ValidationError({"url": "That is not a valid URL."}) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationError({"url": "Use an http:// or https:// URL with a host."})
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise ValidationError({"url": "A URL cannot contain spaces or control characters."})
    return url


def clean_events(events) -> list[str]:
    if not isinstance(events, list) or not events:
        raise ValidationError(
            {"events": f"Choose at least one event: {', '.join(WEBHOOK_EVENTS)}."}
        )
    unknown = [event for event in events if event not in WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError(
            {"events": f"Unknown event {unknown[0]!r}: use {', '.join(WEBHOOK_EVENTS)}."}
        )
    return [event for event in WEBHOOK_EVENTS if event in events]  # stable order, no repeats


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
    errors: dict[str, str] = {}
    cleaned: dict = {}
    for name, clean, value in (("url", clean_url, url), ("events", clean_events, events)):
        try:
            cleaned[name] = clean(value)
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    if len(list_webhooks(project)) >= MAX_WEBHOOKS:
        raise ValidationError({"url": f"A project can have at most {MAX_WEBHOOKS} webhooks."})
    secret = new_secret()
    webhook = Webhook(project_id=project.id, url=cleaned["url"], events=cleaned["events"])
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
