"""App-wide pieces: error pages, health check, template filters and security headers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from .accounts.access import can
from .api.errors import error_response, http_error_as_json, is_api_request
from .errors import NotFoundError
from .extensions import db, htmx
from .health import health_checks, queue_reachable
from .jobs.forms import FORM_LIMITS
from .schedules import humanize_delta
from .timeutil import isoformat, now

log = logging.getLogger(__name__)
DATABASE_UNAVAILABLE = "The database cannot be reached right now. Try again in a few seconds."
RETRY_AFTER_SECONDS = 5


def register_web(app: Flask) -> None:
    @app.get("/healthz")
    def healthz():
        """Health for the platform: database, Redis, scheduler and workers (503 if degraded)."""
        healthy, checks = health_checks()
        return jsonify(status="ok" if healthy else "degraded", checks=checks), (
            200 if healthy else 503
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template(
            "error.html", title="Form expired", message="The form expired or was sent from "
            "another site. Go back, reload the page and try again."
        ), 400

    @app.errorhandler(NotFoundError)
    def not_found(exc: NotFoundError):
        """Every lookup of another project's (or no) row ends here: one 404 for all views."""
        if is_api_request():
            return error_response(404, exc.message, exc.code)
        return render_template("error.html", title="404 Not Found", message=exc.message), 404

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if is_api_request():
            return http_error_as_json(exc)
        return render_template(
            "error.html", title=f"{exc.code} {exc.name}", message=exc.description
        ), exc.code

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(exc: Exception):
        """The database could not be reached (a restart, a failover, a lock held too long):
        503 with Retry-After, as the request may well succeed in a moment; not a 500."""
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error("database unavailable on %s %s: %s", request.method, request.path, reason)
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the next request gets a fresh one
            pass
        if is_api_request():
            response = error_response(503, DATABASE_UNAVAILABLE, "database_unavailable")
        else:
            # Straight from the template, without the context processors, which would load
            # the signed-in user from the database again.
            page = current_app.jinja_env.get_template("unavailable.html").render(
                title="Database unreachable", message=DATABASE_UNAVAILABLE,
                retry_after=RETRY_AFTER_SECONDS,
            )
            response = current_app.make_response((page, 503))
            if htmx and not htmx.boosted:
                # A panel refreshing itself keeps what it showed, and tries again on its next
                # poll; a boosted navigation shows the page.
                response.headers["HX-Reswap"] = "none"
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        if is_api_request():
            return error_response(500, "Something went wrong on the server.", "internal_error")
        return render_template(
            "error.html", title="Something went wrong",
            message="The server could not finish this request. It has been logged."
        ), 500

    @app.after_request
    def security_headers(response):
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if current_app.config["HSTS"]:
            # Sent on plain HTTP too, where browsers ignore it: behind a router that ends TLS
            # the app may not know the visitor used https.
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        response.vary.add("HX-Request")
        return response

    @app.after_request
    def boosted_page_url(response):
        # A boosted form POST that redirects is followed inside the XMLHttpRequest; naming the
        # page it landed on (HX-Push-Url overrides htmx's own guess) keeps the address bar, the
        # history entry and a reload on that page rather than on the form's URL.
        if (
            htmx.boosted
            and request.method == "GET"
            and response.status_code == 200
            and not htmx.history_restore_request
        ):
            response.headers.setdefault("HX-Push-Url", request.full_path.rstrip("?"))
        return response

    app.add_template_filter(_relative, "relative")
    app.add_template_filter(isoformat, "iso")
    app.add_template_filter(absolute_time, "absolute")
    app.add_template_filter(_duration, "duration")
    app.add_template_filter(_safe_href, "safe_href")
    app.add_template_global(refresh_trigger)
    app.add_template_global(viewer_zone)
    app.add_template_global(can)
    # The Query page and the New Job form take their maxlength/min/max from the schemas.
    app.add_template_global(FORM_LIMITS, "form_limits")
    app.add_template_global(queue_reachable)
    app.add_template_global(_overdue, "is_overdue")
    app.add_template_filter(_clock, "clock")


def _relative(value: datetime | None) -> str:
    if value is None:
        return "—"
    return humanize_delta(value - now())


def absolute_time(value: datetime | None, zone: str | None = None) -> str:
    """An instant written out in `zone`, by default the viewer's: '2026-05-01 09:21 CEST'."""
    if value is None:
        return "—"
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone or viewer_zone())).strftime("%Y-%m-%d %H:%M %Z")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _safe_href(url: str | None) -> str:
    """Links from sources become hrefs only when they are http(s): no javascript: URLs."""
    from urllib.parse import urlsplit

    if url and urlsplit(url.strip()).scheme.lower() in ("http", "https"):
        return url.strip()
    return "#"


def refresh_trigger(job, last_run=None) -> str:
    """The hx-trigger that keeps a job's row or panel current without polling idle jobs.

    A running job polls every 2 s; an active one refreshes once, just after its next slot
    falls due, and then polls while that run goes on. Paused and failed jobs never poll.
    """
    if job.state == "running" or (last_run is not None and last_run.is_in_progress):
        return "every 2s"
    if job.state == "active" and job.next_run_at is not None:
        seconds = int((job.next_run_at - now()).total_seconds()) + 2
        return f"load delay:{max(2, min(seconds, 3600))}s"
    return ""


def viewer_zone() -> str:
    """The viewer's IANA timezone, sent by static/app.js in the `tz` cookie; UTC without it."""
    from urllib.parse import unquote

    from .schedules import ScheduleError, validate_timezone

    try:
        return validate_timezone(unquote(request.cookies.get("tz", "UTC"))[:64])
    except ScheduleError:
        return "UTC"


def _overdue(job) -> bool:
    return job.is_overdue(now(), timedelta(seconds=current_app.config["OVERDUE_GRACE_SECONDS"]))


def _clock(value: datetime, zone: str | None = None) -> str:
    from zoneinfo import ZoneInfo

    return value.astimezone(ZoneInfo(zone or viewer_zone())).strftime("%H:%M")
