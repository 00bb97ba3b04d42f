"""Dashboard → Jobs: the list, New Job, a job's page and its actions."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, or_, select

from ..accounts.access import requires
from ..errors import ConflictError, NotFoundError, ValidationError
from ..extensions import db, htmx
from ..models import JOB_STATES, Job, Record, Run
from ..projects import current_project
from ..prompt import parse_prompt
from ..schedules import ScheduleError, parse_schedule, timezone_names
from ..timeutil import now
from . import service
from ..settings.credentials import project_credentials
from ..sources import list_sources
from .forms import (
    DATE_RANGES,
    EMPTY_FORM,
    PRESETS,
    form_from_job,
    job_data_from_form,
    picked_sources,
    schedule_from_form,
    source_choices,
)

bp = Blueprint("jobs", __name__)
RUNS_PER_PAGE = 25
RECORDS_PER_PAGE = 50


def _project():
    return current_project()


def _job_or_404(job_id: str) -> Job:
    try:
        return service.get_job(_project(), job_id)
    except NotFoundError:
        abort(404)


def _page_number() -> int:
    # Bounded: an offset past 64 bits would overflow the database driver.
    return min(max(request.args.get("page", 1, type=int) or 1, 1), 1_000_000)


@bp.get("/")
def index():
    """The dashboard opens on Jobs."""
    return redirect(url_for("jobs.list_jobs"))


JOBS_PER_PAGE = 50


@bp.get("/jobs")
def list_jobs():
    """The job list, filtered by state and searched by name or prompt."""
    state = request.args.get("state", "")
    search = request.args.get("q", "").strip()[:200]
    page = _page_number()
    query = select(Job).where(Job.project_id == _project().id)
    if state in JOB_STATES:
        query = query.where(Job.state == state)
    if search:
        pattern = f"%{escape_like(search)}%"
        query = query.where(
            or_(Job.name.ilike(pattern, escape="\\"), Job.prompt.ilike(pattern, escape="\\"))
        )
    jobs = db.session.scalars(
        query.order_by(Job.id.desc()).offset((page - 1) * JOBS_PER_PAGE).limit(JOBS_PER_PAGE + 1)
    ).all()
    has_next = len(jobs) > JOBS_PER_PAGE
    jobs = jobs[:JOBS_PER_PAGE]
    return render_template(
        "jobs/list.html",
        jobs=jobs,
        last_runs=last_runs_of(jobs),
        state=state,
        search=search,
        states=JOB_STATES,
        page=page,
        has_next=has_next,
        filtered=bool(state or search),
    )


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def last_runs_of(jobs: list[Job]) -> dict[int, Run]:
    """Each job's latest run that was not skipped, in one query for the whole page."""
    if not jobs:
        return {}
    latest = (
        select(func.max(Run.id))
        .where(Run.job_id.in_([job.id for job in jobs]), Run.status != "skipped")
        .group_by(Run.job_id)
    )
    return {run.job_id: run for run in db.session.scalars(select(Run).where(Run.id.in_(latest)))}


def _render_form(template: str, values: dict, errors: dict, job: Job | None = None, status=200):
    return render_template(
        template,
        values=values,
        errors=errors,
        job=job,
        presets=PRESETS,
        date_ranges=DATE_RANGES,
        timezones=timezone_names(),
        preview=_preview(values),
        plan=parse_prompt(values.get("prompt", "")),
        source_choices=source_choices(list_sources(project_credentials(_project().id))),
    ), status


@bp.get("/jobs/new")
@requires("editor")
def new_job():
    """The New Job form, prefilled from the query string ("Save as job" on a query)."""
    prefill = {k: v for k, v in request.args.items() if k in EMPTY_FORM and k != "source_ids"}
    return _render_form("jobs/form.html", {**EMPTY_FORM, **prefill}, {})


@bp.post("/jobs/new")
def create_job():
    """Create a job from the form; on errors re-render with each message by its field."""
    values = {**EMPTY_FORM, **request.form.to_dict(), "source_ids": picked_sources(request.form)}
    try:
        job = service.create_job(_project(), job_data_from_form(request.form))
    except ValidationError as exc:
        return _render_form("jobs/form.html", values, exc.errors, status=422)
    flash(f"Job “{job.name}” created. Next run {job.next_run_at:%Y-%m-%d %H:%M} UTC.")
    return redirect(url_for("jobs.job_page", job_id=job.public_id), 303)


@bp.get("/jobs/<job_id>/edit")
@requires("editor")
def edit_job(job_id: str):
    """The edit form of a job."""
    job = _job_or_404(job_id)
    return _render_form("jobs/form.html", form_from_job(job), {}, job=job)


@bp.post("/jobs/<job_id>/edit")
def update_job(job_id: str):
    """Save an edited job."""
    job = _job_or_404(job_id)
    values = {**EMPTY_FORM, **request.form.to_dict(), "source_ids": picked_sources(request.form)}
    try:
        service.update_job(job, job_data_from_form(request.form))
    except ValidationError as exc:
        db.session.rollback()
        return _render_form("jobs/form.html", values, exc.errors, job=job, status=422)
    flash("Job saved.")
    return redirect(url_for("jobs.job_page", job_id=job.public_id), 303)


def _preview(values: dict) -> dict:
    try:
        schedule = parse_schedule(schedule_from_form(values), values.get("timezone") or "UTC")
    except ScheduleError as exc:
        return {"error": exc.message, "field": exc.field}
    return {
        "description": schedule.describe(),
        "runs": schedule.next_runs(now(), 5),
        "timezone": schedule.timezone,
    }


@bp.post("/schedule/preview")
@requires("viewer")
def schedule_preview():
    """The live schedule preview under the form (HTMX partial)."""
    return render_template("jobs/_schedule_preview.html", preview=_preview(request.form))


@bp.post("/prompt/plan")
@requires("viewer")
def prompt_plan():
    """The live query plan under the prompt (HTMX partial)."""
    return render_template("jobs/_plan.html", plan=parse_prompt(request.form.get("prompt", "")))


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """A job's page: its state, actions and run history."""
    job = _job_or_404(job_id)
    page = _page_number()
    runs = db.session.scalars(
        select(Run)
        .where(Run.job_id == job.id)
        .order_by(Run.id.desc())
        .offset((page - 1) * RUNS_PER_PAGE)
        .limit(RUNS_PER_PAGE + 1)
    ).all()
    return render_template(
        "jobs/detail.html",
        job=job,
        runs=runs[:RUNS_PER_PAGE],
        page=page,
        has_next=len(runs) > RUNS_PER_PAGE,
    )


@bp.get("/jobs/<job_id>/row")
def job_row(job_id: str):
    """One row of the job list (polled while the job runs)."""
    return render_template("jobs/_row.html", job=_job_or_404(job_id))


@bp.get("/jobs/<job_id>/status")
def job_status(job_id: str):
    """The state panel of a job's page (polled while the job runs)."""
    return _status_panel(_job_or_404(job_id))


def _status_panel(job: Job):
    response = make_response(render_template("jobs/_status.html", job=job))
    response.headers["HX-Trigger"] = "job-status-changed"  # the run history refreshes too
    return response


def _after_action(job: Job, message: str | None):
    target = request.headers.get("HX-Target", "") if htmx else ""
    if target == "job-status":
        return _status_panel(job)
    if target == f"job-{job.public_id}":
        return render_template("jobs/_row.html", job=job)
    if message:
        flash(message)
    return redirect(request.referrer or url_for("jobs.job_page", job_id=job.public_id), 303)


@bp.post("/jobs/<job_id>/pause")
def pause_job(job_id: str):
    """Pause a job."""
    job = service.pause_job(_job_or_404(job_id))
    return _after_action(job, "Job paused: it will not run until you resume it.")


@bp.post("/jobs/<job_id>/resume")
def resume_job(job_id: str):
    """Resume a job from now."""
    job = service.resume_job(_job_or_404(job_id))
    return _after_action(job, "Job resumed.")


@bp.post("/jobs/<job_id>/run")
def run_job(job_id: str):
    """Run a job now."""
    job = _job_or_404(job_id)
    try:
        service.run_now(job)
        message = "Run queued."
    except ConflictError as exc:
        message = exc.message
    db.session.refresh(job)
    return _after_action(job, message)


@bp.post("/jobs/<job_id>/delete")
def delete_job(job_id: str):
    """Delete a job with its runs and records."""
    job = _job_or_404(job_id)
    name = job.name
    service.delete_job(job)
    if htmx and request.headers.get("HX-Target") == f"job-{job_id}":
        return ""
    flash(f"Job “{name}” deleted.")
    return redirect(url_for("jobs.list_jobs"), 303)


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    """A run and its records."""
    try:
        run = service.get_run(_project(), run_id)
    except NotFoundError:
        abort(404)
    page = _page_number()
    records = db.session.scalars(
        select(Record)
        .where(Record.run_id == run.id)
        .order_by(Record.position)
        .offset((page - 1) * RECORDS_PER_PAGE)
        .limit(RECORDS_PER_PAGE + 1)
    ).all()
    return render_template(
        "runs/detail.html",
        run=run,
        records=records[:RECORDS_PER_PAGE],
        page=page,
        has_next=len(records) > RECORDS_PER_PAGE,
        total=db.session.scalar(select(func.count(Record.id)).where(Record.run_id == run.id)),
    )
