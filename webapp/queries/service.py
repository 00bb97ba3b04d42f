"""One-off queries: the same parameters as a job, run once, kept as a run without a job."""

from __future__ import annotations

import logging

from flask import current_app

from ..extensions import db
from ..ids import new_public_id
from ..models import Project, Run, get_in_project
from ..queueing import QueuedRun, enqueue_runs, get_redis
from ..scheduling import queue_timeout
from ..schemas import QueryCreate, validate
from ..timeutil import now

log = logging.getLogger(__name__)


def submit_query(project: Project, data: dict) -> Run:
    """Validate and queue a one-off query; raise ValidationError naming each bad field."""
    params = validate(QueryCreate, data).values()
    run = Run(
        public_id=new_public_id("qry"),
        project_id=project.id,
        job_id=None,
        trigger="query",
        scheduled_for=now(),
        status="queued",
        params=params,
    )
    db.session.add(run)
    db.session.commit()
    try:
        enqueue_runs(
            get_redis(), [QueuedRun.of_query(run.public_id)], queue_timeout(current_app.config)
        )
    except Exception as exc:
        # The query stays queued: the scheduler's reaper hands it to the queue once Redis answers.
        log.warning("query %s is queued but Redis is unreachable: %s", run.public_id, exc)
    return run


def get_query(project: Project, public_id: str) -> Run:
    return get_in_project(
        Run, project.id, public_id, "No query with this id in this project.", Run.job_id.is_(None)
    )
