"""Who may do what: sign-in for every page, and the role each page needs in its project.

One rule for the whole dashboard, so no page can forget it: reading needs `viewer`,
changing needs `editor`, and views that need more (or less) say so with a decorator.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, abort, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user

from ..extensions import db
from .models import Membership, User, role_allows

login_manager = LoginManager()
READ_METHODS = ("GET", "HEAD", "OPTIONS")
OPEN_ENDPOINTS = {"static", "healthz"}


def requires(role: str) -> Callable:
    """Mark a view as needing at least `role` in the current project."""

    def decorator(view):
        view.required_role = role
        return view

    return decorator


def public(view):
    """Mark a view as reachable without signing in (sign-in, first-run set-up, invitations)."""
    view.is_public = True
    return view


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    # A password change rotates the token, which ends every other session.
    if user is None or not token or user.session_token != token:
        return None
    return user


def init_access(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    app.before_request(enforce_access)


def _current_membership(user: User) -> Membership | None:
    from .service import membership, memberships_of

    wanted = session.get("project_id")
    if isinstance(wanted, int):
        found = membership(user, wanted)
        if found is not None:
            return found
    memberships = memberships_of(user)
    if not memberships:
        return None
    session["project_id"] = memberships[0].project_id
    return memberships[0]


def enforce_access():
    endpoint = request.endpoint
    if endpoint is None or endpoint in OPEN_ENDPOINTS or endpoint.startswith("api."):
        return None  # unknown paths 404 as usual; the API checks its own keys
    view = request.url_rule and _view(endpoint)
    if view is not None and getattr(view, "is_public", False):
        return None
    from .service import has_users

    if not current_user.is_authenticated:
        # Only a visitor without a session can be on a fresh install: the check stays off
        # the path of every signed-in request.
        if not has_users():
            return redirect(url_for("accounts.setup"))
        target = url_for("accounts.login", next=request.full_path.rstrip("?"))
        if request.headers.get("HX-Request"):
            # A partial must not swap a sign-in page into a table row: send the page there.
            return "", 401, {"HX-Redirect": target}
        return redirect(target)
    member = _current_membership(current_user)
    if member is None:
        if endpoint.startswith("accounts."):
            return None  # a person with no project can still create one or sign out
        return redirect(url_for("accounts.projects"))
    g.membership = member
    g.project = member.project
    needed = getattr(view, "required_role", None) or (
        "viewer" if request.method in READ_METHODS else "editor"
    )
    if not role_allows(member.role, needed):
        abort(403, description=f"Your role in {member.project.name} is {member.role}; "
                               f"this needs {needed}.")
    return None


def _view(endpoint: str):
    from flask import current_app

    return current_app.view_functions.get(endpoint)


def current_role() -> str | None:
    member = g.get("membership")
    return member.role if member is not None else None


def can(role: str) -> bool:
    return role_allows(current_role(), role)
