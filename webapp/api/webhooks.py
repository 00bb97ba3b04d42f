"""Webhooks over the API (admin): list, create (secret shown once), delete, rotate."""

from __future__ import annotations

from flask import g, jsonify

from ..settings import webhooks as service
from ..settings.models import Webhook
from ..timeutil import isoformat
from . import bp
from .auth import json_body, require


def webhook_to_api(webhook: Webhook) -> dict:
    return {
        "id": webhook.public_id,
        "url": webhook.url,
        "events": list(webhook.events),
        "created_at": isoformat(webhook.created_at),
    }


@bp.get("/webhooks")
@require("admin")
def list_webhooks():
    """The project's webhooks, oldest first; secrets are never listed."""
    return jsonify(data=[webhook_to_api(webhook) for webhook in service.list_webhooks(g.project)])


@bp.post("/webhooks")
@require("admin")
def create_webhook():
    """Create a webhook; the answer carries its signing secret, shown this once."""
    body = json_body()
    webhook, secret = service.create_webhook(g.project, body.get("url"), body.get("events"))
    return jsonify({**webhook_to_api(webhook), "secret": secret}), 201


@bp.delete("/webhooks/<webhook_id>")
@require("admin")
def delete_webhook(webhook_id: str):
    """Delete a webhook and its delivery history."""
    service.delete_webhook(service.get_webhook(g.project, webhook_id))
    return "", 204


@bp.post("/webhooks/<webhook_id>/rotate")
@require("admin")
def rotate_webhook_secret(webhook_id: str):
    """Replace a webhook's secret; the new one is shown this once."""
    webhook = service.get_webhook(g.project, webhook_id)
    return jsonify(id=webhook.public_id, secret=service.rotate_secret(webhook))
