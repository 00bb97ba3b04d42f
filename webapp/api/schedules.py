"""Schedule previews over the API."""

from __future__ import annotations

from .. import schemas
from ..timeutil import now
from . import bp
from .auth import json_body, require
from .openapi import Reply, documented
from .serialize import respond


@bp.post("/schedules/preview")
@require("read")
@documented(
    "previewSchedule",
    "schedules",
    {200: Reply("The description and next runs.", schemas.SchedulePreview)},
    body=schemas.SchedulePreviewRequest,
)
def preview_schedule():
    """Describe a schedule and list its next run times from now."""
    asked = schemas.validate(schemas.SchedulePreviewRequest, json_body())
    preview = schemas.SchedulePreview(
        description=asked.schedule.describe(),
        next_runs=asked.schedule.next_runs(now(), asked.count),
    )
    return respond(preview)
