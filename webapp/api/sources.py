"""The sources registry over the API: what each source is and whether it can run."""

from __future__ import annotations

from flask import g, jsonify

from ..settings.credentials import project_credentials
from ..sources import list_sources
from . import bp
from .auth import require


@bp.get("/sources")
@require("read")
def get_sources():
    """Every source with its status (ready, needs_credentials, unavailable) and why."""
    return jsonify(list_sources(project_credentials(g.project.id)))
