"""A job's day: the runs done today and the slots still to come before midnight."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..extensions import db
from ..models import Job, Run
from ..timeutil import now

MAX_UPCOMING = 48


@dataclass
class Timeline:
    zone: str
    day_start: datetime
    day_end: datetime
    done: list[Run] = field(default_factory=list)
    upcoming: list[datetime] = field(default_factory=list)
    more_upcoming: bool = False


def day_timeline(job: Job, zone: str) -> Timeline:
    """Today in the viewer's timezone: finished runs, then remaining slots until midnight."""
    moment = now()
    local = moment.astimezone(ZoneInfo(zone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic within one zone is wall-clock in Python: this is the next local
    # midnight even on a 23- or 25-hour DST day.
    tomorrow = start + timedelta(days=1)
    timeline = Timeline(zone, start, tomorrow)
    timeline.done = list(
        db.session.scalars(
            select(Run)
            .where(
                Run.job_id == job.id,
                Run.finished_at >= start,
                Run.status.in_(("completed", "failed", "skipped")),
            )
            .order_by(Run.finished_at)
        )
    )
    if job.is_schedulable and job.next_run_at is not None:
        slot = job.next_run_at
        while slot < tomorrow:
            if len(timeline.upcoming) == MAX_UPCOMING:
                timeline.more_upcoming = True
                break
            timeline.upcoming.append(slot)
            slot = job.schedule.next_after(slot)
    return timeline
