"""The project (workspace) a dashboard request works in."""

from __future__ import annotations

from flask import abort, g

from .models import Project


def current_project() -> Project:
    """The workspace of this request, chosen by the access check; every query is scoped by it."""
    project = g.get("project")
    if project is None:
        abort(403)
    return project
