"""The project (workspace) a dashboard request works in."""

from __future__ import annotations

from .models import Project


def current_project() -> Project:
    """The workspace of this request; every dashboard query is scoped by it."""
    from .jobs.service import default_project

    return default_project()
