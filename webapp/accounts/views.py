"""Sign-in, first-run set-up, invitations, password and projects."""

from __future__ import annotations

import ipaddress
import logging
import time

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user

from ..errors import NotFoundError, ServiceError, ValidationError
from ..extensions import limiter
from . import service
from .access import public, requires

bp = Blueprint("accounts", __name__)
log = logging.getLogger(__name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        # Browsers drop tabs and newlines inside a URL ("/\t/evil.example" is "//evil.example"
        # to them), and no header may carry a control character: any C0 or DEL is refused.
        and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in target)
    ):
        return target
    return url_for("jobs.list_jobs")


def _login_key() -> str:
    email = request.form.get("email", "")
    return f"{request.remote_addr}|{email.strip().lower()[:254]}"


def _setup_needs_token() -> bool:
    """Whether strangers may reach the set-up page: unless the server listens on loopback
    only (gunicorn and werkzeug put the listening address in SERVER_NAME), the first visitor
    must prove they can read the server's log. Behind a trusted proxy the page is public
    whatever address the server listens on."""
    if current_app.config["TRUSTED_PROXIES"]:
        return True
    listening = request.environ.get("SERVER_NAME", "")
    if listening == "localhost":
        return False
    try:
        return not ipaddress.ip_address(listening.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name from a unix socket's Host header: reached through a proxy


_token_logged_at = 0.0


def _log_setup_token(token: str) -> None:
    """Print the token for the operator, at most once a minute per process, so a visitor
    reloading the page cannot flood the log."""
    global _token_logged_at
    if _token_logged_at and time.monotonic() - _token_logged_at < 60:
        return
    _token_logged_at = time.monotonic()
    log.warning(
        "no owner account yet: the set-up page asks for the setup token %s (open /setup?token=%s"
        " or run `flask --app webapp create-owner` on the server instead)", token, token
    )


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup():
    """The first visitor of a fresh install creates the owner account."""
    if service.has_users():
        return redirect(url_for("accounts.login"))
    secret_key = current_app.config["SECRET_KEY"]
    needs_token = _setup_needs_token()
    if needs_token:
        _log_setup_token(service.setup_token(secret_key))
    values = {"name": "", "email": "", "project": "Default",
              "setup_token": request.args.get("token", "")}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in ("name", "email", "project", "setup_token")}
        if needs_token and not service.setup_token_matches(secret_key, values["setup_token"]):
            errors = {"setup_token": "Enter the setup token printed in the server's log."}
            return render_template(
                "accounts/setup.html", values=values, errors=errors, needs_token=True
            ), 403
        try:
            user = service.create_owner(
                values["email"], request.form.get("password", ""), values["name"],
                values["project"].strip() or "Default",
            )
        except ValidationError as exc:
            errors = exc.errors
        except ServiceError:
            return redirect(url_for("accounts.login"))
        else:
            login_user(user)
            flash("Welcome! Your owner account is ready. Create your first job.")
            return redirect(url_for("jobs.list_jobs"), 303)
    return render_template(
        "accounts/setup.html", values=values, errors=errors, needs_token=needs_token
    ), (422 if errors else 200)


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit("10 per minute", key_func=_login_key, methods=["POST"])
@limiter.limit("30 per minute", methods=["POST"])
def login():
    """Sign in."""
    if not service.has_users():
        return redirect(url_for("accounts.setup"))
    error = None
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        user = service.authenticate(email, request.form.get("password", ""))
        if user is not None:
            session.clear()
            login_user(user, remember=request.form.get("remember") == "on")
            return redirect(_safe_next(request.args.get("next")), 303)
        error = "That email and password do not match an account."
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    return render_template("accounts/login.html", email=email, error=error), (401 if error else 200)


@bp.post("/logout")
@requires("viewer")
def logout():
    """Sign out, on every device: a copied session or remember-me cookie stops working."""
    service.end_sessions(current_user._get_current_object())
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("accounts.login"), 303)


@bp.route("/account", methods=["GET", "POST"])
@requires("viewer")
def account():
    """Your account: change your password."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            service.change_password(
                current_user._get_current_object(), request.form.get("current_password", ""),
                request.form.get("password", ""),
            )
        except ValidationError as exc:
            errors = exc.errors
        else:
            login_user(current_user._get_current_object())  # this session stays; others end
            flash("Password changed. Other sessions are signed out.")
            return redirect(url_for("accounts.account"), 303)
    return render_template("accounts/account.html", errors=errors), (422 if errors else 200)


@bp.route("/invite/<token>", methods=["GET", "POST"])
@public
def invitation(token: str):
    """Accept an invitation: join with this account, or create one."""
    try:
        invite = service.open_invitation(token)
    except NotFoundError as exc:
        return render_template("error.html", title="Invitation not valid", message=exc.message), 404
    errors: dict[str, str] = {}
    values = {"name": "", "email": ""}
    if request.method == "POST":
        if current_user.is_authenticated:
            member = service.accept_invitation(token, current_user)
        else:
            values = {k: request.form.get(k, "") for k in ("name", "email")}
            try:
                user = service.register_with_invitation(
                    token, values["email"], request.form.get("password", ""), values["name"]
                )
            except ValidationError as exc:
                errors = exc.errors
                member = None
            else:
                login_user(user)
                member = service.membership(user, invite.project_id)
        if member is not None:
            session["project_id"] = member.project_id
            flash(f"You joined {invite.project.name} as {member.role}.")
            return redirect(url_for("jobs.list_jobs"), 303)
    return render_template(
        "accounts/invitation.html", invite=invite, token=token, values=values, errors=errors
    ), (422 if errors else 200)


@bp.get("/projects")
@requires("viewer")
def projects():
    """Your projects: switch or create one."""
    return render_template(
        "accounts/projects.html", memberships=service.memberships_of(current_user), errors={}
    )


@bp.post("/projects")
@requires("viewer")
def create_project():
    """Create a project; you are its owner."""
    try:
        project = service.create_project(current_user, request.form.get("name", ""))
    except ValidationError as exc:
        return render_template(
            "accounts/projects.html", memberships=service.memberships_of(current_user),
            errors=exc.errors, name=request.form.get("name", ""),
        ), 422
    session["project_id"] = project.id
    flash(f"Project {project.name} created.")
    return redirect(url_for("jobs.list_jobs"), 303)


@bp.post("/projects/switch")
@requires("viewer")
def switch_project():
    """Work in another of your projects."""
    project_id = request.form.get("project_id", type=int)
    if project_id is None or service.membership(current_user, project_id) is None:
        abort(404)
    session["project_id"] = project_id
    return redirect(_safe_next(request.form.get("next")), 303)
