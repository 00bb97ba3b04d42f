"""The day of a job, or of every job of a project: runs done today and the slots still to come."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from ..extensions import db
from ..models import Job, Run
from ..timeutil import now

MAX_UPCOMING = 48
MAX_DONE = 48
# The Jobs page shows the project's day as a strip above the list: a dozen of each.
PROJECT_MAX = 12
DONE_STATUSES = ("completed", "failed", "skipped")


@dataclass
class Slot:
    at: datetime
    job: Job


@dataclass
class Timeline:
    zone: str
    day_start: datetime
    day_end: datetime
    job: Job | None = None  # None: the project's timeline, every job together
    done: list[Run] = field(default_factory=list)  # each with its job loaded
    earlier_done: int = 0  # runs finished today before the first one listed
    upcoming: list[Slot] = field(default_factory=list)
    more_upcoming: bool = False


def _today(zone: str) -> tuple[datetime, datetime]:
    local = now().astimezone(ZoneInfo(zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic within one zone is wall-clock in Python: this is the next local
    # midnight even on a 23- or 25-hour DST day.
    return start, start + timedelta(days=1)


def day_timeline(job: Job, zone: str) -> Timeline:
    """Today in the viewer's timezone for one job: finished runs, then its slots until midnight."""
    start, tomorrow = _today(zone)
    timeline = Timeline(zone, start, tomorrow, job=job)
    _fill_done(timeline, MAX_DONE, Run.job_id == job.id)
    if job.is_schedulable and job.next_run_at is not None and job.next_run_at < tomorrow:
        _fill_upcoming(timeline, MAX_UPCOMING, [job])
    return timeline


def project_timeline(project_id: int, zone: str) -> Timeline:
    """Today in the viewer's timezone across every job of a project."""
    start, tomorrow = _today(zone)
    timeline = Timeline(zone, start, tomorrow)
    _fill_done(timeline, PROJECT_MAX, Run.project_id == project_id, Run.job_id.is_not(None))
    # The first PROJECT_MAX slots of the day come from at most PROJECT_MAX + 1 jobs, those
    # due soonest: any other job's first slot has that many earlier ones before it. So a
    # project with thousands of jobs loads a dozen of them here.
    soonest = db.session.scalars(
        select(Job)
        .where(
            Job.project_id == project_id,
            Job.schedulable_clause(),
            Job.next_run_at.is_not(None),
            Job.next_run_at < tomorrow,
        )
        .order_by(Job.next_run_at, Job.id)
        .limit(PROJECT_MAX + 1)
    ).all()
    _fill_upcoming(timeline, PROJECT_MAX, soonest)
    return timeline


def _fill_done(timeline: Timeline, limit: int, *where) -> None:
    finished_today = (
        *where,
        Run.finished_at >= timeline.day_start,
        Run.finished_at < timeline.day_end,
        Run.status.in_(DONE_STATUSES),
    )
    latest = db.session.scalars(
        select(Run)
        .join(Run.job)
        .options(contains_eager(Run.job))
        .where(*finished_today)
        .order_by(Run.finished_at.desc(), Run.id.desc())
        .limit(limit)
    ).all()
    timeline.done = list(reversed(latest))
    if len(latest) == limit:
        total = db.session.scalar(select(func.count(Run.id)).where(*finished_today))
        timeline.earlier_done = total - limit


def _fill_upcoming(timeline: Timeline, limit: int, jobs: list[Job]) -> None:
    merged = heapq.merge(*(_slots(job, timeline.day_end) for job in jobs), key=lambda s: s.at)
    for slot in merged:
        if len(timeline.upcoming) == limit:
            timeline.more_upcoming = True
            break
        timeline.upcoming.append(slot)


def _slots(job: Job, until: datetime) -> Iterator[Slot]:
    at = job.next_run_at
    while at is not None and at < until:
        yield Slot(at, job)
        at = job.schedule.next_after(at)
