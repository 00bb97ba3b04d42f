"""Dashboard → Analytics: a project's or a job's charts over a date range, with their numbers."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from sqlalchemy import select

from ..extensions import db
from ..jobs import service as jobs_service
from ..models import Job
from ..projects import current_project
from ..timeutil import now
from . import service
from .charts import CHARTS, build_figures, render_svg
from .service import DateRange, RangeError, Scope

bp = Blueprint("analytics", __name__)

# The SVG draws its own styles: it is an image, so it gets a policy of its own that allows
# exactly that (the page's `style-src 'self'` would block the inline <style> if it were opened
# directly) and nothing else — no scripts, no fetches.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"



def _range() -> tuple[DateRange, str | None]:
    today = now().date()
    try:
        return service.parse_range(request.args, today), None
    except RangeError as exc:
        default = DateRange.last(service.DEFAULT_PRESET, today)
        return default, f"{exc} Showing the {default.describe()} instead."


@bp.get("/analytics")
def project_page():
    """Analytics across all jobs of the project (the job selector leads to a job's page)."""
    job_id = request.args.get("job", "").strip()
    if job_id:
        args = {k: v for k, v in request.args.items() if k in ("range", "from", "to")}
        return redirect(url_for("analytics.job_page", job_id=job_id, **args))
    return _render_page(None)


@bp.get("/analytics/jobs/<job_id>")
def job_page(job_id: str):
    """Analytics of one job."""
    return _render_page(jobs_service.get_job(current_project(), job_id))


def _render_page(job: Job | None):
    project = current_project()
    rng, range_error = _range()
    summary, figures = build_figures(Scope(project.id, job.id if job else None), rng)
    jobs = db.session.execute(
        select(Job.public_id, Job.name).where(Job.project_id == project.id).order_by(Job.name)
    ).all()
    return render_template(
        "analytics/page.html",
        job=job,
        jobs=jobs,
        rng=rng,
        range_error=range_error,
        presets=service.PRESETS,
        summary=summary,
        figures=figures,
        sources={
            f.spec.name: _chart_url(f.spec.name, job, rng, v=f.table.digest()) for f in figures
        },
    )


def _chart_url(name: str, job: Job | None, rng: DateRange, **extra: str) -> str:
    args = {**rng.query_args(), **extra}
    if job is None:
        return url_for("analytics.project_chart", name=name, **args)
    return url_for("analytics.job_chart", job_id=job.public_id, name=name, **args)


@bp.get("/analytics/chart/<name>.svg")
def project_chart(name: str):
    """One chart of the project's analytics as an SVG image."""
    return _chart_response(name, None)


@bp.get("/analytics/jobs/<job_id>/chart/<name>.svg")
def job_chart(job_id: str, name: str):
    """One chart of a job's analytics as an SVG image."""
    return _chart_response(name, jobs_service.get_job(current_project(), job_id))


def _chart_response(name: str, job: Job | None) -> Response:
    spec = CHARTS.get(name)
    if spec is None:
        abort(404)
    try:
        rng = service.parse_range(request.args, now().date())
    except RangeError as exc:
        abort(400, str(exc))
    data = spec.load(Scope(current_project().id, job.id if job else None), rng)
    response = Response(render_svg(spec.draw(data, rng), spec.title), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY
    # The page puts a digest of the numbers in `v`. When they still match, this URL names
    # exactly this picture and the browser may keep it; otherwise it must ask again.
    digest = spec.table(data, rng, job is None).digest()
    if request.args.get("v") == digest:
        response.headers["Cache-Control"] = "private, max-age=86400"
    else:
        response.headers["Cache-Control"] = "no-cache"
    return response
