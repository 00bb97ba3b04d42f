"""Date ranges of queries and jobs: pure helpers with no Flask or database import."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from .timeutil import isoformat, parse_timestamp

RELATIVE = re.compile(r"^(\d{1,4})([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def relative_delta(text: str) -> timedelta:
    """"24h", "7d", "2w" as a timedelta; ValueError for anything else."""
    match = RELATIVE.match(text)
    if not match:
        raise ValueError(text)
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def clean_date_range(value) -> dict | None:
    """A date_range as stored: {"last": "24h"} or {"start"?, "end"?} in ISO 8601 UTC."""
    if value in (None, "", {}):
        return None
    if not isinstance(value, dict):
        raise ValueError('date_range must be {"last": "24h"} or {"start": ts, "end": ts}.')
    if "last" in value:
        last = value["last"]
        if set(value) != {"last"} or not isinstance(last, str) or not RELATIVE.match(last):
            raise ValueError('date_range "last" must look like "24h", "7d" or "2w".')
        if relative_delta(last) <= timedelta(0):
            raise ValueError('date_range "last" must be longer than zero.')
        return {"last": last}
    unknown = set(value) - {"start", "end"}
    if unknown:
        raise ValueError(f"date_range has unknown keys: {', '.join(sorted(unknown))}.")
    moments = {}
    for side in ("start", "end"):
        if value.get(side) in (None, ""):
            continue
        if not isinstance(value[side], str):
            raise ValueError(f"date_range {side} must be an ISO 8601 timestamp.")
        try:
            moments[side] = parse_timestamp(value[side])
        except (ValueError, OverflowError):  # overflow: year 1 or 9999 moved across UTC
            raise ValueError(
                f"date_range {side} {value[side]!r} is not an ISO 8601 timestamp."
            ) from None
    # Compared as instants: as text, "…00Z" sorts after "…00.500000Z".
    if "start" in moments and "end" in moments and moments["start"] > moments["end"]:
        raise ValueError("date_range start must be before its end.")
    return {side: isoformat(moment) for side, moment in moments.items()} or None


def stored_window(date_range: dict | None, started: datetime):
    """The (since, until) a stored date_range gives a run started at `started`, or None when
    the range is empty (the caller then looks at the prompt and the job's history)."""
    if not date_range:
        return None
    if "last" in date_range:
        return started - relative_delta(date_range["last"]), None
    start = parse_timestamp(date_range["start"]) if date_range.get("start") else None
    end = parse_timestamp(date_range["end"]) if date_range.get("end") else None
    return start, end
