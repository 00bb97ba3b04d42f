"""The HTTP API v1 (see API.md): Bearer keys, JSON in and out, one error shape."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")

from . import errors, jobs, queries, schedules  # noqa: E402,F401  (routes register on import)
