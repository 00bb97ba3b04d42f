"""Dashboard → Jobs: the list, New Job, a job's page and its actions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, or_, select

from ..accounts.access import requires
from ..errors import ConflictError, ValidationError
from ..extensions import db, htmx
from ..models import JOB_STATES, Job, Record, Run
from ..paging import MAX_PAGE, numbered
from ..projects import current_project
from ..prompt import parse_prompt
from ..schedules import ScheduleError, parse_schedule, timezone_names
from ..settings.channels import list_channels
from ..settings.credentials import project_credentials
from ..sources import list_sources
from ..timeutil import now
from ..web import absolute_time, viewer_zone
from . import feed, service
from .forms import (
    DATE_RANGES,
    DIGEST_CHOICES,
    EMPTY_FORM,
    PRESETS,
    alert_values,
    form_from_job,
    job_data_from_form,
    picked_sources,
    schedule_from_form,
    source_choices,
)
from .timeline import day_timeline, project_timeline

bp = Blueprint("jobs", __name__)
RUNS_PER_PAGE = 25
RECORDS_PER_PAGE = 50


def _project():
    return current_project()



def _page_number() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)


@bp.get("/")
def index():
    """The dashboard opens on Jobs."""
    return redirect(url_for("jobs.list_jobs"))


JOBS_PER_PAGE = 50


@bp.get("/jobs")
def list_jobs():
    """The job list, filtered by state and searched by name or prompt; today across all jobs."""
    state = request.args.get("state", "")
    search = request.args.get("q", "").strip()[:200]
    page = _page_number()
    query = select(Job).where(Job.project_id == _project().id)
    if state in JOB_STATES:
        query = query.where(Job.state == state)
    if search:
        query = query.where(
            or_(
                Job.name.icontains(search, autoescape=True),
                Job.prompt.icontains(search, autoescape=True),
            )
        )
    jobs, has_next = numbered(query.order_by(Job.id.desc()), page, JOBS_PER_PAGE)
    context = {
        "rows": _rows(jobs),
        "state": state,
        "search": search,
        "page": page,
        "has_next": has_next,
        "filtered": bool(state or search),
    }
    if htmx and htmx.target == "job-results" and not htmx.history_restore_request:
        # The filter swaps the list alone; the address bar shows only the filters in use.
        clean = url_for(
            "jobs.list_jobs", q=search or None, state=state or None, page=page if page > 1 else None
        )
        return render_template("jobs/_list.html", **context), {"HX-Push-Url": clean}
    # A project without jobs gets the invitation to create one, not an empty day.
    has_jobs = bool(jobs) or context["filtered"]
    return render_template(
        "jobs/list.html",
        states=JOB_STATES,
        timeline=project_timeline(_project().id, viewer_zone()) if has_jobs else None,
        **context,
    )


@bp.get("/jobs/today")
def project_day():
    """Done today / Upcoming across every job of the project (refreshed when runs change)."""
    return render_template(
        "jobs/_timeline.html", timeline=project_timeline(_project().id, viewer_zone())
    )





@dataclass
class Progress:
    """How far a queued or running run has got: elapsed time, and the worker's counts."""

    run: Run
    elapsed_ms: int | None
    sources_done: int | None
    sources_total: int | None
    records: int | None


def run_progress(run: Run | None) -> Progress | None:
    """The progress of a run that is still going; None once it ended (or without a run)."""
    if run is None or not run.is_in_progress:
        return None
    counts = run.progress if isinstance(run.progress, dict) else {}

    def count(name: str) -> int | None:
        value = counts.get(name)
        return value if type(value) is int and value >= 0 else None

    elapsed = None
    if run.started_at is not None:
        elapsed = max(0, int((now() - run.started_at).total_seconds())) * 1000
    return Progress(run, elapsed, count("sources_done"), count("sources_total"), count("records"))


@dataclass
class JobView:
    """What a job's row or status panel shows; `seen` marks its runs as rendered, so a poll can
    tell whether the run history and the day's timeline need drawing again."""

    job: Job
    last: Run | None
    progress: Progress | None
    seen: str


def _rows(jobs: list[Job]) -> list[JobView]:
    """The view of each job, with two queries for the whole list."""
    last_runs = service.last_runs_of(jobs)
    newest: dict[int, int] = {}
    if jobs:
        newest = dict(
            db.session.execute(
                select(Run.job_id, func.max(Run.id))
                .where(Run.job_id.in_([job.id for job in jobs]))
                .group_by(Run.job_id)
            ).all()
        )
    return [
        JobView(
            job,
            last_runs.get(job.id),
            run_progress(last_runs.get(job.id)),
            _runs_mark(newest.get(job.id), last_runs.get(job.id)),
        )
        for job in jobs
    ]


def _runs_mark(newest_run_id: int | None, last: Run | None) -> str:
    # A new run (even a skipped one) or the last run's next status changes the mark; progress
    # within a run does not, since the panel or row shows it itself.
    state = f"{newest_run_id}:{last.id if last else ''}:{last.status if last else ''}"
    return hashlib.blake2s(state.encode(), digest_size=6).hexdigest()


def _view_of(job: Job) -> JobView:
    return _rows([job])[0]


def _with_runs_changed(body: str, view: JobView):
    """A row or panel; it announces `runs-changed` when the runs differ from what the page had,
    so the run history and the timeline refresh then, and only then."""
    response = make_response(body)
    if request.args.get("seen") != view.seen:
        response.headers["HX-Trigger"] = "runs-changed"
    return response


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
        alert_channels=list_channels(_project()),
        digests=DIGEST_CHOICES,
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
    values = {
        **EMPTY_FORM,
        **request.form.to_dict(),
        "source_ids": picked_sources(request.form),
        **alert_values(request.form),
    }
    try:
        job = service.create_job(_project(), job_data_from_form(request.form))
    except ValidationError as exc:
        return _render_form("jobs/form.html", values, exc.errors, status=422)
    flash(f"Job “{job.name}” created. Next run {absolute_time(job.next_run_at)}.")
    return redirect(url_for("jobs.job_page", job_id=job.public_id), 303)


@bp.get("/jobs/<job_id>/edit")
@requires("editor")
def edit_job(job_id: str):
    """The edit form of a job."""
    job = service.get_job(_project(), job_id)
    return _render_form("jobs/form.html", form_from_job(job), {}, job=job)


@bp.post("/jobs/<job_id>/edit")
def update_job(job_id: str):
    """Save an edited job."""
    job = service.get_job(_project(), job_id)
    values = {
        **EMPTY_FORM,
        **request.form.to_dict(),
        "source_ids": picked_sources(request.form),
        **alert_values(request.form),
    }
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


def _run_history(job: Job) -> dict:
    page = _page_number()
    runs, has_next = numbered(
        select(Run).where(Run.job_id == job.id).order_by(Run.id.desc()), page, RUNS_PER_PAGE
    )
    return {"job": job, "runs": runs, "page": page, "has_next": has_next}


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """A job's page: its state, actions, today's timeline and run history."""
    job = service.get_job(_project(), job_id)
    return render_template(
        "jobs/detail.html",
        view=_view_of(job),
        timeline=day_timeline(job, viewer_zone()),
        feed_url=_feed_url(job),
        **_run_history(job),
    )


def _feed_url(job: Job) -> str:
    return url_for("api.job_feed", job_id=job.public_id, token=feed.feed_token(job), _external=True)


@bp.post("/jobs/<job_id>/feed/rotate")
def rotate_feed(job_id: str):
    """Give the job's feed a new private URL; the old one stops working at once."""
    job = service.get_job(_project(), job_id)
    feed.rotate_feed_token(job)
    flash("The feed has a new private URL; the old one no longer works. Subscribe again with "
          "the new one.")
    return redirect(url_for("jobs.job_page", job_id=job.public_id, _anchor="feed"), 303)


@bp.get("/jobs/<job_id>/runs")
def job_runs(job_id: str):
    """A job's run history, one page (refreshed when its runs change)."""
    return render_template("jobs/_runs.html", **_run_history(service.get_job(_project(), job_id)))


@bp.get("/jobs/<job_id>/timeline")
def job_timeline(job_id: str):
    """A job's Done today / Upcoming (refreshed when its runs change)."""
    job = service.get_job(_project(), job_id)
    return render_template("jobs/_timeline.html", timeline=day_timeline(job, viewer_zone()))


@bp.get("/jobs/<job_id>/row")
def job_row(job_id: str):
    """One row of the job list (polled while the job runs)."""
    view = _view_of(service.get_job(_project(), job_id))
    return _with_runs_changed(render_template("jobs/_row.html", view=view), view)


@bp.get("/jobs/<job_id>/status")
def job_status(job_id: str):
    """The state panel of a job's page (polled while the job runs)."""
    view = _view_of(service.get_job(_project(), job_id))
    return _with_runs_changed(render_template("jobs/_status.html", view=view), view)


def _after_action(job: Job, message: str | None):
    target = request.headers.get("HX-Target", "") if htmx else ""
    if target in ("job-status", f"job-{job.public_id}"):
        view = _view_of(job)
        template = "jobs/_status.html" if target == "job-status" else "jobs/_row.html"
        return _with_runs_changed(render_template(template, view=view), view)
    if message:
        flash(message)
    return redirect(request.referrer or url_for("jobs.job_page", job_id=job.public_id), 303)


@bp.post("/jobs/<job_id>/pause")
def pause_job(job_id: str):
    """Pause a job."""
    job = service.pause_job(service.get_job(_project(), job_id))
    return _after_action(job, "Job paused: it will not run until you resume it.")


@bp.post("/jobs/<job_id>/resume")
def resume_job(job_id: str):
    """Resume a job from now."""
    job = service.resume_job(service.get_job(_project(), job_id))
    return _after_action(job, f"Job resumed. Next run {absolute_time(job.next_run_at)}.")


@bp.post("/jobs/<job_id>/run")
def run_job(job_id: str):
    """Run a job now."""
    job = service.get_job(_project(), job_id)
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
    job = service.get_job(_project(), job_id)
    name = job.name
    service.delete_job(job)
    if htmx and request.headers.get("HX-Target") == f"job-{job_id}":
        return ""
    flash(f"Job “{name}” deleted.")
    return redirect(url_for("jobs.list_jobs"), 303)


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    """A run and its records."""
    run = service.get_run(_project(), run_id)
    page = _page_number()
    records, has_next = numbered(
        select(Record).where(Record.run_id == run.id).order_by(Record.position),
        page,
        RECORDS_PER_PAGE,
    )
    return render_template(
        "runs/detail.html",
        run=run,
        job=db.session.get(Job, run.job_id) if run.job_id else None,
        records=records,
        page=page,
        per_page=RECORDS_PER_PAGE,
        has_next=has_next,
        total=db.session.scalar(select(func.count(Record.id)).where(Record.run_id == run.id)),
    )
