"""The sources registry over the API: what each source is and whether it can run."""

from __future__ import annotations

from flask import jsonify

from ..sources import list_sources
from ..sources.common import credentials_from_environment
from . import bp
from .auth import require


@bp.get("/sources")
@require("read")
def get_sources():
    """Every source with its status (ready, needs_credentials, unavailable) and why."""
    # Credentials come from the environment until Settings stores them per project.
    return jsonify(list_sources(credentials_from_environment()))
