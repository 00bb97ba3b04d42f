"""Schedule previews over the API."""

from __future__ import annotations

from flask import jsonify

from ..schedules import ScheduleError, parse_schedule
from ..timeutil import isoformat, now
from . import bp
from .auth import json_body, require
from .errors import ApiError


@bp.post("/schedules/preview")
@require("read")
def preview_schedule():
    """Describe a schedule and list its next run times from now."""
    data = json_body()
    count = data.get("count", 5)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 50:
        raise ApiError(422, "count must be a whole number from 1 to 50.", field="count")
    if "schedule" not in data:
        raise ApiError(422, "schedule is required.", field="schedule")
    try:
        schedule = parse_schedule(data["schedule"], data.get("timezone", "UTC"))
    except ScheduleError as exc:
        raise ApiError(422, exc.message, field=exc.field) from None
    return jsonify(
        description=schedule.describe(),
        next_runs=[isoformat(t) for t in schedule.next_runs(now(), count)],
    )
