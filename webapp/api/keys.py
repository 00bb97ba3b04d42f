"""API keys over the API (admin): list, create (the key shown once), revoke."""

from __future__ import annotations

from flask import g

from .. import schemas
from ..settings import keys as service
from . import bp
from .auth import json_body, require
from .openapi import NO_CONTENT, Reply, documented
from .serialize import key_out, respond


@bp.get("/api-keys")
@require("admin")
@documented(
    "listApiKeys",
    "api-keys",
    {200: Reply("The keys, newest first, revoked ones too.", schemas.ApiKeyList)},
)
def list_api_keys():
    """The project's keys, newest first, revoked ones included; never a secret or hash."""
    return respond(schemas.ApiKeyList(data=[key_out(key) for key in service.list_keys(g.project)]))


@bp.post("/api-keys")
@require("admin")
@documented(
    "createApiKey",
    "api-keys",
    {201: Reply("The key with its secret.", schemas.ApiKeyCreated)},
    body=schemas.ApiKeyCreate,
)
def create_api_key():
    """Create a key; the answer carries the key itself, shown this once."""
    body = json_body()
    key, secret = service.create_key(g.project, body.get("name"), body.get("scope"))
    return respond(key_out(key, schemas.ApiKeyCreated, key=secret), 201)


@bp.delete("/api-keys/<key_id>")
@require("admin")
@documented("revokeApiKey", "api-keys", NO_CONTENT)
def revoke_api_key(key_id: str):
    """Revoke a key (this one too, if asked): it answers 401 from now on."""
    service.revoke_key(service.get_key(g.project, key_id))
    return "", 204
