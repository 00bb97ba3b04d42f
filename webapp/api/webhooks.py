"""Webhooks over the API (admin): list, create (secret shown once), delete, rotate."""

from __future__ import annotations

from flask import g

from .. import schemas
from ..settings import webhooks as service
from . import bp
from .auth import json_body, require
from .openapi import NO_CONTENT, Reply, documented
from .serialize import respond, webhook_out


@bp.get("/webhooks")
@require("admin")
@documented(
    "listWebhooks", "webhooks", {200: Reply("The webhooks, oldest first.", schemas.WebhookList)}
)
def list_webhooks():
    """The project's webhooks, oldest first; secrets are never listed."""
    webhooks = service.list_webhooks(g.project)
    return respond(schemas.WebhookList(data=[webhook_out(webhook) for webhook in webhooks]))


@bp.post("/webhooks")
@require("admin")
@documented(
    "createWebhook",
    "webhooks",
    {201: Reply("The webhook with its secret.", schemas.WebhookCreated)},
    body=schemas.WebhookCreate,
)
def create_webhook():
    """Create a webhook; the answer carries its signing secret, shown this once."""
    body = json_body()
    webhook, secret = service.create_webhook(g.project, body.get("url"), body.get("events"))
    return respond(webhook_out(webhook, schemas.WebhookCreated, secret=secret), 201)


@bp.delete("/webhooks/<webhook_id>")
@require("admin")
@documented("deleteWebhook", "webhooks", NO_CONTENT)
def delete_webhook(webhook_id: str):
    """Delete a webhook and its delivery history."""
    service.delete_webhook(service.get_webhook(g.project, webhook_id))
    return "", 204


@bp.post("/webhooks/<webhook_id>/rotate")
@require("admin")
@documented(
    "rotateWebhookSecret", "webhooks", {200: Reply("The new secret.", schemas.WebhookSecret)}
)
def rotate_webhook_secret(webhook_id: str):
    """Replace a webhook's secret; the new one is shown this once."""
    webhook = service.get_webhook(g.project, webhook_id)
    secret = service.rotate_secret(webhook)
    return respond(schemas.WebhookSecret(id=webhook.public_id, secret=secret))
