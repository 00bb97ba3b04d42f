"""One-off queries over the API."""

from __future__ import annotations

from flask import g, jsonify
from sqlalchemy import select

from ..extensions import db
from ..models import Record
from ..queries.service import get_query, submit_query
from ..timeutil import isoformat
from . import bp
from .auth import json_body, require
from .serialize import record_to_api


@bp.post("/queries")
@require("write")
def create_query():
    """Queue a one-off query."""
    run = submit_query(g.project, json_body())
    return jsonify(id=run.public_id, status=run.status, created_at=isoformat(run.created_at)), 202


@bp.get("/queries/<query_id>")
@require("read")
def show_query(query_id: str):
    """A one-off query's status, and its results once completed."""
    run = get_query(g.project, query_id)
    body = {
        "id": run.public_id,
        "status": run.status,
        "prompt": (run.params or {}).get("prompt"),
        "created_at": isoformat(run.created_at),
        "started_at": isoformat(run.started_at),
        "finished_at": isoformat(run.finished_at),
        "record_count": run.record_count,
    }
    if run.status == "completed":
        records = db.session.scalars(
            select(Record).where(Record.run_id == run.id).order_by(Record.position)
        )
        body["results"] = [record_to_api(record) for record in records]
        if run.error:
            body["warnings"] = run.error
    if run.status == "failed":
        body["error"] = run.error
    return jsonify(body)
