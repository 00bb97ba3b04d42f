"""The sources registry over the API: what each source is and whether it can run."""

from __future__ import annotations

from flask import g, jsonify

from .. import schemas
from ..settings.credentials import project_credentials
from ..sources import list_sources
from . import bp
from .auth import require
from .openapi import Reply, documented


@bp.get("/sources")
@require("read")
@documented("listSources", "sources", {200: Reply("The sources.", list[schemas.Source])})
def get_sources():
    """Every source with its status (ready, needs_credentials, unavailable) and why."""
    listed = list_sources(project_credentials(g.project.id))
    return jsonify([schemas.json_of(schemas.Source.model_validate(s)) for s in listed])
