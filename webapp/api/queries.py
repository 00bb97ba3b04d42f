"""One-off queries over the API."""

from __future__ import annotations

from flask import g
from sqlalchemy import select

from .. import schemas
from ..extensions import db
from ..models import Record
from ..queries.service import get_query, submit_query
from . import bp
from .auth import json_body, require
from .openapi import Reply, documented
from .serialize import record_out, respond


@bp.post("/queries")
@require("write")
@documented(
    "createQuery",
    "queries",
    {202: Reply("The query is queued.", schemas.QueryAccepted)},
    body=schemas.QueryCreate,
)
def create_query():
    """Queue a one-off query."""
    run = submit_query(g.project, json_body())
    accepted = schemas.QueryAccepted(id=run.public_id, status=run.status, created_at=run.created_at)
    return respond(accepted, 202)


@bp.get("/queries/<query_id>")
@require("read")
@documented("getQuery", "queries", {200: Reply("The query.", schemas.Query)})
def show_query(query_id: str):
    """A one-off query's status, and its results once completed."""
    run = get_query(g.project, query_id)
    outcome = {}
    if run.status == "completed":
        records = db.session.scalars(
            select(Record).where(Record.run_id == run.id).order_by(Record.position)
        )
        outcome["results"] = [record_out(record) for record in records]
        if run.error:
            outcome["warnings"] = run.error
    if run.status == "failed":
        outcome["error"] = run.error
    query = schemas.Query(
        id=run.public_id,
        status=run.status,
        prompt=(run.params or {}).get("prompt"),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        record_count=run.record_count,
        **outcome,
    )
    return respond(query)
