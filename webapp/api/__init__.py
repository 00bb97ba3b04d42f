"""The HTTP API v1 (see API.md): Bearer keys, JSON in and out, one error shape."""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, request

from ..extensions import limiter

bp = Blueprint("api", __name__, url_prefix="/v1")


def _api_client() -> str:
    """Rate limits count per API key (hashed), or per address for requests without one."""
    header = request.headers.get("Authorization", "")
    if header:
        return "key:" + hashlib.sha256(header.encode("utf-8", "replace")).hexdigest()
    return "addr:" + (request.remote_addr or "unknown")


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_api_client)(bp)

from . import channels, errors, jobs, keys, openapi, project, queries, schedules, sources, storage, webhooks  # noqa: F401  (routes register on import)
