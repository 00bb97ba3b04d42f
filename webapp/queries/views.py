"""Query: the one-off query page, run once, with results shown live when done."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import select

from ..errors import ValidationError
from ..extensions import db
from ..jobs.forms import DATE_RANGES, query_data_from_form, source_line
from ..models import Record, Run
from ..projects import current_project
from ..prompt import parse_prompt
from ..schemas import LIMIT_DEFAULT
from .service import get_query, submit_query

bp = Blueprint("queries", __name__)
EMPTY = {"prompt": "", "sources": "", "limit": str(LIMIT_DEFAULT), "date_range": ""}
RECENT = 10


def _page(values: dict, errors: dict, status: int = 200):
    recent = db.session.scalars(
        select(Run)
        .where(Run.project_id == current_project().id, Run.trigger == "query")
        .order_by(Run.id.desc())
        .limit(RECENT)
    ).all()
    return render_template(
        "queries/page.html",
        values=values,
        errors=errors,
        date_ranges=DATE_RANGES,
        plan=parse_prompt(values.get("prompt", "")),
        recent=recent,
    ), status


@bp.get("/query")
def query_page():
    """The one-off query form and recent queries."""
    values = {**EMPTY, **{k: v for k, v in request.args.items() if k in EMPTY}}
    return _page(values, {})


@bp.post("/query")
def run_query():
    """Run a query once; show its page, which updates itself until the results are in."""
    values = {**EMPTY, **request.form.to_dict()}
    try:
        run = submit_query(current_project(), query_data_from_form(request.form))
    except ValidationError as exc:
        return _page(values, exc.errors, 422)
    return redirect(url_for("queries.query_result", query_id=run.public_id), 303)



@bp.get("/query/<query_id>")
def query_result(query_id: str):
    """A query's status and results."""
    run = get_query(current_project(), query_id)
    return render_template("queries/result.html", run=run, **_result_context(run))


@bp.get("/query/<query_id>/status")
def query_status(query_id: str):
    """The results panel, polled every 2 s until the query ends."""
    run = get_query(current_project(), query_id)
    return render_template("queries/_results.html", run=run, **_result_context(run))


def _result_context(run: Run) -> dict:
    records = []
    if run.status == "completed":
        records = db.session.scalars(
            select(Record).where(Record.run_id == run.id).order_by(Record.position)
        ).all()
    params = run.params or {}
    save = urlencode(
        {
            "prompt": params.get("prompt", ""),
            # Each source as New Job's text box takes it, options and all.
            "sources": "\n".join(source_line(s) for s in params.get("sources", [])),
            "limit": params.get("limit", LIMIT_DEFAULT),
            "date_range": (params.get("date_range") or {}).get("last", ""),
        }
    )
    return {"records": records, "params": params, "save_query": save}
