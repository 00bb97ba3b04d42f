"""The key's project over the API: its retention policy and what it stores."""

from __future__ import annotations

from flask import g

from .. import schemas
from ..models import Project
from ..storage import retention
from . import bp
from .auth import json_body, require
from .openapi import Reply, documented
from .serialize import respond

PROJECT = {200: Reply("The project.", schemas.Project)}


def project_out(project: Project) -> schemas.Project:
    usage = retention.usage(project)
    return schemas.Project(
        id=project.public_id,
        name=project.name,
        retention=schemas.Retention(
            days=project.retention_days, runs_per_job=project.retention_runs_per_job
        ),
        record_count=usage.record_count,
        storage_bytes=usage.storage_bytes,
    )


@bp.get("/project")
@require("read")
@documented("getProject", "project", PROJECT)
def get_project():
    """The key's project: its retention policy, records and storage size."""
    return respond(project_out(g.project))


@bp.patch("/project")
@require("admin")
@documented("updateProject", "project", PROJECT, body=schemas.ProjectUpdate)
def patch_project():
    """Change the retention policy; the fields sent change, null keeps everything."""
    return respond(project_out(retention.update_project(g.project, json_body())))
