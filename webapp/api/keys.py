"""API keys over the API (admin): list, create (the key shown once), revoke."""

from __future__ import annotations

from flask import g, jsonify

from ..models import ApiKey
from ..settings import keys as service
from ..timeutil import isoformat
from . import bp
from .auth import json_body, require


def key_to_api(key: ApiKey) -> dict:
    return {
        "id": key.public_id,
        "name": key.name,
        "scope": key.scope,
        "prefix": key.prefix,
        "created_at": isoformat(key.created_at),
        "last_used_at": isoformat(key.last_used_at),
        "revoked_at": isoformat(key.revoked_at),
    }


@bp.get("/api-keys")
@require("admin")
def list_api_keys():
    """The project's keys, newest first, revoked ones included; never a secret or hash."""
    return jsonify(data=[key_to_api(key) for key in service.list_keys(g.project)])


@bp.post("/api-keys")
@require("admin")
def create_api_key():
    """Create a key; the answer carries the key itself, shown this once."""
    body = json_body()
    key, secret = service.create_key(g.project, body.get("name"), body.get("scope"))
    return jsonify({**key_to_api(key), "key": secret}), 201


@bp.delete("/api-keys/<key_id>")
@require("admin")
def revoke_api_key(key_id: str):
    """Revoke a key (this one too, if asked): it answers 401 from now on."""
    service.revoke_key(service.get_key(g.project, key_id))
    return "", 204
